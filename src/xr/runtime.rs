//! The OpenXR instance and system, and the Vulkan instance and device made through the runtime
//! (XR_KHR_vulkan_enable2); with validation, the core validation layer's messages recorded.

use std::ffi::{CStr, c_void};
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle;
use openxr as xr;

use super::{XrContext, XrError};
use crate::gfx::{Device, GfxError, ValidationLog, VulkanCreator};

const CORE_VALIDATION: &str = "XR_APILAYER_LUNARG_core_validation";

/// The instance, its system (the headset) and, with validation, its messenger. Dropped after
/// every handle made from it.
pub(super) struct Runtime {
    // The messenger first: it is destroyed before the instance.
    _messenger: Option<XrMessenger>,
    pub instance: xr::Instance,
    pub system: xr::SystemId,
    pub system_name: String,
    /// The core validation layer's warnings and errors (with validation).
    pub log: ValidationLog,
}

/// Errors that mean no runtime is running (so no XR here, [`XrError::is_unavailable`]) as
/// [`XrError::NoRuntime`]; any other as a failure of `what`.
fn no_runtime_or(what: &'static str) -> impl Fn(xr::sys::Result) -> XrError {
    move |e| {
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
            XrError::Xr { what, result: e }
        }
    }
}

impl Runtime {
    /// Loads the OpenXR loader and makes the instance and system. Errors of kind
    /// [`XrError::is_unavailable`] mean there is no XR here (no loader, runtime or headset).
    pub fn new(validation: bool) -> Result<Runtime, XrError> {
        // SAFETY: loads the system's OpenXR loader, a conforming library.
        let entry = unsafe { xr::Entry::load(&()) }.map_err(|e| XrError::NoLoader(e.to_string()))?;
        let available = entry
            .enumerate_extensions()
            .map_err(no_runtime_or("list the runtime's extensions"))?;
        if !available.khr_vulkan_enable2 {
            return Err(XrError::MissingFeature("XR_KHR_vulkan_enable2".into()));
        }
        let mut extensions = xr::ExtensionSet::default();
        extensions.khr_vulkan_enable2 = true;
        extensions.ext_hand_interaction = available.ext_hand_interaction;
        // The depth layer helps the compositor reproject; used when offered.
        extensions.khr_composition_layer_depth = available.khr_composition_layer_depth;
        extensions.ext_debug_utils = validation && available.ext_debug_utils;
        let mut layers = Vec::new();
        if validation {
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
        let instance = entry
            .create_instance(&app, &extensions, &layers, &())
            .map_err(no_runtime_or("create the instance"))?;
        let xr_log = ValidationLog::default();
        let messenger = if validation {
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
        Ok(Runtime {
            _messenger: messenger,
            instance,
            system,
            system_name,
            log: xr_log,
        })
    }

    /// The Vulkan device the runtime wants, made through it (presenting to `mirror` too, when given).
    pub fn device(&self, validation: bool, mirror: Option<&Arc<winit::window::Window>>) -> Result<Device, GfxError> {
        let creator = RuntimeCreator {
            instance: &self.instance,
            system: self.system,
        };
        match mirror {
            Some(window) => Device::through_with_window(validation, window.clone(), &creator),
            None => Device::through(validation, &creator),
        }
    }
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
