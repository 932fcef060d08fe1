//! The XR session as a value the app polls: [`XrSession::new`] makes the instance, the Vulkan
//! device through the runtime, the session, its spaces, swapchains and actions; then, per loop
//! iteration, [`XrSession::poll_events`] (state changes, profile changes, the end), and while
//! the session runs [`XrSession::begin_frame`] → draw into [`XrSession::renderer`] →
//! [`XrSession::end_frame`].
//!
//! A frame (two in flight: the renderer submits and returns; a frame waits for the one two before
//! it, see `gfx::renderer::slots`): xrWaitFrame →
//! xrBeginFrame → sync actions, locate views and controller spaces at the predicted display time
//! → (the app updates and uploads) → acquire + wait a swapchain image → one multiview pass into
//! the renderer's 2-layer target, copied into that image → release → xrEndFrame with one
//! projection layer (layer 0 = left eye, 1 = right).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ash::vk;
use ash::vk::Handle;
use glam::Vec2;
use openxr as xr;

use super::actions::{Actions, locate, to_pose};
use super::input::{Hand, XrInput};
use super::runtime::Runtime;
use super::swapchain::Swapchains;
use super::{XrContext, XrError};
use crate::gfx::{EyeView, Fov, Renderer, RgbaImage, ValidationLog};

const VIEW_TYPE: xr::ViewConfigurationType = xr::ViewConfigurationType::PRIMARY_STEREO;
/// Eye height assumed when the runtime has neither STAGE nor LOCAL_FLOOR.
const LOCAL_EYE_HEIGHT: f32 = 1.6;

/// How to run the XR session.
#[derive(Debug, Clone, Default)]
pub struct XrOptions {
    /// Request exit after this many rendered frames (`None`: until the runtime or the user ends it).
    pub frames: Option<u64>,
    /// The OpenXR core validation layer and the Vulkan validation layer, recording into the
    /// outcome's logs.
    pub validation: bool,
    /// The edges' resolution scale ([`crate::gfx::RendererConfig::edge_scale`]).
    pub edge_scale: Option<u32>,
    /// Load the binding files from this folder instead of the built-in copies.
    pub bindings_dir: Option<PathBuf>,
    /// Read this rendered frame (from 1) back from its swapchain image ([`XrSession::end_frame`]).
    pub readback_frame: Option<u64>,
    /// Also show the left eye in this window (`--mirror`); the caller pumps its events.
    pub mirror: Option<Arc<winit::window::Window>>,
}

/// What the session is, once made.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub system: String,
    pub device: String,
    /// The swapchain's size per eye.
    pub width: u32,
    pub height: u32,
    /// The reference space used: stage, local_floor or local.
    pub space: &'static str,
    /// Width (x) and depth (z) of the play area, when the runtime knows it.
    pub stage_bounds: Option<Vec2>,
    /// Depth is submitted too (XR_KHR_composition_layer_depth).
    pub depth: bool,
}

/// What [`XrSession::poll_events`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The session state changed (IDLE, READY, SYNCHRONIZED, VISIBLE, FOCUSED, STOPPING,
    /// LOSS_PENDING, EXITING).
    State(&'static str),
    /// A hand's interaction profile changed (`profile` empty: none).
    Profile { hand: Hand, profile: String },
    /// The run is over (always the last event).
    Ended(EndReason),
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The session went through STOPPING to EXITING (the app or the runtime asked).
    Exited,
    /// LOSS_PENDING: the runtime is going away (headset unplugged, runtime shutting down).
    LossPending,
    /// The instance was lost (or is about to be).
    InstanceLost,
    /// An OpenXR call failed because the runtime is gone (e.g. killed).
    RuntimeGone,
    /// Stopped before the session began (interrupted while IDLE).
    Interrupted,
}

/// Frame timing (`--stats`).
#[derive(Debug, Clone, Default)]
pub struct FrameStats {
    /// CPU time of each rendered frame: from xrWaitFrame's return to xrEndFrame's.
    pub cpu: Vec<Duration>,
    /// Display periods skipped between consecutive frames' predicted display times.
    pub missed: u64,
    /// Frames the runtime said not to render (should_render false).
    pub not_rendered: u64,
}

/// What is left of a session after [`XrSession::finish`].
pub struct XrOutcome {
    pub frames: u64,
    pub focused: bool,
    /// Read after the renderer (and so the device) was destroyed.
    pub vulkan_validation: Vec<String>,
    pub xr_validation: Vec<String>,
    pub stats: FrameStats,
}

/// A frame to draw: begun by [`XrSession::begin_frame`], ended by [`XrSession::end_frame`].
pub struct FrameBegin {
    /// The number this frame gets once ended (from 1).
    pub index: u64,
    /// Both hands and the head at the predicted display time.
    pub input: XrInput,
    /// Each eye (0 = left) at the predicted display time.
    pub views: [EyeView; 2],
    time: xr::Time,
    located: Vec<xr::View>,
    started: Instant,
}

/// The OpenXR handles, in the order they are destroyed (the instance last).
struct Handles {
    actions: Actions,
    swapchains: Swapchains,
    world: xr::Space,
    head_space: xr::Space,
    stream: xr::FrameStream<xr::Vulkan>,
    waiter: xr::FrameWaiter,
    session: xr::Session<xr::Vulkan>,
    runtime: Runtime,
}

/// A running XR session and the renderer drawing its frames. Dropped (or [`XrSession::finish`]ed):
/// the XR handles first, then the renderer (waits idle; Vulkan objects, allocator, device).
pub struct XrSession {
    // Before the renderer: the runtime's objects go before the device they use.
    xr: Handles,
    renderer: Renderer,
    vk_log: ValidationLog,
    info: SessionInfo,
    space_type: xr::ReferenceSpaceType,
    blend: xr::EnvironmentBlendMode,
    frames_limit: Option<u64>,
    readback_frame: Option<u64>,
    running: bool,
    exit_requested: bool,
    focused: bool,
    frames: u64,
    /// `frames`, for other threads ([`XrSession::frame_counter`]).
    frame_counter: Arc<AtomicU64>,
    stats: FrameStats,
    last_display: Option<xr::Time>,
    buffer: xr::EventDataBuffer,
}

impl XrSession {
    /// Makes the session. Errors of kind [`XrError::is_unavailable`] come before anything was
    /// set up: the caller may fall back to another mode.
    pub fn new(options: &XrOptions) -> Result<XrSession, XrError> {
        let runtime = Runtime::new(options.validation)?;
        let device = runtime.device(options.validation, options.mirror.as_ref())?;
        let mut renderer = Renderer::from_device(device)?;
        renderer.set_edge_scale(options.edge_scale);
        let vk_log = renderer.validation_log();
        // The renderer is dropped after the handles made here when any of this fails.
        let (xr, info, space_type, blend) = Self::make_handles(runtime, &renderer, options)?;
        Ok(XrSession {
            xr,
            renderer,
            vk_log,
            info,
            space_type,
            blend,
            frames_limit: options.frames,
            readback_frame: options.readback_frame,
            running: false,
            exit_requested: false,
            focused: false,
            frames: 0,
            frame_counter: Arc::default(),
            stats: FrameStats::default(),
            last_display: None,
            buffer: xr::EventDataBuffer::new(),
        })
    }

    /// Everything after the device: session, spaces, swapchains, actions.
    fn make_handles(
        runtime: Runtime,
        renderer: &Renderer,
        options: &XrOptions,
    ) -> Result<(Handles, SessionInfo, xr::ReferenceSpaceType, xr::EnvironmentBlendMode), XrError> {
        let (instance, system) = (&runtime.instance, runtime.system);
        let device = renderer.device();
        let info = xr::vulkan::SessionCreateInfo {
            instance: device.instance.handle().as_raw() as _,
            physical_device: device.physical.as_raw() as _,
            device: device.device.handle().as_raw() as _,
            queue_family_index: device.queue_family,
            queue_index: 0,
        };
        // SAFETY: the handles are live and stay so until the session is destroyed (the renderer
        // outlives every XR handle); the queue is only used from this thread.
        let (session, waiter, stream) =
            unsafe { instance.create_session::<xr::Vulkan>(system, &info) }.xr("create the session")?;

        let spaces = session.enumerate_reference_spaces().xr("list reference spaces")?;
        let (space_type, space_name, origin) = if spaces.contains(&xr::ReferenceSpaceType::STAGE) {
            (xr::ReferenceSpaceType::STAGE, "stage", xr::Posef::IDENTITY)
        } else if spaces.contains(&xr::ReferenceSpaceType::LOCAL_FLOOR) {
            (xr::ReferenceSpaceType::LOCAL_FLOOR, "local_floor", xr::Posef::IDENTITY)
        } else {
            // The floor an eye height below the head's starting point.
            let mut origin = xr::Posef::IDENTITY;
            origin.position.y = -LOCAL_EYE_HEIGHT;
            (xr::ReferenceSpaceType::LOCAL, "local", origin)
        };
        let world = session
            .create_reference_space(space_type, origin)
            .xr("create the reference space")?;
        let head_space = session
            .create_reference_space(xr::ReferenceSpaceType::VIEW, xr::Posef::IDENTITY)
            .xr("create the view space")?;

        let eyes = instance
            .enumerate_view_configuration_views(system, VIEW_TYPE)
            .xr("list the stereo views")?;
        if eyes.len() != 2 {
            return Err(XrError::MissingFeature(format!(
                "a stereo view configuration (it has {} views)",
                eyes.len()
            )));
        }
        let max = device.max_image_dimension;
        let extent = vk::Extent2D {
            width: eyes[0].recommended_image_rect_width.clamp(1, max),
            height: eyes[0].recommended_image_rect_height.clamp(1, max),
        };
        let swapchains = Swapchains::new(instance, &session, device, extent)?;
        let blend = instance
            .enumerate_environment_blend_modes(system, VIEW_TYPE)
            .xr("list blend modes")?
            .first()
            .copied()
            .unwrap_or(xr::EnvironmentBlendMode::OPAQUE);
        let actions = Actions::new(
            instance,
            &session,
            options.bindings_dir.as_deref(),
            instance.exts().ext_hand_interaction.is_some(),
        )?;
        let info = SessionInfo {
            system: runtime.system_name.clone(),
            device: device.name().to_string(),
            width: extent.width,
            height: extent.height,
            space: space_name,
            stage_bounds: stage_bounds(&session, space_type),
            depth: swapchains.has_depth(),
        };
        let handles = Handles {
            actions,
            swapchains,
            world,
            head_space,
            stream,
            waiter,
            session,
            runtime,
        };
        Ok((handles, info, space_type, blend))
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The renderer the frames are drawn with: upload the scene to it between
    /// [`XrSession::begin_frame`] and [`XrSession::end_frame`].
    pub fn renderer(&mut self) -> &mut Renderer {
        &mut self.renderer
    }

    /// The session has begun (READY) and not yet stopped: frames are to be drawn.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Frames rendered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The frames rendered so far, readable from another thread while the session is driven
    /// (e.g. to stop a loop after some frames).
    pub fn frame_counter(&self) -> Arc<AtomicU64> {
        self.frame_counter.clone()
    }

    /// Asks the runtime to end the session (it goes through STOPPING to EXITING, reported by
    /// [`XrSession::poll_events`]). Returns the end reason when the run ends right away: the
    /// session never began, or the runtime is gone. Asking again does nothing.
    pub fn request_exit(&mut self) -> Option<EndReason> {
        if self.exit_requested {
            return None;
        }
        if !self.running {
            return Some(EndReason::Interrupted);
        }
        match self.xr.session.request_exit() {
            Ok(()) => {
                self.exit_requested = true;
                None
            }
            Err(e) => {
                tracing::warn!("request exit: {e}");
                Some(EndReason::RuntimeGone)
            }
        }
    }

    /// The runtime's pending events, acted on (READY begins the session, STOPPING ends it);
    /// stops at the first that ends the run ([`SessionEvent::Ended`], then the last).
    pub fn poll_events(&mut self) -> Result<Vec<SessionEvent>, XrError> {
        let mut out = Vec::new();
        loop {
            let event = match self.xr.runtime.instance.poll_event(&mut self.buffer) {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(out),
                Err(e) => {
                    tracing::warn!("poll events: {e}");
                    out.push(SessionEvent::Ended(EndReason::RuntimeGone));
                    return Ok(out);
                }
            };
            let end = match event {
                xr::Event::SessionStateChanged(e) => {
                    let state = e.state();
                    tracing::info!(state = state_name(state), "session state");
                    out.push(SessionEvent::State(state_name(state)));
                    match state {
                        xr::SessionState::READY => {
                            self.xr.session.begin(VIEW_TYPE).xr("begin the session")?;
                            self.running = true;
                            None
                        }
                        xr::SessionState::FOCUSED => {
                            self.focused = true;
                            None
                        }
                        xr::SessionState::STOPPING => {
                            self.xr.session.end().xr("end the session")?;
                            self.running = false;
                            None
                        }
                        xr::SessionState::EXITING => Some(EndReason::Exited),
                        // The runtime goes away; a later instance could find it again, but an
                        // app run ends here.
                        xr::SessionState::LOSS_PENDING => Some(EndReason::LossPending),
                        _ => None,
                    }
                }
                xr::Event::InstanceLossPending(_) => Some(EndReason::InstanceLost),
                xr::Event::EventsLost(e) => {
                    tracing::warn!(lost = e.lost_event_count(), "OpenXR events lost");
                    None
                }
                xr::Event::ReferenceSpaceChangePending(_) => {
                    tracing::info!(bounds = ?stage_bounds(&self.xr.session, self.space_type), "the play area changed");
                    None
                }
                xr::Event::InteractionProfileChanged(_) => {
                    for hand in Hand::BOTH {
                        out.push(SessionEvent::Profile {
                            hand,
                            profile: self.profile(hand),
                        });
                    }
                    None
                }
                _ => None,
            };
            if let Some(end) = end {
                out.push(SessionEvent::Ended(end));
                return Ok(out);
            }
        }
    }

    /// `hand`'s current interaction profile ("" when none).
    fn profile(&self, hand: Hand) -> String {
        let instance = &self.xr.runtime.instance;
        self.xr
            .session
            .current_interaction_profile(self.xr.actions.hands[hand as usize])
            .ok()
            .filter(|p| *p != xr::Path::NULL)
            .and_then(|p| instance.path_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Waits for and begins the next frame. `None`: this frame shows nothing and was ended
    /// already (the runtime said not to render, the views are not tracked, or the frames
    /// asked for are done: frames go on until STOPPING, but nothing more is drawn).
    pub fn begin_frame(&mut self) -> Result<Option<FrameBegin>, XrError> {
        let xr = &mut self.xr;
        let state = xr.waiter.wait().xr("wait for the frame")?;
        let started = Instant::now();
        xr.stream.begin().xr("begin the frame")?;
        let time = state.predicted_display_time;
        if let Some(last) = self.last_display {
            let period = state.predicted_display_period.as_nanos().max(1);
            let skipped = (time.as_nanos() - last.as_nanos() - period / 2) / period;
            self.stats.missed += skipped.max(0) as u64;
        }
        self.last_display = Some(time);
        if self.frames_limit.is_some_and(|n| self.frames >= n) {
            xr.stream.end(time, self.blend, &[]).xr("end a frame after the last")?;
            return Ok(None);
        }
        if !state.should_render {
            self.stats.not_rendered += 1;
            xr.stream.end(time, self.blend, &[]).xr("end an empty frame")?;
            return Ok(None);
        }
        let hands = xr.actions.read(&xr.session, &xr.world, time)?;
        let head = locate(&xr.head_space, &xr.world, time)?;
        let (flags, located) = xr
            .session
            .locate_views(VIEW_TYPE, time, &xr.world)
            .xr("locate the views")?;
        let tracked = xr::ViewStateFlags::POSITION_VALID | xr::ViewStateFlags::ORIENTATION_VALID;
        if !flags.contains(tracked) || located.len() != 2 {
            xr.stream.end(time, self.blend, &[]).xr("end an untracked frame")?;
            return Ok(None);
        }
        let eye = |v: &xr::View| {
            let pose = to_pose(v.pose);
            let f = v.fov;
            EyeView::new(
                pose.position,
                pose.orientation,
                Fov {
                    left: f.angle_left,
                    right: f.angle_right,
                    up: f.angle_up,
                    down: f.angle_down,
                },
            )
        };
        Ok(Some(FrameBegin {
            index: self.frames + 1,
            input: XrInput { hands, head },
            views: [eye(&located[0]), eye(&located[1])],
            time,
            located,
            started,
        }))
    }

    /// A short haptic pulse on `hand`.
    pub fn pulse(&self, hand: Hand) -> Result<(), XrError> {
        self.xr.actions.pulse(&self.xr.session, hand)
    }

    /// Renders what was uploaded into this frame's swapchain image, seen from `frame.views`, and
    /// ends the frame. On [`XrOptions::readback_frame`] returns both eyes of the image. Once the
    /// frames asked for are done, asks the runtime to end the session.
    pub fn end_frame(&mut self, frame: FrameBegin) -> Result<Option<Vec<RgbaImage>>, XrError> {
        let xr = &mut self.xr;
        let images = xr.swapchains.acquire()?;
        let readback = self.readback_frame == Some(frame.index);
        let extent = xr.swapchains.extent;
        // SAFETY: the image was acquired and waited for, is 2 layers of COLOR_FORMAT of
        // `extent`, and nobody else touches it until it is released below.
        let rendered = unsafe {
            self.renderer.render_to_xr_image(
                images.color,
                images.depth,
                extent,
                frame.views.map(|e| e.clip_from_world()),
                readback,
            )
        };
        // Released even when rendering failed: the runtime must get it back.
        xr.swapchains.release()?;
        let pictures = rendered?;
        xr.swapchains.end_frame(
            &mut xr.stream,
            &xr.world,
            frame.time,
            self.blend,
            &frame.located,
            &frame.views,
        )?;
        self.stats.cpu.push(frame.started.elapsed());
        self.frames += 1;
        self.frame_counter.store(self.frames, Ordering::Relaxed);
        if self.frames_limit.is_some_and(|n| self.frames >= n) && !self.exit_requested {
            xr.session.request_exit().xr("request exit")?;
            self.exit_requested = true;
        }
        Ok(pictures)
    }

    /// Ends the session: the XR handles (the instance last), then the renderer; returns the
    /// counts and what the validation layers reported, teardown included.
    pub fn finish(mut self) -> XrOutcome {
        let xr_log = self.xr.runtime.log.clone();
        let vk_log = self.vk_log.clone();
        let (frames, focused) = (self.frames, self.focused);
        let stats = std::mem::take(&mut self.stats);
        // Drop: the frames in flight waited for, then the XR handles, then the renderer.
        drop(self);
        XrOutcome {
            frames,
            focused,
            vulkan_validation: vk_log.messages(),
            xr_validation: xr_log.messages(),
            stats,
        }
    }
}

impl Drop for XrSession {
    fn drop(&mut self) {
        // The last frames may still be drawing into the runtime's swapchain images (two frames in
        // flight): done before the fields drop (the XR handles first, then the renderer), on
        // every path out, errors included.
        if let Err(e) = self.renderer.wait_frames() {
            tracing::error!("waiting for the frames in flight before the XR teardown: {e}");
        }
    }
}

/// The play area's width and depth, when the space is STAGE and the runtime knows them.
fn stage_bounds(session: &xr::Session<xr::Vulkan>, space_type: xr::ReferenceSpaceType) -> Option<Vec2> {
    (space_type == xr::ReferenceSpaceType::STAGE)
        .then(|| session.reference_space_bounds_rect(space_type).ok().flatten())
        .flatten()
        .map(|e| Vec2::new(e.width, e.height))
}

fn state_name(s: xr::SessionState) -> &'static str {
    match s {
        xr::SessionState::IDLE => "IDLE",
        xr::SessionState::READY => "READY",
        xr::SessionState::SYNCHRONIZED => "SYNCHRONIZED",
        xr::SessionState::VISIBLE => "VISIBLE",
        xr::SessionState::FOCUSED => "FOCUSED",
        xr::SessionState::STOPPING => "STOPPING",
        xr::SessionState::LOSS_PENDING => "LOSS_PENDING",
        xr::SessionState::EXITING => "EXITING",
        _ => "UNKNOWN",
    }
}

impl XrError {
    /// Results that mean the runtime (or its connection) is gone: the run ends
    /// ([`EndReason::RuntimeGone`]) rather than fails.
    pub fn is_runtime_gone(&self) -> bool {
        use xr::sys::Result as R;
        matches!(
            self,
            XrError::Xr { result, .. }
                if [R::ERROR_INSTANCE_LOST, R::ERROR_SESSION_LOST, R::ERROR_RUNTIME_FAILURE, R::ERROR_RUNTIME_UNAVAILABLE]
                    .contains(result)
        )
    }
}
