//! Instance, physical device choice, logical device and queue, and the validation messenger.

use std::ffi::{CStr, c_void};
use std::sync::{Arc, Mutex};

use ash::{ext, khr, vk};
use raw_window_handle::{HasDisplayHandle, HasWindowHandle};
use winit::window::Window;

use super::{GfxError, Result, VkContext};

const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// Every WARNING or ERROR message of the validation layer (and the loader), shared with whoever
/// wants to check it. It outlives the device: messages about leaked objects arrive while the
/// device and instance are destroyed, so keep a clone and read it after dropping the renderer.
#[derive(Clone, Default)]
pub struct ValidationLog(Arc<Mutex<Vec<String>>>);

impl ValidationLog {
    pub fn messages(&self) -> Vec<String> {
        // A poisoned lock only means a panic elsewhere while pushing: the list is still valid.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn push(&self, message: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(message);
    }
}

/// # Safety
/// Called by the Vulkan loader with valid callback data; `user_data` is the `ValidationLog` that
/// `Device` keeps alive until after the instance (and so the messenger) is destroyed.
unsafe extern "system" fn on_message(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    _types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    user_data: *mut c_void,
) -> vk::Bool32 {
    // SAFETY: see the function's contract.
    let (log, text) = unsafe {
        let log = &*(user_data as *const ValidationLog);
        let text = data
            .as_ref()
            .and_then(|d| d.message_as_c_str())
            .map_or_else(|| "(no message)".into(), CStr::to_string_lossy);
        (log, text)
    };
    if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) {
        tracing::error!("vulkan: {text}");
    } else {
        tracing::warn!("vulkan: {text}");
    }
    log.push(format!("{severity:?}: {text}"));
    vk::FALSE
}

/// The Vulkan instance and device. Drop destroys the device, then the messenger, then the
/// instance; everything made from the device must be destroyed before.
pub struct Device {
    pub(crate) instance: ash::Instance,
    pub(crate) physical: vk::PhysicalDevice,
    pub(crate) device: ash::Device,
    pub(crate) queue: vk::Queue,
    pub(crate) queue_family: u32,
    /// Largest width or height of a 2-D image.
    pub(crate) max_image_dimension: u32,
    name: String,
    /// The window's surface, for a device made with [`Device::with_window`]: its queue can
    /// present to it and VK_KHR_swapchain is enabled.
    pub(crate) surface: Option<Surface>,
    /// Present when VK_EXT_debug_utils is: names objects for validation messages and tools.
    debug_utils: Option<(ext::debug_utils::Instance, ext::debug_utils::Device)>,
    messenger: vk::DebugUtilsMessengerEXT,
    /// Boxed so its address (the messenger's user data) is stable.
    log: Box<ValidationLog>,
    // Last: the loaded library must outlive every call through the instance.
    _entry: ash::Entry,
}

impl Device {
    /// Creates the instance (with the validation layer and a messenger recording into a new
    /// [`ValidationLog`] when `validation`), picks a physical device (discrete GPU first, a CPU
    /// implementation such as lavapipe last) and creates the device and its graphics queue.
    pub fn new(validation: bool) -> Result<Device> {
        Device::create(validation, None)
    }

    /// Like [`Device::new`], and also creates a surface for `window` (enabling the instance
    /// extensions its display needs), picks a queue family that can present to it and enables
    /// VK_KHR_swapchain. The device keeps the window alive until the surface is destroyed.
    pub fn with_window(validation: bool, window: Arc<Window>) -> Result<Device> {
        Device::create(validation, Some(window))
    }

    /// Like [`Device::new`], but the instance and device are created by `creator` (an OpenXR
    /// runtime, through XR_KHR_vulkan_enable2), which may add extensions of its own, and the
    /// physical device is the one it names.
    pub fn through(validation: bool, creator: &dyn VulkanCreator) -> Result<Device> {
        Device::create_with(validation, None, Some(creator))
    }

    /// [`Device::through`] with a surface for `window` (see [`Device::with_window`]): the XR
    /// mirror window.
    pub fn through_with_window(validation: bool, window: Arc<Window>, creator: &dyn VulkanCreator) -> Result<Device> {
        Device::create_with(validation, Some(window), Some(creator))
    }

    fn create(validation: bool, window: Option<Arc<Window>>) -> Result<Device> {
        Device::create_with(validation, window, None)
    }

    // Long (~210 lines) on purpose: instance, messenger, surface, physical device, device and
    // queue in creation order, each step's handles in scope for the next (and for cleanup on error).
    fn create_with(
        validation: bool,
        window: Option<Arc<Window>>,
        creator: Option<&dyn VulkanCreator>,
    ) -> Result<Device> {
        let handles = match &window {
            Some(w) => {
                let display = w
                    .display_handle()
                    .map_err(|e| GfxError::NoDevice(format!("the window has no display handle: {e}")))?;
                let window = w
                    .window_handle()
                    .map_err(|e| GfxError::NoDevice(format!("the window has no window handle: {e}")))?;
                Some((display.as_raw(), window.as_raw()))
            }
            None => None,
        };
        // SAFETY: loading libvulkan runs its initializers; it is the system's Vulkan loader.
        let entry = unsafe { ash::Entry::load()? };
        let log = Box::new(ValidationLog::default());

        // SAFETY: plain queries on a loaded entry.
        let (layers, extensions) = unsafe {
            (
                entry.enumerate_instance_layer_properties().vk("list instance layers")?,
                entry
                    .enumerate_instance_extension_properties(None)
                    .vk("list instance extensions")?,
            )
        };
        let has_layer = |name: &CStr| layers.iter().any(|l| l.layer_name_as_c_str() == Ok(name));
        let has_debug_utils = extensions
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(ext::debug_utils::NAME));
        if validation && !has_layer(VALIDATION_LAYER) {
            return Err(GfxError::NoValidationLayer);
        }
        if validation && !has_debug_utils {
            return Err(GfxError::NoDevice("VK_EXT_debug_utils is missing".into()));
        }
        let layer_names = if validation {
            vec![VALIDATION_LAYER.as_ptr()]
        } else {
            vec![]
        };
        let mut extension_names = if has_debug_utils {
            vec![ext::debug_utils::NAME.as_ptr()]
        } else {
            vec![]
        };
        if validation {
            // Provided by the validation layer; turns on its synchronization (hazard) checks.
            extension_names.push(ext::validation_features::NAME.as_ptr());
        }
        if let Some((display, _)) = handles {
            // Only in window mode: offscreen rendering must work without any display.
            let needed =
                ash_window::enumerate_required_extensions(display).vk("surface extensions for this display")?;
            for &name in needed {
                // SAFETY: ash-window returns pointers to static NUL-terminated names.
                let name_c = unsafe { CStr::from_ptr(name) };
                if !extensions.iter().any(|e| e.extension_name_as_c_str() == Ok(name_c)) {
                    return Err(GfxError::NoDevice(format!(
                        "the Vulkan instance cannot present to this display: {} is missing",
                        name_c.to_string_lossy()
                    )));
                }
                extension_names.push(name);
            }
        }
        let enabled_checks = [vk::ValidationFeatureEnableEXT::SYNCHRONIZATION_VALIDATION];
        let mut validation_features = vk::ValidationFeaturesEXT::default().enabled_validation_features(&enabled_checks);

        let mut messenger_info = vk::DebugUtilsMessengerCreateInfoEXT::default()
            .message_severity(
                vk::DebugUtilsMessageSeverityFlagsEXT::WARNING | vk::DebugUtilsMessageSeverityFlagsEXT::ERROR,
            )
            .message_type(
                vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                    | vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                    | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
            )
            .pfn_user_callback(Some(on_message))
            .user_data(&*log as *const ValidationLog as *mut c_void);
        let app = vk::ApplicationInfo::default()
            .application_name(c"netwalk")
            .api_version(vk::API_VERSION_1_3);
        let mut instance_info = vk::InstanceCreateInfo::default()
            .application_info(&app)
            .enabled_layer_names(&layer_names)
            .enabled_extension_names(&extension_names);
        if validation {
            // Chained here too, so instance creation and destruction are checked as well.
            instance_info = instance_info
                .push_next(&mut messenger_info)
                .push_next(&mut validation_features);
        }
        // SAFETY: valid create info; the log behind user_data lives in the returned Device.
        let created = match creator {
            Some(c) => {
                let raw = unsafe { c.create_instance(&entry, &instance_info) }?;
                // SAFETY: a live instance made through `entry`'s loader.
                Ok(unsafe { ash::Instance::load(entry.static_fn(), raw) })
            }
            None => unsafe { entry.create_instance(&instance_info, None) },
        };
        let instance = match created {
            Ok(i) => i,
            Err(vk::Result::ERROR_INCOMPATIBLE_DRIVER) => {
                return Err(GfxError::NoDevice("the Vulkan loader found no driver (ICD)".into()));
            }
            Err(e) => return Err(e).vk("create instance"),
        };

        let messenger_loader = ext::debug_utils::Instance::new(&entry, &instance);
        let messenger = if validation {
            // SAFETY: valid create info on a live instance.
            match unsafe { messenger_loader.create_debug_utils_messenger(&messenger_info, None) } {
                Ok(m) => m,
                Err(e) => {
                    // SAFETY: nothing was made from the instance.
                    unsafe { instance.destroy_instance(None) };
                    return Err(e).vk("create debug messenger");
                }
            }
        } else {
            vk::DebugUtilsMessengerEXT::null()
        };
        let surface_loader = khr::surface::Instance::new(&entry, &instance);
        let surface = match handles {
            // SAFETY: the handles belong to `window`, which the device keeps alive until after the
            // surface is destroyed (Drop).
            Some((display, window)) => unsafe { ash_window::create_surface(&entry, &instance, display, window, None) }
                .vk("create window surface")
                .map(Some),
            None => Ok(None),
        };
        let picked = surface.and_then(|surface| {
            let on = surface.map(|s| (&surface_loader, s));
            let required = match creator {
                // SAFETY: a live instance made by the creator.
                Some(c) => unsafe { c.physical_device(instance.handle()) }.map(Some),
                None => Ok(None),
            };
            let picked = required
                .and_then(|required| pick_physical_device(&instance, on, required))
                .and_then(|p| {
                    Ok((
                        create_device(
                            &entry,
                            &instance,
                            p.physical,
                            p.queue_family,
                            surface.is_some(),
                            creator,
                        )?,
                        p,
                    ))
                });
            if picked.is_err()
                && let Some(s) = surface
            {
                // SAFETY: nothing was made from the surface.
                unsafe { surface_loader.destroy_surface(s, None) };
            }
            Ok((picked?, surface))
        });
        let ((device, picked), surface) = match picked {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: only the messenger (and a destroyed surface) was made from the instance.
                // (Without debug utils the loader's functions are stubs: only call them for a
                // real messenger.)
                unsafe {
                    if messenger != vk::DebugUtilsMessengerEXT::null() {
                        messenger_loader.destroy_debug_utils_messenger(messenger, None);
                    }
                    instance.destroy_instance(None);
                }
                return Err(e);
            }
        };
        let surface = surface.zip(window).map(|(handle, window)| Surface {
            loader: surface_loader,
            handle,
            window,
        });
        let Picked {
            physical,
            queue_family,
            name,
            max_image_dimension,
        } = picked;
        // SAFETY: the family was checked to exist with one queue requested.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        let debug_utils =
            has_debug_utils.then(|| (messenger_loader, ext::debug_utils::Device::new(&instance, &device)));
        tracing::info!(device = %name, validation, "Vulkan device ready");
        Ok(Device {
            instance,
            physical,
            device,
            queue,
            queue_family,
            max_image_dimension,
            name,
            surface,
            debug_utils,
            messenger,
            log,
            _entry: entry,
        })
    }

    /// The physical device's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log the validation messenger records into (empty when validation is off).
    pub fn validation_log(&self) -> ValidationLog {
        (*self.log).clone()
    }

    /// Names a Vulkan object for validation messages and debugging tools (no-op without
    /// VK_EXT_debug_utils).
    pub(crate) fn name_object<H: vk::Handle>(&self, handle: H, name: &str) {
        let Some((_, utils)) = &self.debug_utils else { return };
        let Ok(name) = std::ffi::CString::new(name) else { return };
        let info = vk::DebugUtilsObjectNameInfoEXT::default()
            .object_handle(handle)
            .object_name(&name);
        // SAFETY: `handle` is a live object of this device. Naming failing only loses a label.
        if let Err(e) = unsafe { utils.set_debug_utils_object_name(&info) } {
            tracing::debug!("cannot name a Vulkan object `{}`: {e}", name.to_string_lossy());
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the owner (Renderer) destroyed everything made from the device before dropping
        // it; the messenger goes after the device so leak reports at device destruction arrive.
        unsafe {
            if let Err(e) = self.device.device_wait_idle() {
                tracing::error!("waiting for the GPU before destroying the device: {e}");
            }
            self.device.destroy_device(None);
            // After the swapchain (the renderer's) and the device; before the instance.
            if let Some(s) = &self.surface {
                s.loader.destroy_surface(s.handle, None);
            }
            // Destroying a null messenger is a no-op.
            if let Some((messenger, _)) = &self.debug_utils {
                messenger.destroy_debug_utils_messenger(self.messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}

/// A window's Vulkan surface, owned by the [`Device`] (it must outlive every swapchain and go
/// before the instance). Holds the window so its handles stay valid as long as the surface.
pub(crate) struct Surface {
    pub(crate) loader: khr::surface::Instance,
    pub(crate) handle: vk::SurfaceKHR,
    pub(crate) window: Arc<Window>,
}

/// Rank of a device type: lower is preferred.
fn type_rank(t: vk::PhysicalDeviceType) -> u32 {
    match t {
        vk::PhysicalDeviceType::DISCRETE_GPU => 0,
        vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
        vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
        vk::PhysicalDeviceType::CPU => 3,
        _ => 4,
    }
}

struct Picked {
    physical: vk::PhysicalDevice,
    queue_family: u32,
    name: String,
    max_image_dimension: u32,
}

/// The best device with Vulkan 1.3, the needed features and a graphics queue (that can present
/// to `surface`, with VK_KHR_swapchain, when one is given).
fn pick_physical_device(
    instance: &ash::Instance,
    surface: Option<(&khr::surface::Instance, vk::SurfaceKHR)>,
    required: Option<vk::PhysicalDevice>,
) -> Result<Picked> {
    // SAFETY: queries on a live instance.
    let mut devices = unsafe { instance.enumerate_physical_devices() }.vk("list physical devices")?;
    if let Some(required) = required {
        // The XR runtime names the device its compositor reads from: only that one will do.
        devices.retain(|&d| d == required);
    }
    if devices.is_empty() {
        return Err(GfxError::NoDevice(
            "the Vulkan loader found no device (no ICD installed?)".into(),
        ));
    }
    let mut rejected = Vec::new();
    let mut best: Option<(u32, Picked)> = None;
    for pd in devices {
        // SAFETY: queries on a device enumerated from this instance.
        let (props, families, f11, f13) = unsafe {
            let props = instance.get_physical_device_properties(pd);
            let families = instance.get_physical_device_queue_family_properties(pd);
            let mut f11 = vk::PhysicalDeviceVulkan11Features::default();
            let mut f13 = vk::PhysicalDeviceVulkan13Features::default();
            let mut f = vk::PhysicalDeviceFeatures2::default()
                .push_next(&mut f11)
                .push_next(&mut f13);
            instance.get_physical_device_features2(pd, &mut f);
            (
                props,
                families,
                f11.multiview,
                f13.dynamic_rendering & f13.synchronization2 & f13.maintenance4,
            )
        };
        let name = props
            .device_name_as_c_str()
            .map_or_else(|_| "?".into(), |n| n.to_string_lossy().into_owned());
        let presents = |family: u32| {
            surface.is_none_or(|(loader, s)| {
                // SAFETY: a valid family index of this device and a live surface.
                unsafe { loader.get_physical_device_surface_support(pd, family, s) }.unwrap_or(false)
            })
        };
        let family = (0..families.len() as u32)
            .find(|&i| families[i as usize].queue_flags.contains(vk::QueueFlags::GRAPHICS) && presents(i));
        // SAFETY: a query on a device enumerated from this instance.
        let has_swapchain = unsafe { instance.enumerate_device_extension_properties(pd) }
            .unwrap_or_default()
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(khr::swapchain::NAME));
        let why_not = if props.api_version < vk::API_VERSION_1_3 {
            Some("Vulkan < 1.3")
        } else if f11 == vk::FALSE || f13 == vk::FALSE {
            Some("missing multiview, dynamic rendering, synchronization2 or maintenance4")
        } else if surface.is_some() && !has_swapchain {
            Some("no VK_KHR_swapchain")
        } else if family.is_none() && surface.is_some() {
            Some("no graphics queue that can present to the window")
        } else if family.is_none() {
            Some("no graphics queue")
        } else {
            None
        };
        match (why_not, family) {
            (None, Some(family)) => {
                let rank = type_rank(props.device_type);
                if best.as_ref().is_none_or(|b| rank < b.0) {
                    let max_image_dimension = props.limits.max_image_dimension2_d;
                    best = Some((
                        rank,
                        Picked {
                            physical: pd,
                            queue_family: family,
                            name,
                            max_image_dimension,
                        },
                    ));
                }
            }
            (why, _) => rejected.push(format!("{name}: {}", why.unwrap_or("unusable"))),
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| GfxError::NoDevice(rejected.join("; ")))
}

fn create_device(
    entry: &ash::Entry,
    instance: &ash::Instance,
    physical: vk::PhysicalDevice,
    family: u32,
    swapchain: bool,
    creator: Option<&dyn VulkanCreator>,
) -> Result<ash::Device> {
    let priorities = [1.0];
    let queues = [vk::DeviceQueueCreateInfo::default()
        .queue_family_index(family)
        .queue_priorities(&priorities)];
    let mut f11 = vk::PhysicalDeviceVulkan11Features::default().multiview(true);
    // maintenance4 (required of every Vulkan 1.3 device): compute shaders compiled for Vulkan 1.3
    // (SPIR-V 1.6) declare their workgroup size with LocalSizeId.
    let mut f13 = vk::PhysicalDeviceVulkan13Features::default()
        .dynamic_rendering(true)
        .synchronization2(true)
        .maintenance4(true);
    let extensions = if swapchain {
        vec![khr::swapchain::NAME.as_ptr()]
    } else {
        vec![]
    };
    let info = vk::DeviceCreateInfo::default()
        .queue_create_infos(&queues)
        .enabled_extension_names(&extensions)
        .push_next(&mut f11)
        .push_next(&mut f13);
    // SAFETY: the features (and VK_KHR_swapchain, when asked) were checked to be supported by
    // `physical`.
    match creator {
        Some(c) => {
            // SAFETY: as above; the creator returns a live device of `physical`.
            let raw = unsafe { c.create_device(entry, physical, &info) }?;
            // SAFETY: `raw` is a live device created from `instance`.
            Ok(unsafe { ash::Device::load(instance.fp_v1_0(), raw) })
        }
        None => unsafe { instance.create_device(physical, &info, None) }.vk("create device"),
    }
}

/// Creates the Vulkan instance and device on someone else's behalf (an OpenXR runtime with
/// XR_KHR_vulkan_enable2 adds the extensions it needs and names the physical device).
pub trait VulkanCreator {
    /// # Safety
    /// `info` is a valid create info; the returned instance is owned by the caller.
    unsafe fn create_instance(&self, entry: &ash::Entry, info: &vk::InstanceCreateInfo<'_>) -> Result<vk::Instance>;
    /// The physical device to use.
    ///
    /// # Safety
    /// `instance` was made by [`VulkanCreator::create_instance`] and is live.
    unsafe fn physical_device(&self, instance: vk::Instance) -> Result<vk::PhysicalDevice>;
    /// # Safety
    /// `info` is valid for `physical`, a device of the instance made through `entry` by
    /// [`VulkanCreator::create_instance`]; the caller owns the result.
    unsafe fn create_device(
        &self,
        entry: &ash::Entry,
        physical: vk::PhysicalDevice,
        info: &vk::DeviceCreateInfo<'_>,
    ) -> Result<vk::Device>;
}
