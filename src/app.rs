//! The frame loop's shared part, the same in every mode (desktop window, XR, scripted
//! snapshots): run the scene systems on this frame's input, rerun the network when the input
//! image changes, and hand the renderer what changed (values once per input, the network's
//! instances when blocks move, fold or change layout, the overlay every frame).

pub mod desktop_loop;
pub mod frame_loop;

use std::sync::Arc;
use std::time::Duration;

use glam::{Mat4, Vec3};

use crate::gfx::{self, DrawList, NetworkDraw, Renderer, TileInstance};
use crate::input::{InputSnapshot, Script};
use crate::nn::edges::EdgeValue;
use crate::nn::live::{Feed, LiveEvent};
use crate::nn::model::Checkpoint;
use crate::nn::recompute::{self, Done, Recompute, Request, WeightsAt};
use crate::nn::timeline::{LoadedCheckpoint, Timeline};
use crate::nn::{self, Activations, Model, NnError, Samples, Weights};
use crate::scene::edges::{DEFAULT_EDGE_BUDGET, EdgeOptions, SceneEdges};
use crate::scene::systems::{self, FrameEvents};
use crate::scene::{LayerPlacement, LayoutKind, Network, NeuronRef, Scale, Scene, SceneDraw, Stage, scene_draw};
use crate::view;

/// Seconds `[` / `]` (InputSnapshot::bundle at ±1) take to sweep the bundling strength from 0 to 1.
pub const BUNDLE_SWEEP_SECONDS: f32 = 2.0;

/// The edge thresholds `T` steps through (share of each layer's strongest edge).
pub const EDGE_THRESHOLDS: [f32; 4] = [0.0, 0.1, 0.25, 0.5];

/// What of the edges the renderer has not seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeUpload {
    None,
    /// New values for the same edges: an incremental update of the bundle.
    Values,
    /// The same edges, moved (their blocks moved): an incremental update from the last shape.
    Moved,
    /// New edges (the layout changed): a full recompute.
    All,
}

/// Samples on the tray (at most).
pub const TRAY_SAMPLES: usize = 10;

/// Whether the frame's events change what the network computes.
fn raw_changed(events: &FrameEvents) -> bool {
    events.input.is_some() || events.sample.is_some() || events.timeline.is_some()
}

/// What moves a block's drawing: its placement, fold and layout.
type BlockKey = (Mat4, f32, LayoutKind);

pub struct App {
    pub model: Model,
    pub weights: Weights,
    pub samples: Option<Samples>,
    pub acts: Activations,
    pub scene: Scene,
    /// The checkpoints to scrub through (`None`: the model has none).
    pub timeline: Option<Timeline>,
    /// A line shown under the input block (e.g. that there is no input to run on).
    pub hint: Option<String>,
    /// Checkpoints arriving while the app runs (a watched folder, live training).
    feed: Option<Feed>,
    /// The feed's messages (skipped files, training's end) since the last [`App::take_messages`].
    messages: Vec<String>,
    /// The input the network runs on (raw, before normalization), and a count of its changes.
    input: Arc<[f32]>,
    input_gen: u64,
    /// The weights last asked for (shown once their run is done).
    wanted: WeightsAt,
    /// Reruns the network off the frame's thread (`None`: in the frame, before it is drawn).
    recompute: Option<Recompute>,
    /// The last run asked for, and the last one shown.
    requested: u64,
    shown: u64,
    prev: InputSnapshot,
    /// The network's drawing and the block state it was made for.
    network: Option<(Vec<BlockKey>, NetworkDraw)>,
    /// Where each tray sample's image starts in the uploaded values.
    tray_offsets: Vec<u32>,
    /// Per layer, the change between the nearest checkpoint and the one before it, on the input
    /// image; keyed by (checkpoint, input count). The key asked for last.
    changes: Option<((usize, u64), Vec<f32>)>,
    changes_asked: Option<(usize, u64)>,
    /// The values changed since the last upload.
    values_dirty: bool,
    network_dirty: bool,
    /// The dense layers' edges, bundled and drawn by the renderer (`None` before the first frame,
    /// or when they could not be built).
    edges: Option<SceneEdges>,
    pub edge_options: EdgeOptions,
    /// How the bundled edges look (strength: `[` / `]`).
    pub bundle_style: gfx::BundleStyle,
    edge_upload: EdgeUpload,
    style_dirty: bool,
    /// The edges' values must be remade (weight ↔ importance).
    edges_dirty: bool,
    /// The selection whose edges the renderer highlights (`None`: not uploaded yet).
    highlighted: Option<Option<NeuronRef>>,
}

impl App {
    /// The scene for `model` running on `input` (raw values, before normalization), the sample
    /// tray filled from `samples`.
    pub fn new(
        model: Model,
        weights: Weights,
        samples: Option<Samples>,
        input: Vec<f32>,
        stage: Stage,
        scale: Scale,
    ) -> Result<App, NnError> {
        let acts = nn::forward(&model, &weights, &input)?;
        let mut scene = Scene::new(&model, stage, scale);
        scene.set_sample_tray(samples.as_ref().map_or(0, |s| s.count.min(TRAY_SAMPLES)));
        Ok(App {
            model,
            weights: weights.clone(),
            samples,
            acts,
            scene,
            timeline: None,
            hint: None,
            feed: None,
            messages: Vec::new(),
            wanted: WeightsAt::Given(weights.clone()),
            input: input.into(),
            input_gen: 0,
            recompute: None,
            requested: 0,
            shown: 0,
            prev: InputSnapshot::default(),
            network: None,
            tray_offsets: Vec::new(),
            changes: None,
            changes_asked: None,
            values_dirty: true,
            network_dirty: true,
            edges: None,
            edge_options: EdgeOptions::default(),
            bundle_style: gfx::BundleStyle::default(),
            edge_upload: EdgeUpload::None,
            style_dirty: true,
            edges_dirty: false,
            highlighted: None,
        })
    }

    /// Adds the checkpoints to scrub through (the left thumbstick, arrow keys, scripts).
    pub fn with_timeline(mut self, timeline: Option<Timeline>) -> App {
        self.timeline = timeline;
        self
    }

    /// Appends the checkpoints `feed` delivers to the timeline as they arrive (taken at the start
    /// of each [`App::step`], without waiting).
    pub fn with_feed(mut self, feed: Feed) -> App {
        self.feed = Some(feed);
        self
    }

    /// Reruns the network on a worker thread from now on: scrubbing, new checkpoints and new
    /// input images no longer hold up the frame; their activations are shown when they are
    /// ready (the interactive modes; scripted snapshots and replays run in the frame, or
    /// [`App::settle`]).
    pub fn start_recompute(&mut self) -> Result<(), NnError> {
        if self.recompute.is_none() {
            self.recompute = Some(Recompute::start(&self.model)?);
        }
        Ok(())
    }

    /// Whether a rerun of the network is under way (its activations are not shown yet).
    pub fn computing(&self) -> bool {
        self.shown < self.requested
    }

    /// Waits until what was asked of the worker (activations, change marks) is shown.
    pub fn settle(&mut self) -> Result<(), NnError> {
        const PATIENCE: Duration = Duration::from_secs(600);
        while self.computing()
            || self
                .changes_asked
                .is_some_and(|k| self.changes.as_ref().is_none_or(|c| c.0 != k))
        {
            let Some(done) = self.recompute.as_ref().and_then(|r| r.wait(PATIENCE)) else {
                return Err(NnError::Usage("the recompute thread did not answer".into()));
            };
            self.take(done)?;
        }
        Ok(())
    }

    /// Empties the timeline (live training starts a new one) and shows the model's weights.
    pub fn clear_timeline(&mut self) -> Result<(), NnError> {
        self.timeline = None;
        self.model.checkpoints.clear();
        if self.scene.checkpoint.take().is_some() {
            self.wanted = WeightsAt::Given(Weights::load(&self.model)?);
            self.rerun()?;
        }
        Ok(())
    }

    /// Whether the feed's thread has ended (no feed: `true`).
    pub fn feed_finished(&self) -> bool {
        self.feed.as_ref().is_none_or(Feed::is_finished)
    }

    /// The feed's messages since the last call (each is also logged).
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// Appends `checkpoint` (checked against the model, see [`LoadedCheckpoint::read`]) to the
    /// timeline; returns its index. When the view was at the end of the timeline (or on the final
    /// weights, never scrubbed), it follows: the new checkpoint is shown.
    pub fn append_checkpoint(&mut self, checkpoint: LoadedCheckpoint) -> Result<usize, NnError> {
        let at_end = match (&self.scene.checkpoint, &self.timeline) {
            (Some(c), Some(t)) => c.position >= t.end() - 1e-3,
            _ => true,
        };
        self.model.checkpoints.push(Checkpoint {
            label: checkpoint.info.label.clone(),
            weights: checkpoint.weights.source.clone(),
        });
        let timeline = self.timeline.get_or_insert_with(Timeline::empty);
        let index = timeline.push(checkpoint);
        if at_end {
            self.wanted = timeline.at(index as f32)?;
            self.scene.set_timeline_position(&self.model, index as f32);
            self.rerun()?;
        }
        Ok(index)
    }

    /// Takes what the feed delivered since the last frame (never waits).
    fn take_feed(&mut self) -> Result<(), NnError> {
        let Some(feed) = &self.feed else { return Ok(()) };
        for event in feed.poll() {
            if let Some(m) = event.message() {
                match &event {
                    LiveEvent::Finished(Ok(())) => tracing::info!("{m}"),
                    _ => tracing::warn!("{m}"),
                }
                self.messages.push(m);
            }
            if let LiveEvent::Checkpoint(c) = event {
                let label = c.info.label.clone();
                let index = self.append_checkpoint(c)?;
                tracing::info!(index, label, "checkpoint appended");
            }
        }
        Ok(())
    }

    /// Reruns the network on the current input and the wanted weights: at once, or on the worker.
    fn rerun(&mut self) -> Result<(), NnError> {
        self.requested += 1;
        self.submit(Request::Run {
            id: self.requested,
            weights: self.wanted.clone(),
            input: self.input.clone(),
        })
    }

    fn submit(&mut self, request: Request) -> Result<(), NnError> {
        match &self.recompute {
            Some(r) => r.submit(request),
            None => {
                let done = recompute::compute(&self.model, request);
                self.take(done)
            }
        }
    }

    /// What the worker has finished since the last frame (never waits).
    fn take_results(&mut self) -> Result<(), NnError> {
        let ready = self.recompute.as_ref().map(Recompute::poll).unwrap_or_default();
        ready.into_iter().try_for_each(|d| self.take(d))
    }

    /// Shows a finished run (unless a later one is shown already) and re-explains the
    /// selection with it; keeps finished change marks.
    fn take(&mut self, done: Done) -> Result<(), NnError> {
        match done {
            Done::Run { id, .. } if id <= self.shown => {}
            Done::Run { id, result } => {
                self.shown = id;
                let (weights, acts) = result?;
                self.weights = weights;
                self.acts = acts;
                systems::refresh_selection(
                    &mut self.scene,
                    &Network {
                        model: &self.model,
                        weights: &self.weights,
                        acts: &self.acts,
                    },
                )?;
                self.values_dirty = true;
            }
            Done::Change { key, result } => {
                let changes = result.unwrap_or_else(|e| {
                    tracing::warn!("change since the previous checkpoint: {e}");
                    Vec::new()
                });
                self.changes = Some((key, changes));
            }
        }
        Ok(())
    }

    /// Plays `script` at `fps` frames per second (plus a frame at each event), then holds its last
    /// input for up to a second while fold animations finish.
    pub fn play(&mut self, script: &Script, fps: f32) -> Result<(), NnError> {
        const SETTLE_SECONDS: f32 = 1.0;
        let fps = if fps.is_finite() && fps > 0.0 { fps } else { 90.0 };
        let mut last = InputSnapshot::default();
        for frame in script.frames(fps) {
            self.step(&frame)?;
            last = frame;
        }
        let mut settled = 0.0;
        while systems::animating(&mut self.scene.world) && settled < SETTLE_SECONDS {
            settled += 1.0 / fps;
            last.time += 1.0 / fps;
            self.step(&last)?;
        }
        self.settle()
    }

    /// Runs one frame of the scene systems on `input` (its `time` gives the frame's length). A
    /// new input image (a tray sample, a drawing) or timeline position reruns the network: at
    /// once, or on the worker ([`App::start_recompute`]).
    pub fn step(&mut self, input: &InputSnapshot) -> Result<FrameEvents, NnError> {
        self.take_results()?;
        self.take_feed()?;
        let dt = (input.time - self.prev.time).clamp(0.0, 0.1);
        let net = Network {
            model: &self.model,
            weights: &self.weights,
            acts: &self.acts,
        };
        let events = systems::update(&mut self.scene, &net, input, &self.prev, dt)?;
        // The bundling strength: `[` / `]` on the desktop; in XR the left thumbstick up/down while
        // the left grip is held.
        let left = input.hand(crate::input::Hand::Left);
        let y = left.thumbstick.y;
        let stick = if left.grab && y.is_finite() && y.abs() >= systems::SCRUB_DEADZONE {
            y
        } else {
            0.0
        };
        let sweep = if input.bundle.is_finite() { input.bundle } else { 0.0 } + stick;
        // In XR (no keyboard): layout / fold pressed with the ray on nothing switch the edges'
        // value / step their threshold (the desktop's I / T).
        let aimless = |h: crate::input::Hand| {
            let state = &self.scene.hands[h.slot()];
            state.hover.is_none() && state.tray.is_none() && input.hand(h).tracked
        };
        let pressed_aimless = |b: crate::input::Button| {
            crate::input::Hand::BOTH
                .into_iter()
                .any(|h| input.pressed(&self.prev, h, b) && aimless(h))
        };
        let switch_value = pressed_aimless(crate::input::Button::Layout);
        let step_threshold = pressed_aimless(crate::input::Button::Fold);
        if (input.edge_value && !self.prev.edge_value) || switch_value {
            self.edge_options.value = match self.edge_options.value {
                EdgeValue::Weight => EdgeValue::Importance,
                EdgeValue::Importance => EdgeValue::Weight,
            };
            self.edges_dirty = true;
        }
        if (input.edge_threshold && !self.prev.edge_threshold) || step_threshold {
            let t = &mut self.bundle_style.threshold;
            let next = EDGE_THRESHOLDS.iter().position(|&x| x > *t + 1e-6).unwrap_or(0);
            *t = EDGE_THRESHOLDS[next];
            self.style_dirty = true;
        }
        if sweep != 0.0 {
            let s = &mut self.bundle_style.strength;
            *s = (*s + sweep.clamp(-1.0, 1.0) * dt / BUNDLE_SWEEP_SECONDS).clamp(0.0, 1.0);
            self.style_dirty = true;
        }
        let raw = match (&events.input, events.sample, &self.samples) {
            (Some(drawn), _, _) => Some(drawn.clone()),
            (None, Some(i), Some(s)) if i < s.count => Some(s.image(i).to_vec()),
            _ => None,
        };
        if let (Some(p), Some(t)) = (events.timeline, &self.timeline) {
            self.wanted = t.at(p)?;
        }
        if let Some(raw) = raw {
            self.input = raw.into();
            // The change marks were measured on the old input.
            self.input_gen += 1;
        }
        if raw_changed(&events) {
            self.rerun()?;
        }
        self.prev = *input;
        Ok(events)
    }

    /// Every block's layout switched to linear (one row of tiles).
    pub fn all_linear(&mut self) {
        systems::set_all_layouts(&mut self.scene, LayoutKind::Linear);
    }

    /// The blocks as they stand now (stage space).
    pub fn placements(&self) -> Vec<crate::scene::LayerPlacement> {
        self.scene_draw().placements()
    }

    /// A camera that sees the whole network in an image of `aspect` (width / height).
    pub fn overview(&self, aspect: f32) -> gfx::Camera {
        let (min, max) = crate::scene::layout::bounds(&self.placements());
        gfx::Camera::overview(min, max, aspect)
    }

    /// What the scene shows now.
    pub fn scene_draw(&self) -> SceneDraw {
        scene_draw(&self.scene)
    }

    /// Rebuilds the network's drawing if its blocks or values changed; returns whether it did.
    fn refresh_network(&mut self, sd: &SceneDraw) -> bool {
        let keys: Vec<BlockKey> = sd
            .blocks
            .iter()
            .map(|b| (b.stage_from_block, b.fold, b.layout))
            .collect();
        let moved = self.network.as_ref().is_none_or(|(k, _)| *k != keys);
        let stale = self.values_dirty || moved;
        if std::mem::take(&mut self.edges_dirty) && !stale {
            self.refresh_edges(sd, false);
        }
        if stale {
            self.refresh_edges(sd, moved);
            let reuse = self.network.take().map(|(_, d)| d.values).unwrap_or_default();
            let mut draw = NetworkDraw::new_into(&self.model, &self.acts, &sd.placements(), reuse);
            // The tray's pictures after the network's values.
            self.tray_offsets = view::tray::append_images(&self.model, self.samples.as_ref(), sd, &mut draw);
            self.network = Some((keys, draw));
            self.network_dirty = true;
        }
        stale
    }

    /// Rebuilds the edges when the blocks moved (a full recompute of the bundle), or revalues them
    /// for new weights or activations (an incremental update).
    fn refresh_edges(&mut self, sd: &SceneDraw, moved: bool) {
        let net = (&self.model, &self.weights, &self.acts);
        let result = match &self.edges {
            Some(e) if !moved => e.revalue(net.0, net.1, net.2, &self.edge_options).map(|values| {
                self.edge_upload = self.edge_upload.max(EdgeUpload::Values);
                SceneEdges { values, ..e.clone() }
            }),
            old => SceneEdges::build(net.0, net.1, net.2, &sd.placements(), &self.edge_options).inspect(|e| {
                let same = old
                    .as_ref()
                    .is_some_and(|o| o.edges.len() == e.edges.len() && o.layers.len() == e.layers.len());
                let upload = if same { EdgeUpload::Moved } else { EdgeUpload::All };
                self.edge_upload = self.edge_upload.max(upload);
            }),
        };
        match result {
            Ok(e) => self.edges = Some(e),
            Err(e) => {
                tracing::warn!("edges of the dense layers: {e}");
                self.edges = None;
            }
        }
    }

    /// How many edges were left out to stay within the budget (shown under the layer).
    pub fn edges_dropped(&self) -> usize {
        self.edges.as_ref().map_or(0, |e| e.dropped)
    }

    /// The edges shown (after the budget).
    pub fn edges(&self) -> Option<&SceneEdges> {
        self.edges.as_ref()
    }

    /// Over the first layer with edges: what they show and the keys that change it, and how many
    /// were dropped for speed, if any.
    fn edges_legend(&self, sd: &SceneDraw, overlay: &mut DrawList) {
        if let Some(e) = &self.edges {
            view::edges::legend(e, sd, self.edge_options.value, &self.bundle_style, overlay);
        }
    }

    /// Hands the renderer what changed of the edges: new edges, new values, style, highlight.
    fn upload_edges(&mut self, renderer: &mut Renderer) -> gfx::Result<()> {
        if std::mem::take(&mut self.style_dirty) {
            renderer.set_bundle_style(&self.bundle_style)?;
        }
        let Some(edges) = &self.edges else { return Ok(()) };
        match std::mem::replace(&mut self.edge_upload, EdgeUpload::None) {
            EdgeUpload::All => {
                renderer.set_edges(edges)?;
                // The highlight indexes the old edges.
                self.highlighted = None;
            }
            EdgeUpload::Values => renderer.set_edge_values(edges)?,
            EdgeUpload::Moved => {
                renderer.move_edges(edges)?;
                self.highlighted = None;
            }
            EdgeUpload::None => {}
        }
        let selection = self.scene.selection.clone();
        if self.highlighted.as_ref() != Some(&selection) {
            let mine = selection
                .as_ref()
                .map_or_else(Vec::new, |n| edges.touching(n, &self.model));
            renderer.set_edge_highlight(&mine)?;
            self.highlighted = Some(selection);
        }
        Ok(())
    }

    /// The sample tray's tiles (pictures of the samples), for the overlay.
    fn tray_tiles(&self, sd: &SceneDraw) -> Vec<TileInstance> {
        view::tray::tiles(&self.model, sd, &self.tray_offsets)
    }

    /// This frame's drawing, seen from `eye` (close-up neurons become voxels): uploads the
    /// values and the network's instances when they changed, the overlay always.
    pub fn upload(&mut self, renderer: &mut Renderer, eye: Vec3) -> gfx::Result<()> {
        // What this device can bundle (beyond it the weakest edges are dropped, and counted).
        let budget = DEFAULT_EDGE_BUDGET.min(renderer.max_bundled_edges());
        if budget != self.edge_options.budget {
            self.edge_options.budget = budget;
            self.edges = None;
            self.network = None;
        }
        let (network, overlay) = self.frame(eye);
        if let Some(draw) = network {
            renderer.set_network(draw)?;
        }
        renderer.set_overlay(&overlay)?;
        self.upload_edges(renderer)
    }

    /// This frame's drawing as data: the network's values and instances when they changed since
    /// the last call, and the overlay.
    pub fn frame(&mut self, eye: Vec3) -> (Option<&NetworkDraw>, DrawList) {
        let sd = self.scene_draw();
        self.refresh_network(&sd);
        let tray = self.tray_tiles(&sd);
        let mut overlay = view::overlay::build(&sd, tray);
        if let Some(t) = &self.timeline {
            let position = self.scene.checkpoint.as_ref().map(|c| c.position);
            view::overlay::timeline_panel(
                view::timeline_pose(),
                &t.info,
                position,
                self.scene.playing,
                &mut overlay,
            );
        }
        // The blocks by reference: this runs every frame, and big models have many tiles.
        let shown: Vec<&LayerPlacement> = sd.blocks.iter().map(|b| &b.placement).collect();
        self.change_marks(&sd, &shown, &mut overlay);
        self.edges_legend(&sd, &mut overlay);
        if let (Some(text), Some(input)) = (&self.hint, shown.first()) {
            view::annotate::hint(input, text, &mut overlay);
        }
        let Some((_, draw)) = &self.network else {
            unreachable!("made by refresh_network")
        };
        overlay
            .cubes
            .extend(view::lod::voxels(&shown, &draw.styles, eye, view::lod::VOXEL_BUDGET));
        let network = if std::mem::take(&mut self.network_dirty) {
            self.values_dirty = false;
            Some(draw)
        } else {
            None
        };
        (network, overlay)
    }
}

impl App {
    /// While scrubbing: under each block, how much its values changed from the checkpoint before
    /// the nearest one to the nearest one, for the current input (computed once per checkpoint).
    fn change_marks(&mut self, sd: &SceneDraw, shown: &[&LayerPlacement], overlay: &mut DrawList) {
        let (Some(t), Some(c)) = (&self.timeline, &self.scene.checkpoint) else {
            return;
        };
        let index = c.index;
        if index == 0 || index >= t.len() {
            return;
        }
        let key = (index, self.input_gen);
        if self.changes_asked != Some(key) {
            self.changes_asked = Some(key);
            let weights = (t.weights_at((index - 1) as f32), t.weights_at(index as f32));
            let asked = match weights {
                (Ok(before), Ok(now)) => self.submit(Request::Change {
                    key,
                    before,
                    now,
                    input: self.input.clone(),
                }),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            if let Err(e) = asked {
                tracing::warn!(checkpoint = index, "change since the previous checkpoint: {e}");
                self.changes = Some((key, Vec::new()));
            }
        }
        let Some(t) = &self.timeline else { return };
        let Some((k, per_layer)) = &self.changes else { return };
        if *k != key || per_layer.is_empty() {
            return;
        }
        let changes: Vec<f32> = sd
            .blocks
            .iter()
            .map(|b| match b.placement.source {
                nn::Source::Input => f32::NAN,
                nn::Source::Layer(i) => per_layer.get(i).copied().unwrap_or(f32::NAN),
            })
            .collect();
        let since = &t.info[index - 1].label;
        view::annotate::change_marks(shown, &changes, since, overlay);
    }
}
