//! The XR run: instance → system → Vulkan through the runtime → session → frame loop.
//!
//! Frame loop (one frame in flight; the renderer waits for its fence before returning):
//! xrWaitFrame → xrBeginFrame → sync actions, locate views and controller spaces at the
//! predicted display time → acquire + wait a swapchain image → one multiview pass into the
//! renderer's 2-layer target, copied into that image → release → xrEndFrame with one projection
//! layer (layer 0 = left eye, 1 = right).

use std::ffi::{CStr, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ash::vk;
use ash::vk::Handle;
use glam::{Quat, Vec2, Vec3};
use openxr as xr;

use super::bindings::{ActionName, load_bindings};
use super::input::{Hand, HandInput, Pose, XrInput, hand_index};
use super::{XrContext, XrError};
use crate::gfx::{COLOR_FORMAT, Device, EyeView, Fov, GfxError, Renderer, RgbaImage, ValidationLog, VulkanCreator};

const CORE_VALIDATION: &str = "XR_APILAYER_LUNARG_core_validation";
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
    /// Read this rendered frame (from 1) back from its swapchain image ([`XrEvent::Frame`]).
    pub readback_frame: Option<u64>,
    /// Also show the left eye in this window (`--mirror`); its events are pumped on
    /// [`XrEvent::Poll`].
    pub mirror: Option<std::sync::Arc<winit::window::Window>>,
}

/// What happened, as it happens.
pub enum XrEvent<'a> {
    /// The session exists; its swapchain is `width`×`height` per eye.
    Ready {
        system: &'a str,
        device: &'a str,
        width: u32,
        height: u32,
        /// The reference space used: stage, local_floor or local.
        space: &'static str,
        /// Width (x) and depth (z) of the play area, when the runtime knows it.
        stage_bounds: Option<Vec2>,
        /// Depth is submitted too (XR_KHR_composition_layer_depth).
        depth: bool,
    },
    /// The session state changed (IDLE, READY, SYNCHRONIZED, VISIBLE, FOCUSED, STOPPING,
    /// LOSS_PENDING, EXITING).
    State(&'static str),
    /// A hand's interaction profile changed (`profile` empty: none).
    Profile { hand: Hand, profile: &'a str },
    /// Once per loop iteration (every frame, and while waiting for the session to start): pump
    /// the mirror window's events here; [`Feedback::exit`] ends the session through the runtime.
    Poll,
    /// This frame's input, before it is rendered: update the scene and upload what changed to
    /// `renderer` (its draw list is what the frame shows). Its [`Feedback::pulse`] is applied.
    Update {
        input: &'a XrInput,
        renderer: &'a mut Renderer,
    },
    /// Frame `index` (from 1) was rendered and submitted.
    Frame {
        index: u64,
        input: &'a XrInput,
        views: &'a [EyeView; 2],
        /// Both eyes of this frame's swapchain image, on [`XrOptions::readback_frame`].
        readback: Option<&'a [RgbaImage]>,
    },
}

/// What the app wants the runtime to do after an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    /// Hands to give a short haptic pulse.
    pub pulse: Vec<Hand>,
    /// End the session through the runtime (e.g. the mirror window was closed).
    pub exit: bool,
    /// The mirror window changed size.
    pub mirror_resized: bool,
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

/// How the run ended.
pub struct XrOutcome {
    pub frames: u64,
    pub focused: bool,
    pub end: EndReason,
    /// Read after the renderer (and so the device) was destroyed.
    pub vulkan_validation: Vec<String>,
    pub xr_validation: Vec<String>,
    pub stats: FrameStats,
}

/// Makes the Vulkan instance and device through the runtime (XR_KHR_vulkan_enable2).
struct RuntimeCreator<'a> {
    instance: &'a xr::Instance,
    system: xr::SystemId,
}

fn get_instance_proc_addr(entry: &ash::Entry) -> xr::sys::platform::VkGetInstanceProcAddr {
    // SAFETY: the same C signature (vkGetInstanceProcAddr), spelled with another crate's types.
    unsafe {
        std::mem::transmute::<vk::PFN_vkGetInstanceProcAddr, xr::sys::platform::VkGetInstanceProcAddr>(
            entry.static_fn().get_instance_proc_addr,
        )
    }
}

impl VulkanCreator for RuntimeCreator<'_> {
    unsafe fn create_instance(
        &self,
        entry: &ash::Entry,
        info: &vk::InstanceCreateInfo<'_>,
    ) -> Result<vk::Instance, GfxError> {
        // SAFETY: per the trait's contract; the runtime adds its extensions and calls through
        // `entry`'s vkGetInstanceProcAddr.
        let made = unsafe {
            self.instance.create_vulkan_instance(
                self.system,
                get_instance_proc_addr(entry),
                info as *const _ as *const _,
            )
        };
        match made {
            Ok(Ok(raw)) => Ok(vk::Instance::from_raw(raw as u64)),
            Ok(Err(result)) => Err(GfxError::Vk {
                what: "create the Vulkan instance through the OpenXR runtime",
                result: vk::Result::from_raw(result),
            }),
            Err(e) => Err(GfxError::NoDevice(format!(
                "the OpenXR runtime could not create a Vulkan instance: {e}"
            ))),
        }
    }

    unsafe fn physical_device(&self, instance: vk::Instance) -> Result<vk::PhysicalDevice, GfxError> {
        // SAFETY: `instance` was made through this runtime.
        let raw = unsafe {
            self.instance
                .vulkan_graphics_device(self.system, instance.as_raw() as _)
        };
        raw.map(|p| vk::PhysicalDevice::from_raw(p as u64))
            .map_err(|e| GfxError::NoDevice(format!("the OpenXR runtime names no Vulkan device: {e}")))
    }

    unsafe fn create_device(
        &self,
        entry: &ash::Entry,
        physical: vk::PhysicalDevice,
        info: &vk::DeviceCreateInfo<'_>,
    ) -> Result<vk::Device, GfxError> {
        // SAFETY: per the trait's contract.
        let made = unsafe {
            self.instance.create_vulkan_device(
                self.system,
                get_instance_proc_addr(entry),
                physical.as_raw() as _,
                info as *const _ as *const _,
            )
        };
        match made {
            Ok(Ok(raw)) => Ok(vk::Device::from_raw(raw as u64)),
            Ok(Err(result)) => Err(GfxError::Vk {
                what: "create the Vulkan device through the OpenXR runtime",
                result: vk::Result::from_raw(result),
            }),
            Err(e) => Err(GfxError::NoDevice(format!(
                "the OpenXR runtime could not create a Vulkan device: {e}"
            ))),
        }
    }
}

/// XR_EXT_debug_utils messenger recording warnings and errors (the core validation layer's).
struct XrMessenger {
    handle: xr::sys::DebugUtilsMessengerEXT,
    destroy: xr::sys::pfn::DestroyDebugUtilsMessengerEXT,
    /// Boxed: its address is the messenger's user data.
    _log: Box<ValidationLog>,
}

/// # Safety
/// Called by the OpenXR loader with valid data; `user` is the boxed log of a live [`XrMessenger`].
unsafe extern "system" fn on_xr_message(
    severity: xr::sys::DebugUtilsMessageSeverityFlagsEXT,
    _types: xr::sys::DebugUtilsMessageTypeFlagsEXT,
    data: *const xr::sys::DebugUtilsMessengerCallbackDataEXT,
    user: *mut c_void,
) -> xr::sys::Bool32 {
    // SAFETY: see the function's contract.
    let (log, text) = unsafe {
        let log = &*(user as *const ValidationLog);
        let text = data.as_ref().filter(|d| !d.message.is_null()).map_or_else(
            || "(no message)".into(),
            |d| CStr::from_ptr(d.message).to_string_lossy(),
        );
        (log, text)
    };
    tracing::warn!("openxr: {text}");
    log.push(format!("{severity:?}: {text}"));
    xr::sys::FALSE
}

impl XrMessenger {
    fn new(instance: &xr::Instance, log: ValidationLog) -> Result<XrMessenger, XrError> {
        let Some(utils) = instance.exts().ext_debug_utils else {
            return Err(XrError::MissingFeature("XR_EXT_debug_utils".into()));
        };
        let log = Box::new(log);
        use xr::sys::DebugUtilsMessageSeverityFlagsEXT as S;
        use xr::sys::DebugUtilsMessageTypeFlagsEXT as T;
        let info = xr::sys::DebugUtilsMessengerCreateInfoEXT {
            ty: xr::sys::DebugUtilsMessengerCreateInfoEXT::TYPE,
            next: std::ptr::null(),
            message_severities: S::WARNING | S::ERROR,
            message_types: T::GENERAL | T::VALIDATION | T::PERFORMANCE | T::CONFORMANCE,
            user_callback: Some(on_xr_message),
            user_data: &*log as *const ValidationLog as *mut c_void,
        };
        let mut handle = <xr::sys::DebugUtilsMessengerEXT as xr::sys::Handle>::NULL;
        // SAFETY: a valid create info on a live instance; the log lives as long as the messenger.
        let result = unsafe { (utils.create_debug_utils_messenger)(instance.as_raw(), &info, &mut handle) };
        if result.into_raw() < 0 {
            return Err(XrError::Xr {
                what: "create the debug messenger",
                result,
            });
        }
        Ok(XrMessenger {
            handle,
            destroy: utils.destroy_debug_utils_messenger,
            _log: log,
        })
    }
}

impl Drop for XrMessenger {
    fn drop(&mut self) {
        // SAFETY: a live messenger of a still live instance (dropped before it).
        unsafe { (self.destroy)(self.handle) };
    }
}

/// The action set, its actions and the controllers' pose spaces.
struct Actions {
    // Spaces first: they are destroyed before the actions they come from.
    aim_spaces: [xr::Space; 2],
    grip_spaces: [xr::Space; 2],
    // Kept with their spaces (which also hold them); never read directly.
    _aim: xr::Action<xr::Posef>,
    _grip: xr::Action<xr::Posef>,
    select: xr::Action<bool>,
    grab: xr::Action<bool>,
    fold: xr::Action<bool>,
    layout: xr::Action<bool>,
    menu: xr::Action<bool>,
    thumbstick: xr::Action<xr::Vector2f>,
    haptic: xr::Action<xr::Haptic>,
    set: xr::ActionSet,
    hands: [xr::Path; 2],
}

impl Actions {
    fn new(
        instance: &xr::Instance,
        session: &xr::Session<xr::Vulkan>,
        options: &XrOptions,
        hand_interaction: bool,
    ) -> Result<Actions, XrError> {
        let set = instance
            .create_action_set("netwalk", "netwalk", 0)
            .xr("create the action set")?;
        let hands = [
            instance.string_to_path("/user/hand/left").xr("path /user/hand/left")?,
            instance
                .string_to_path("/user/hand/right")
                .xr("path /user/hand/right")?,
        ];
        let aim = set
            .create_action::<xr::Posef>("aim_pose", "Aim pose", &hands)
            .xr("create action aim_pose")?;
        let grip = set
            .create_action::<xr::Posef>("grip_pose", "Grip pose", &hands)
            .xr("create action grip_pose")?;
        let button = |name: &str, label: &str| set.create_action::<bool>(name, label, &hands);
        let select = button("select", "Select").xr("create action select")?;
        let grab = button("grab", "Grab").xr("create action grab")?;
        let fold = button("fold", "Fold or expand").xr("create action fold")?;
        let layout = button("layout", "Switch layout").xr("create action layout")?;
        let menu = button("menu", "Menu").xr("create action menu")?;
        let thumbstick = set
            .create_action::<xr::Vector2f>("thumbstick", "Thumbstick", &hands)
            .xr("create action thumbstick")?;
        let haptic = set
            .create_action::<xr::Haptic>("haptic", "Haptic", &hands)
            .xr("create action haptic")?;

        for profile in load_bindings(options.bindings_dir.as_deref())? {
            if let Some(ext) = &profile.requires_extension
                && !(ext == "XR_EXT_hand_interaction" && hand_interaction)
            {
                tracing::info!(file = %profile.file, extension = %ext, "skipping bindings: the runtime lacks the extension");
                continue;
            }
            let err = |problem: String| XrError::Bindings {
                file: profile.file.clone(),
                problem,
            };
            let profile_path = instance
                .string_to_path(&profile.profile)
                .map_err(|e| err(format!("field \"profile\": `{}`: {e}", profile.profile)))?;
            let mut suggested = Vec::new();
            for (action, path) in &profile.bindings {
                let p = instance
                    .string_to_path(path)
                    .map_err(|e| err(format!("field \"bindings.{}\": `{path}`: {e}", action.name())))?;
                suggested.push(match action {
                    ActionName::AimPose => xr::Binding::new(&aim, p),
                    ActionName::GripPose => xr::Binding::new(&grip, p),
                    ActionName::Select => xr::Binding::new(&select, p),
                    ActionName::Grab => xr::Binding::new(&grab, p),
                    ActionName::Fold => xr::Binding::new(&fold, p),
                    ActionName::Layout => xr::Binding::new(&layout, p),
                    ActionName::Menu => xr::Binding::new(&menu, p),
                    ActionName::Thumbstick => xr::Binding::new(&thumbstick, p),
                    ActionName::Haptic => xr::Binding::new(&haptic, p),
                });
            }
            instance
                .suggest_interaction_profile_bindings(profile_path, &suggested)
                .map_err(|e| {
                    err(format!(
                        "the runtime rejected the bindings for {}: {e}",
                        profile.profile
                    ))
                })?;
        }
        session.attach_action_sets(&[&set]).xr("attach the action set")?;
        let space =
            |action: &xr::Action<xr::Posef>, hand: xr::Path| action.create_space(session, hand, xr::Posef::IDENTITY);
        let aim_spaces = [
            space(&aim, hands[0]).xr("create the left aim space")?,
            space(&aim, hands[1]).xr("create the right aim space")?,
        ];
        let grip_spaces = [
            space(&grip, hands[0]).xr("create the left grip space")?,
            space(&grip, hands[1]).xr("create the right grip space")?,
        ];
        Ok(Actions {
            aim_spaces,
            grip_spaces,
            _aim: aim,
            _grip: grip,
            select,
            grab,
            fold,
            layout,
            menu,
            thumbstick,
            haptic,
            set,
            hands,
        })
    }

    /// Syncs the actions and reads both hands at `time` in `base`.
    fn read(
        &self,
        session: &xr::Session<xr::Vulkan>,
        base: &xr::Space,
        time: xr::Time,
    ) -> Result<[HandInput; 2], XrError> {
        session
            .sync_actions(&[xr::ActiveActionSet::new(&self.set)])
            .xr("sync actions")?;
        let mut hands = [HandInput::default(); 2];
        for (i, hand) in hands.iter_mut().enumerate() {
            let path = self.hands[i];
            hand.aim = locate(&self.aim_spaces[i], base, time)?;
            hand.grip = locate(&self.grip_spaces[i], base, time)?;
            let pressed = |a: &xr::Action<bool>| a.state(session, path).map(|s| s.is_active && s.current_state);
            hand.select = pressed(&self.select).xr("read select")?;
            hand.grab = pressed(&self.grab).xr("read grab")?;
            hand.fold = pressed(&self.fold).xr("read fold")?;
            hand.layout = pressed(&self.layout).xr("read layout")?;
            hand.menu = pressed(&self.menu).xr("read menu")?;
            let stick = self.thumbstick.state(session, path).xr("read thumbstick")?;
            if stick.is_active {
                hand.thumbstick = Vec2::new(stick.current_state.x, stick.current_state.y);
            }
        }
        Ok(hands)
    }

    /// A short pulse on one hand (on select).
    fn pulse(&self, session: &xr::Session<xr::Vulkan>, hand: Hand) -> Result<(), XrError> {
        let vibration = xr::HapticVibration::new()
            .amplitude(0.5)
            .duration(xr::Duration::from_nanos(20_000_000))
            .frequency(xr::FREQUENCY_UNSPECIFIED);
        self.haptic
            .apply_feedback(session, self.hands[hand_index(hand)], &vibration)
            .xr("apply haptic feedback")
    }
}

fn to_pose(p: xr::Posef) -> Pose {
    let o = p.orientation;
    Pose {
        position: Vec3::new(p.position.x, p.position.y, p.position.z),
        orientation: Quat::from_xyzw(o.x, o.y, o.z, o.w).normalize(),
    }
}

/// `space`'s pose in `base` at `time`, when both position and orientation are valid.
fn locate(space: &xr::Space, base: &xr::Space, time: xr::Time) -> Result<Option<Pose>, XrError> {
    let l = space.locate(base, time).xr("locate a space")?;
    let valid = xr::SpaceLocationFlags::POSITION_VALID | xr::SpaceLocationFlags::ORIENTATION_VALID;
    Ok(l.location_flags.contains(valid).then(|| to_pose(l.pose)))
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

/// Results that mean the runtime (or its connection) is gone.
fn runtime_gone(e: &XrError) -> bool {
    use xr::sys::Result as R;
    matches!(
        e,
        XrError::Xr { result, .. }
            if [R::ERROR_INSTANCE_LOST, R::ERROR_SESSION_LOST, R::ERROR_RUNTIME_FAILURE, R::ERROR_RUNTIME_UNAVAILABLE]
                .contains(result)
    )
}

/// Runs `draw` in the headset until the session ends (the runtime or the user ends it,
/// `options.frames` were rendered, or `stop` is set, e.g. by Ctrl-C: exit is then requested
/// through the runtime). Errors of kind [`XrError::is_unavailable`] come before anything was
/// set up: the caller may fall back to another mode.
pub fn run_xr(
    options: &XrOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(XrEvent) -> Feedback,
) -> Result<XrOutcome, XrError> {
    // SAFETY: loads the system's OpenXR loader, a conforming library.
    let entry = unsafe { xr::Entry::load(&()) }.map_err(|e| XrError::NoLoader(e.to_string()))?;
    let unavailable = |e: xr::sys::Result| {
        use xr::sys::Result as R;
        if [
            R::ERROR_RUNTIME_UNAVAILABLE,
            R::ERROR_RUNTIME_FAILURE,
            R::ERROR_INSTANCE_LOST,
        ]
        .contains(&e)
        {
            XrError::NoRuntime(e.to_string())
        } else {
            XrError::Xr {
                what: "list the runtime's extensions",
                result: e,
            }
        }
    };
    let available = entry.enumerate_extensions().map_err(unavailable)?;
    if !available.khr_vulkan_enable2 {
        return Err(XrError::MissingFeature("XR_KHR_vulkan_enable2".into()));
    }
    let mut extensions = xr::ExtensionSet::default();
    extensions.khr_vulkan_enable2 = true;
    extensions.ext_hand_interaction = available.ext_hand_interaction;
    // The depth layer helps the compositor reproject; used when offered.
    extensions.khr_composition_layer_depth = available.khr_composition_layer_depth;
    extensions.ext_debug_utils = options.validation && available.ext_debug_utils;
    let mut layers = Vec::new();
    if options.validation {
        let found = entry.enumerate_layers().xr("list API layers")?;
        if !found.iter().any(|l| l.layer_name == CORE_VALIDATION) {
            return Err(XrError::NoValidationLayer);
        }
        layers.push(CORE_VALIDATION);
    }
    let app = xr::ApplicationInfo {
        application_name: "netwalk",
        application_version: 1,
        engine_name: "netwalk",
        engine_version: 1,
        api_version: xr::Version::new(1, 0, 0),
    };
    let instance = entry.create_instance(&app, &extensions, &layers, &()).map_err(|e| {
        use xr::sys::Result as R;
        if [
            R::ERROR_RUNTIME_UNAVAILABLE,
            R::ERROR_RUNTIME_FAILURE,
            R::ERROR_INSTANCE_LOST,
        ]
        .contains(&e)
        {
            XrError::NoRuntime(e.to_string())
        } else {
            XrError::Xr {
                what: "create the instance",
                result: e,
            }
        }
    })?;
    let xr_log = ValidationLog::default();
    let messenger = if options.validation {
        Some(XrMessenger::new(&instance, xr_log.clone())?)
    } else {
        None
    };
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .map_err(|e| XrError::NoHeadset(e.to_string()))?;
    let system_name = instance.system_properties(system).xr("system properties")?.system_name;
    let requirements = instance
        .graphics_requirements::<xr::Vulkan>(system)
        .xr("Vulkan graphics requirements")?;
    let wanted = xr::Version::new(1, 3, 0);
    if requirements.min_api_version_supported > wanted {
        return Err(XrError::MissingFeature(format!(
            "support for Vulkan 1.3 (it needs at least {})",
            requirements.min_api_version_supported
        )));
    }
    tracing::info!(system = %system_name, min = %requirements.min_api_version_supported,
        max = %requirements.max_api_version_supported, "OpenXR system");

    let creator = RuntimeCreator {
        instance: &instance,
        system,
    };
    let device = match &options.mirror {
        Some(window) => Device::through_with_window(options.validation, window.clone(), &creator)?,
        None => Device::through(options.validation, &creator)?,
    };
    let mut renderer = Renderer::from_device(device)?;
    renderer.set_edge_scale(options.edge_scale);
    let vk_log = renderer.validation_log();
    let mut renderer = Some(renderer);
    let xr_handles = Some((instance, messenger));
    let result = run_session(xr_handles, system, &system_name, &mut renderer, options, stop, on_event);
    // XR handles went at the end of run_session; now the Vulkan objects, allocator, device.
    drop(renderer);
    let (frames, focused, end, stats) = result?;
    Ok(XrOutcome {
        frames,
        focused,
        end,
        vulkan_validation: vk_log.messages(),
        xr_validation: xr_log.messages(),
        stats,
    })
}

/// Everything after the device: session, spaces, swapchain, actions, the frame loop. Every XR
/// handle is dropped before it returns (the instance last), the renderer stays.
#[allow(clippy::too_many_arguments)]
fn run_session(
    xr_handles: Option<(xr::Instance, Option<XrMessenger>)>,
    system: xr::SystemId,
    system_name: &str,
    renderer: &mut Option<Renderer>,
    options: &XrOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(XrEvent) -> Feedback,
) -> Result<(u64, bool, EndReason, FrameStats), XrError> {
    let Some((instance, messenger)) = xr_handles else {
        unreachable!("always given")
    };
    let Some(r) = renderer.as_mut() else {
        unreachable!("always given")
    };
    let device = r.device();
    let info = xr::vulkan::SessionCreateInfo {
        instance: device.instance.handle().as_raw() as _,
        physical_device: device.physical.as_raw() as _,
        device: device.device.handle().as_raw() as _,
        queue_family_index: device.queue_family,
        queue_index: 0,
    };
    let device_name = device.name().to_string();
    // SAFETY: the handles are live and stay so until the session is destroyed (the renderer
    // outlives every XR handle); the queue is only used from this thread.
    let (session, mut waiter, mut stream) =
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
    let stage_bounds = |session: &xr::Session<xr::Vulkan>| {
        (space_type == xr::ReferenceSpaceType::STAGE)
            .then(|| session.reference_space_bounds_rect(space_type).ok().flatten())
            .flatten()
            .map(|e| Vec2::new(e.width, e.height))
    };

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
    let formats = session.enumerate_swapchain_formats().xr("list swapchain formats")?;
    if !formats.contains(&(COLOR_FORMAT.as_raw() as u32)) {
        return Err(XrError::MissingFeature(format!(
            "an R8G8B8A8_SRGB swapchain format (offered: {formats:?})"
        )));
    }
    let mut swapchain = session
        .create_swapchain(&xr::SwapchainCreateInfo {
            create_flags: xr::SwapchainCreateFlags::EMPTY,
            usage_flags: xr::SwapchainUsageFlags::COLOR_ATTACHMENT
                | xr::SwapchainUsageFlags::TRANSFER_DST
                | xr::SwapchainUsageFlags::TRANSFER_SRC,
            format: COLOR_FORMAT.as_raw() as u32,
            sample_count: 1,
            width: extent.width,
            height: extent.height,
            face_count: 1,
            array_size: 2,
            mip_count: 1,
        })
        .xr("create the swapchain")?;
    // Depth for XR_KHR_composition_layer_depth, when the runtime offers it and the format.
    let depth_format = vk::Format::D32_SFLOAT;
    let mut depth_swapchain =
        if instance.exts().khr_composition_layer_depth.is_some() && formats.contains(&(depth_format.as_raw() as u32)) {
            Some(
                session
                    .create_swapchain(&xr::SwapchainCreateInfo {
                        create_flags: xr::SwapchainCreateFlags::EMPTY,
                        usage_flags: xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT
                            | xr::SwapchainUsageFlags::TRANSFER_DST,
                        format: depth_format.as_raw() as u32,
                        sample_count: 1,
                        width: extent.width,
                        height: extent.height,
                        face_count: 1,
                        array_size: 2,
                        mip_count: 1,
                    })
                    .xr("create the depth swapchain")?,
            )
        } else {
            None
        };
    let depth_images: Vec<vk::Image> = match &depth_swapchain {
        Some(d) => d
            .enumerate_images()
            .xr("list depth swapchain images")?
            .into_iter()
            .map(vk::Image::from_raw)
            .collect(),
        None => Vec::new(),
    };
    for (i, &image) in depth_images.iter().enumerate() {
        device.name_object(image, &format!("XR depth swapchain image {i}"));
    }
    let images: Vec<vk::Image> = swapchain
        .enumerate_images()
        .xr("list swapchain images")?
        .into_iter()
        .map(vk::Image::from_raw)
        .collect();
    for (i, &image) in images.iter().enumerate() {
        device.name_object(image, &format!("XR swapchain image {i}"));
    }
    let blend = instance
        .enumerate_environment_blend_modes(system, VIEW_TYPE)
        .xr("list blend modes")?
        .first()
        .copied()
        .unwrap_or(xr::EnvironmentBlendMode::OPAQUE);
    let actions = Actions::new(
        &instance,
        &session,
        options,
        instance.exts().ext_hand_interaction.is_some(),
    )?;
    on_event(XrEvent::Ready {
        system: system_name,
        device: &device_name,
        width: extent.width,
        height: extent.height,
        space: space_name,
        stage_bounds: stage_bounds(&session),
        depth: depth_swapchain.is_some(),
    });

    let mut buffer = xr::EventDataBuffer::new();
    let mut running = false;
    let mut exit_requested = false;
    let mut focused = false;
    let mut frames = 0u64;
    let mut stats = FrameStats::default();
    let mut last_display: Option<xr::Time> = None;
    let mut stop_requested = false;
    let end = 'run: loop {
        let polled = on_event(XrEvent::Poll);
        stop_requested |= polled.exit;
        if polled.mirror_resized
            && let Some(r) = renderer.as_mut()
        {
            r.window_resized();
        }
        if (stop_requested || stop.load(Ordering::Relaxed)) && !exit_requested {
            if running {
                // Through the runtime: it takes the session to STOPPING, then EXITING.
                match session.request_exit() {
                    Ok(()) => exit_requested = true,
                    Err(e) => {
                        tracing::warn!("request exit: {e}");
                        break 'run EndReason::RuntimeGone;
                    }
                }
            } else {
                break 'run EndReason::Interrupted;
            }
        }
        loop {
            let event = match instance.poll_event(&mut buffer) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("poll events: {e}");
                    break 'run EndReason::RuntimeGone;
                }
            };
            match event {
                xr::Event::SessionStateChanged(e) => {
                    let state = e.state();
                    tracing::info!(state = state_name(state), "session state");
                    on_event(XrEvent::State(state_name(state)));
                    match state {
                        xr::SessionState::READY => {
                            session.begin(VIEW_TYPE).xr("begin the session")?;
                            running = true;
                        }
                        xr::SessionState::FOCUSED => focused = true,
                        xr::SessionState::STOPPING => {
                            session.end().xr("end the session")?;
                            running = false;
                        }
                        xr::SessionState::EXITING => break 'run EndReason::Exited,
                        // The runtime goes away; a later instance could find it again, but an
                        // app run ends here.
                        xr::SessionState::LOSS_PENDING => break 'run EndReason::LossPending,
                        _ => {}
                    }
                }
                xr::Event::InstanceLossPending(_) => break 'run EndReason::InstanceLost,
                xr::Event::EventsLost(e) => tracing::warn!(lost = e.lost_event_count(), "OpenXR events lost"),
                xr::Event::ReferenceSpaceChangePending(_) => {
                    tracing::info!(bounds = ?stage_bounds(&session), "the play area changed");
                }
                xr::Event::InteractionProfileChanged(_) => {
                    for hand in Hand::BOTH {
                        let profile = session
                            .current_interaction_profile(actions.hands[hand as usize])
                            .ok()
                            .filter(|p| *p != xr::Path::NULL)
                            .and_then(|p| instance.path_to_string(p).ok())
                            .unwrap_or_default();
                        on_event(XrEvent::Profile {
                            hand,
                            profile: &profile,
                        });
                    }
                }
                _ => {}
            }
        }
        if !running {
            // IDLE (or STOPPING handled): nothing to render; wait for the next state.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let frame = (|| -> Result<Option<()>, XrError> {
            let state = waiter.wait().xr("wait for the frame")?;
            let started = Instant::now();
            stream.begin().xr("begin the frame")?;
            let time = state.predicted_display_time;
            if let Some(last) = last_display {
                let period = state.predicted_display_period.as_nanos().max(1);
                let skipped = (time.as_nanos() - last.as_nanos() - period / 2) / period;
                stats.missed += skipped.max(0) as u64;
            }
            last_display = Some(time);
            let done = options.frames.is_some_and(|n| frames >= n);
            if done {
                // Exit was requested: frames go on until STOPPING, but nothing more is drawn.
                stream.end(time, blend, &[]).xr("end a frame after the last")?;
                return Ok(None);
            }
            if !state.should_render {
                stats.not_rendered += 1;
                stream.end(time, blend, &[]).xr("end an empty frame")?;
                return Ok(None);
            }
            let hands = actions.read(&session, &world, time)?;
            let head = locate(&head_space, &world, time)?;
            let (flags, views) = session.locate_views(VIEW_TYPE, time, &world).xr("locate the views")?;
            let tracked = xr::ViewStateFlags::POSITION_VALID | xr::ViewStateFlags::ORIENTATION_VALID;
            if !flags.contains(tracked) || views.len() != 2 {
                stream.end(time, blend, &[]).xr("end an untracked frame")?;
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
            let eye_views = [eye(&views[0]), eye(&views[1])];
            let input = XrInput { hands, head };
            let Some(r) = renderer.as_mut() else {
                unreachable!("the renderer outlives the session")
            };
            let update = on_event(XrEvent::Update {
                input: &input,
                renderer: r,
            });
            for &hand in &update.pulse {
                actions.pulse(&session, hand)?;
            }
            if update.exit {
                stop_requested = true;
            }
            let index = swapchain.acquire_image().xr("acquire a swapchain image")?;
            swapchain
                .wait_image(xr::Duration::INFINITE)
                .xr("wait for the swapchain image")?;
            let depth_image = match depth_swapchain.as_mut() {
                Some(d) => {
                    let i = d.acquire_image().xr("acquire a depth swapchain image")?;
                    d.wait_image(xr::Duration::INFINITE)
                        .xr("wait for the depth swapchain image")?;
                    Some(
                        *depth_images
                            .get(i as usize)
                            .ok_or_else(|| XrError::MissingFeature(format!("depth swapchain image {i}")))?,
                    )
                }
                None => None,
            };
            let readback = options.readback_frame == Some(frames + 1);
            let Some(r) = renderer.as_mut() else {
                unreachable!("the renderer outlives the session")
            };
            let image = *images
                .get(index as usize)
                .ok_or_else(|| XrError::MissingFeature(format!("swapchain image {index}")))?;
            // SAFETY: the image was acquired and waited for, is 2 layers of COLOR_FORMAT of
            // `extent`, and nobody else touches it until it is released below.
            let rendered = unsafe {
                r.render_to_xr_image(
                    image,
                    depth_image,
                    extent,
                    eye_views.map(|e| e.clip_from_world()),
                    readback,
                )
            };
            // Released even when rendering failed: the runtime must get it back.
            swapchain.release_image().xr("release the swapchain image")?;
            if let Some(d) = depth_swapchain.as_mut() {
                d.release_image().xr("release the depth swapchain image")?;
            }
            let pictures = rendered?;
            let rect = xr::Rect2Di {
                offset: xr::Offset2Di { x: 0, y: 0 },
                extent: xr::Extent2Di {
                    width: extent.width as i32,
                    height: extent.height as i32,
                },
            };
            // Depth per eye: the same layer of the depth swapchain, with the planes the pass used.
            let depth_infos = depth_swapchain.as_ref().map(|d| {
                [0u32, 1].map(|i| xr::sys::CompositionLayerDepthInfoKHR {
                    ty: xr::sys::CompositionLayerDepthInfoKHR::TYPE,
                    next: std::ptr::null(),
                    sub_image: xr::sys::SwapchainSubImage {
                        swapchain: d.as_raw(),
                        image_rect: rect,
                        image_array_index: i,
                    },
                    min_depth: 0.0,
                    max_depth: 1.0,
                    near_z: eye_views[i as usize].near,
                    far_z: eye_views[i as usize].far,
                })
            });
            let projection_views = [0, 1].map(|i| {
                let view = xr::CompositionLayerProjectionView::new()
                    .pose(views[i].pose)
                    .fov(views[i].fov)
                    .sub_image(
                        xr::SwapchainSubImage::new()
                            .swapchain(&swapchain)
                            .image_array_index(i as u32)
                            .image_rect(rect),
                    );
                match &depth_infos {
                    Some(infos) => {
                        let mut raw = view.into_raw();
                        raw.next = &infos[i] as *const _ as *const c_void;
                        // SAFETY: `infos` outlives the xrEndFrame call below.
                        unsafe { xr::CompositionLayerProjectionView::from_raw(raw) }
                    }
                    None => view,
                }
            });
            let layer = xr::CompositionLayerProjection::new()
                .space(&world)
                .views(&projection_views);
            stream.end(time, blend, &[&layer]).xr("end the frame")?;
            stats.cpu.push(started.elapsed());
            frames += 1;
            on_event(XrEvent::Frame {
                index: frames,
                input: &input,
                views: &eye_views,
                readback: pictures.as_deref(),
            });
            Ok(Some(()))
        })();
        match frame {
            Ok(_) => {}
            Err(e) if runtime_gone(&e) => {
                tracing::warn!("the OpenXR runtime went away: {e}");
                break 'run EndReason::RuntimeGone;
            }
            Err(e) => return Err(e),
        }
        if options.frames.is_some_and(|n| frames >= n) && !exit_requested {
            session.request_exit().xr("request exit")?;
            exit_requested = true;
        }
    };
    // Teardown: XR handles (spaces, swapchain, actions, session, messenger, instance) before
    // the caller destroys the Vulkan objects and the device.
    drop(actions);
    drop(depth_swapchain);
    drop(swapchain);
    drop((world, head_space));
    drop((stream, waiter));
    drop(session);
    drop(messenger);
    drop(instance);
    Ok((frames, focused, end, stats))
}
