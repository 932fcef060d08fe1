//! Vulkan rendering (ash): the device, GPU resources, pipelines, the offscreen target and readback.
//! gfx draws plain data ([`DrawList`], [`NetworkDraw`], [`bundle::EdgeSet`]); `crate::view` makes it
//! from the scene and the model.
//!
//! Ownership: every Vulkan object has exactly one owner. [`Device`] and [`Renderer`] implement
//! `Drop`; the parts they own (buffers, images, pipelines, the target) have an `unsafe fn destroy`
//! that the owner calls in order: wait idle → Vulkan objects → allocator → device → messenger →
//! instance.

pub mod bundle;
pub mod camera;
pub mod colormap;
pub mod device;
pub mod draw;
pub mod edge_pass;
pub mod mirror;
mod pipeline;
mod renderer;
mod resources;
mod swapchain;
mod target;
pub mod text;
pub mod window;

pub use bundle::BundleStyle;
pub use camera::{Camera, EyeView, Fov};
pub use device::{Device, ValidationLog, VulkanCreator};
pub use draw::{BlockStyle, CubeInstance, DrawList, LineInstance, NetworkDraw, TileInstance};
pub use renderer::{
    FULL_RESOLUTION_EDGES, FlightTimes, FrameTimes, Renderer, RendererConfig, RgbaImage, WindowFrame, auto_edge_scale,
};

use ash::vk;

/// Format of the offscreen color target. sRGB, like the OpenXR swapchains: shaders write linear
/// color and the PNG bytes are the sRGB values of the colormaps.
pub const COLOR_FORMAT: vk::Format = vk::Format::R8G8B8A8_SRGB;
pub const DEPTH_FORMAT: vk::Format = vk::Format::D32_SFLOAT;
/// Frame slots: how many frames may be recorded or in flight at once (the renderer's slots, the
/// window swapchain's acquire semaphores).
pub const FRAMES_IN_FLIGHT: usize = 2;
/// The clear color, sRGB-encoded (as it appears in the PNG).
pub const BACKGROUND_SRGB: [f32; 3] = [0.06, 0.07, 0.09];

#[derive(Debug, thiserror::Error)]
pub enum GfxError {
    #[error("cannot load the Vulkan loader (libvulkan.so.1; Debian: libvulkan1): {0}")]
    Loader(#[from] ash::LoadingError),
    #[error(
        "no usable Vulkan device: {0} (needs Vulkan 1.3 with dynamic rendering, synchronization2 and \
         multiview; without a GPU install Mesa's lavapipe: Debian mesa-vulkan-drivers)"
    )]
    NoDevice(String),
    #[error(
        "Vulkan validation was requested but VK_LAYER_KHRONOS_validation is not installed (Debian: vulkan-validationlayers)"
    )]
    NoValidationLayer,
    #[error("Vulkan: {what}: {result}")]
    Vk { what: &'static str, result: vk::Result },
    #[error("GPU memory for {what}: {source}")]
    Alloc {
        what: String,
        source: gpu_allocator::AllocationError,
    },
    #[error("desktop window: {0}")]
    Window(String),
    #[error("invalid render request: {0}")]
    Invalid(String),
}

pub type Result<T, E = GfxError> = std::result::Result<T, E>;

/// Attaches what was being done to a raw Vulkan error.
pub(crate) trait VkContext<T> {
    fn vk(self, what: &'static str) -> Result<T>;
}

impl<T> VkContext<T> for std::result::Result<T, vk::Result> {
    fn vk(self, what: &'static str) -> Result<T> {
        self.map_err(|result| GfxError::Vk { what, result })
    }
}
