//! The frame loop's shared part, the same in every mode (desktop window, XR, scripted
//! snapshots): run the scene systems on this frame's input, rerun the network when the input
//! image changes, and hand the renderer what changed (values once per input, the network's
//! instances when blocks move, fold or change layout, the overlay every frame).

use glam::{Mat4, Vec3};

use crate::gfx::colormap::Colormap;
use crate::gfx::{self, DrawList, NetworkDraw, Renderer, TileInstance};
use crate::input::InputSnapshot;
use crate::nn::{self, Activations, Model, NnError, Samples, Shape, Weights};
use crate::scene::systems::{self, FrameEvents};
use crate::scene::{LayoutKind, Network, Scale, Scene, SceneDraw, Stage, scene_draw};

/// Samples on the tray (at most).
pub const TRAY_SAMPLES: usize = 10;

/// What moves a block's drawing: its placement, fold and layout.
type BlockKey = (Mat4, f32, LayoutKind);

pub struct App {
    pub model: Model,
    pub weights: Weights,
    pub samples: Option<Samples>,
    pub acts: Activations,
    pub scene: Scene,
    prev: InputSnapshot,
    /// The network's drawing and the block state it was made for.
    network: Option<(Vec<BlockKey>, NetworkDraw)>,
    /// Where each tray sample's image starts in the uploaded values.
    tray_offsets: Vec<u32>,
    /// The values changed since the last upload.
    values_dirty: bool,
    network_dirty: bool,
}

impl App {
    /// The scene for `model` with `acts` (the network run on the current input), the sample tray
    /// filled from `samples`.
    pub fn new(
        model: Model,
        weights: Weights,
        samples: Option<Samples>,
        acts: Activations,
        stage: Stage,
        scale: Scale,
    ) -> App {
        let mut scene = Scene::new(&model, stage, scale);
        scene.set_sample_tray(samples.as_ref().map_or(0, |s| s.count.min(TRAY_SAMPLES)));
        App {
            model,
            weights,
            samples,
            acts,
            scene,
            prev: InputSnapshot::default(),
            network: None,
            tray_offsets: Vec::new(),
            values_dirty: true,
            network_dirty: true,
        }
    }

    /// Runs one frame of the scene systems on `input` (its `time` gives the frame's length). A
    /// new input image (a tray sample, a drawing) reruns the network at once.
    pub fn step(&mut self, input: &InputSnapshot) -> Result<FrameEvents, NnError> {
        let dt = (input.time - self.prev.time).clamp(0.0, 0.1);
        let net = Network {
            model: &self.model,
            weights: &self.weights,
            acts: &self.acts,
        };
        let events = systems::update(&mut self.scene, &net, input, &self.prev, dt)?;
        let raw = match (&events.input, events.sample, &self.samples) {
            (Some(drawn), _, _) => Some(drawn.clone()),
            (None, Some(i), Some(s)) if i < s.count => Some(s.image(i).to_vec()),
            _ => None,
        };
        if let Some(raw) = raw {
            self.acts = nn::forward(&self.model, &self.weights, &raw)?;
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
        self.prev = *input;
        Ok(events)
    }

    /// Every block's layout switched to linear (one row of tiles).
    pub fn all_linear(&mut self) {
        for &e in &self.scene.blocks.clone() {
            let linear = self
                .scene
                .world
                .get::<&crate::scene::world::Layout>(e)
                .is_ok_and(|l| l.0 == LayoutKind::Linear);
            if !linear {
                systems::toggle_layout(&mut self.scene.world, e);
            }
        }
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
        let keys: Vec<BlockKey> = sd.blocks.iter().map(|b| (b.stage_from_block, b.fold, b.layout)).collect();
        let stale = self.values_dirty || self.network.as_ref().is_none_or(|(k, _)| *k != keys);
        if stale {
            let mut draw = NetworkDraw::new(&self.model, &self.acts, &sd.placements());
            // The tray's pictures after the network's values.
            self.tray_offsets.clear();
            if let Some(s) = &self.samples {
                for t in &sd.tray {
                    self.tray_offsets.push(draw.values.len() as u32);
                    let image = s.image(t.sample.min(s.count.saturating_sub(1)));
                    draw.values.extend(gfx::draw::denormalized_input(&self.model, image));
                }
            }
            self.network = Some((keys, draw));
            self.network_dirty = true;
        }
        stale
    }

    /// The sample tray's tiles (pictures of the samples), for the overlay.
    fn tray_tiles(&self, sd: &SceneDraw) -> Vec<TileInstance> {
        let Shape::Chw(c, h, w) = self.model.input.shape else { return Vec::new() };
        let colormap = if c == 3 { Colormap::Rgb } else { Colormap::Grey };
        sd.tray
            .iter()
            .zip(&self.tray_offsets)
            .map(|(t, &offset)| TileInstance {
                world_from_tile: t.stage_from_tile.to_cols_array_2d(),
                offset,
                h: h as u32,
                w: w as u32,
                colormap: colormap as u32,
                scale: 1.0,
                _pad: [0; 3],
            })
            .collect()
    }

    /// This frame's drawing, seen from `eye` (close-up neurons become voxels): uploads the
    /// values and the network's instances when they changed, the overlay always.
    pub fn upload(&mut self, renderer: &mut Renderer, eye: Vec3) -> gfx::Result<()> {
        let (network, overlay) = self.frame(eye);
        if let Some((values, list)) = network {
            renderer.set_values(&values)?;
            renderer.set_draw_list(&list)?;
        }
        renderer.set_overlay(&overlay)
    }

    /// This frame's drawing as data: the network's values and instances when they changed since
    /// the last call, and the overlay.
    pub fn frame(&mut self, eye: Vec3) -> (Option<(Vec<f32>, DrawList)>, DrawList) {
        let sd = self.scene_draw();
        self.refresh_network(&sd);
        let tray = self.tray_tiles(&sd);
        let mut overlay = gfx::overlay::build(&sd, tray);
        let Some((_, draw)) = &self.network else {
            unreachable!("made by refresh_network")
        };
        overlay.cubes.extend(gfx::lod::voxels(
            &sd.placements(),
            &draw.styles,
            eye,
            gfx::lod::VOXEL_BUDGET,
        ));
        let network = if std::mem::take(&mut self.network_dirty) {
            self.values_dirty = false;
            Some((draw.values.clone(), draw.list.clone()))
        } else {
            None
        };
        (network, overlay)
    }
}

impl gfx::window::DesktopScene for App {
    fn frame(&mut self, renderer: &mut Renderer, input: &InputSnapshot, camera: &gfx::Camera) -> gfx::Result<()> {
        self.step(input).map_err(|e| gfx::GfxError::Scene(e.to_string()))?;
        self.upload(renderer, camera.eye)
    }
}
