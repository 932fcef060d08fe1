//! The renderer: draws a [`DrawList`](super::DrawList) (and the bundled edges) into an offscreen
//! target, a window's swapchain or an XR swapchain's images. [`Renderer`] owns every Vulkan object
//! it uses; this file holds it, its construction and teardown. The rest, by concept:
//!
//! - [`config`] holds [`RendererConfig`];
//! - [`setup`] holds descriptor pool, command pool, queries, atlas (made once);
//! - [`slots`] holds the frames in flight: per slot a command buffer, fence, descriptor sets and
//!   the buffers the CPU writes per frame;
//! - [`upload`] holds the values and instance lists staged between frames;
//! - [`frame`] holds one frame's course (target, record, submit, wait), push constants;
//! - [`record`] holds the scene pass's commands;
//! - [`readback`] holds offscreen frames read back, [`RgbaImage`] and PNG;
//! - [`timing`] holds [`FrameTimes`], [`Renderer::time_frame`];
//! - [`present`] holds the window's swapchain, [`WindowFrame`];
//! - [`xr`] holds the OpenXR swapchain images;
//! - [`bundling`] holds the glue to the edge bundler and the edge pass.

mod bundling;
mod config;
mod frame;
mod present;
mod readback;
mod record;
mod setup;
mod slots;
mod timing;
mod upload;
mod xr;

pub use bundling::{FULL_RESOLUTION_EDGES, auto_edge_scale};
pub use config::RendererConfig;
pub use present::WindowFrame;
pub use readback::RgbaImage;
pub use slots::{FRAMES_IN_FLIGHT, FlightTimes};
pub use timing::FrameTimes;

use super::bundle::Bundler;
use super::device::{Device, ValidationLog};
use super::edge_pass::EdgePass;
use super::pipeline::{BINDING_CUBES, BINDING_GLYPHS, BINDING_LINES, BINDING_TILES, BINDING_VALUES, Pipelines};
use super::resources::Image;
use super::swapchain::Swapchain;
use super::target::Target;
use super::{GfxError, Result};
use ash::vk;
use gpu_allocator::vulkan::{Allocator, AllocatorCreateDesc};
use slots::{FrameSlot, Staged};
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// What a frame does after the scene pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Copy the color into the readback buffer.
    Readback,
    /// Nothing more: the pass is timed with timestamps.
    Timestamps,
    /// Nothing more (frames timed on the CPU: [`Renderer::time_frames_in_flight`]).
    Nothing,
    /// Blit the color into a swapchain image that is then presented; with `readback`, that
    /// image is also copied into the target's readback buffer.
    Window { image: vk::Image, readback: bool },
    /// Copy both layers into an acquired XR swapchain image (2 layers, the color format), left
    /// in COLOR_ATTACHMENT_OPTIMAL as OpenXR wants it released; with `readback`, that image is
    /// also copied into the target's readback buffer. With `depth`, the depth (both layers) is
    /// also copied into that XR depth swapchain image (D32_SFLOAT), left in
    /// DEPTH_STENCIL_ATTACHMENT_OPTIMAL.
    /// With `mirror`, the left eye is also blitted (scaled to fit) into that acquired window
    /// swapchain image of that size, left in PRESENT_SRC.
    Xr {
        image: vk::Image,
        depth: Option<vk::Image>,
        readback: bool,
        mirror: Option<(vk::Image, vk::Extent2D)>,
    },
}

/// Which instance list: the network (changes with the layout) or the overlay (highlights, rays,
/// panels, voxels: rebuilt every frame). Each has its own buffers and descriptor set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Network = 0,
    Overlay = 1,
}

/// What the CPU hands a frame in a storage buffer: the values (shared by both lists) or one kind
/// of instance of a list. Each frame slot has its own buffer of each.
#[derive(Clone, Copy)]
enum Input {
    Values,
    Instances(List, Kind),
}

/// Kinds of instance, in draw order (glyphs last: they blend).
#[derive(Clone, Copy)]
enum Kind {
    Tiles = 0,
    Cubes = 1,
    Lines = 2,
    Glyphs = 3,
}

const LISTS: [List; 2] = [List::Network, List::Overlay];

/// How many [`Input`]s: the values and 2 lists × 4 kinds.
const INPUTS: usize = 9;

impl Input {
    const ALL: [Input; INPUTS] = [
        Input::Values,
        Input::Instances(List::Network, Kind::Tiles),
        Input::Instances(List::Network, Kind::Cubes),
        Input::Instances(List::Network, Kind::Lines),
        Input::Instances(List::Network, Kind::Glyphs),
        Input::Instances(List::Overlay, Kind::Tiles),
        Input::Instances(List::Overlay, Kind::Cubes),
        Input::Instances(List::Overlay, Kind::Lines),
        Input::Instances(List::Overlay, Kind::Glyphs),
    ];

    /// Its place in [`Input::ALL`] (and in the staged inputs and a slot's buffers).
    fn index(self) -> usize {
        match self {
            Input::Values => 0,
            Input::Instances(list, kind) => 1 + 4 * list as usize + kind as usize,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Input::Values => "values",
            Input::Instances(List::Network, k) => {
                ["tile instances", "cube instances", "line instances", "glyph instances"][k as usize]
            }
            Input::Instances(List::Overlay, k) => {
                ["overlay tiles", "overlay cubes", "overlay lines", "overlay glyphs"][k as usize]
            }
        }
    }

    fn binding(self) -> u32 {
        match self {
            Input::Values => BINDING_VALUES,
            Input::Instances(_, k) => [BINDING_TILES, BINDING_CUBES, BINDING_LINES, BINDING_GLYPHS][k as usize],
        }
    }
}

/// Renders draw lists offscreen. Owns every Vulkan object it uses; dropping it tears down in
/// order: wait idle → objects → allocator → device → messenger → instance.
pub struct Renderer {
    // Null / None until made; Drop destroys whatever exists (destroying null handles is a no-op).
    target: Option<Target>,
    /// The window's swapchain (renderers made by [`Renderer::new_windowed`]); `None` until the
    /// first frame, while minimized, and after going out of date.
    swapchain: Option<Swapchain>,
    /// The swapchain no longer matches the window (resized): recreate before the next frame.
    swapchain_stale: bool,
    /// The target's readback buffer holds the last presented frame: its size and whether its
    /// bytes are in BGRA order.
    window_readback: Option<(vk::Extent2D, bool)>,
    /// The latest values and instance lists, by [`Input::index`]: each frame slot copies what
    /// changed into its own buffers when it starts a frame.
    inputs: [Staged; INPUTS],
    /// Instances to draw per list and kind (of the latest lists: what a slot starting a frame
    /// holds).
    counts: [[u32; 4]; 2],
    atlas: Option<Image>,
    sampler: vk::Sampler,
    descriptor_pool: vk::DescriptorPool,
    pipelines: Pipelines,
    command_pool: vk::CommandPool,
    /// The frame slots, the one the current (or last) frame uses, and how many are used (1 or 2:
    /// [`Renderer::set_frames_in_flight`]).
    slots: [FrameSlot; FRAMES_IN_FLIGHT],
    slot: usize,
    frames_in_flight: usize,
    /// Two timestamps around the scene pass (null when the queue has no timestamps).
    query_pool: vk::QueryPool,
    /// Nanoseconds per timestamp tick.
    timestamp_period: f64,
    /// The edge bundler (a part: destroyed in Drop) and two timestamps around its work when it
    /// runs on its own ([`Renderer::bundle_now`]).
    bundle: Bundler,
    bundle_queries: vk::QueryPool,
    /// The low-resolution edge pass (a part: destroyed in Drop), the scale asked for (`None`:
    /// [`auto_edge_scale`]) and the one the next recorded frame uses (1: no edge pass).
    edge_pass: EdgePass,
    edge_scale: Option<u32>,
    frame_edge_scale: u32,
    allocator: ManuallyDrop<Allocator>,
    device: Device,
}

impl Renderer {
    pub fn new(config: &RendererConfig) -> Result<Renderer> {
        let mut r = Renderer::with_device(Device::new(config.validation)?)?;
        r.set_edge_scale(config.edge_scale);
        Ok(r)
    }

    /// A renderer that can also draw into `window` ([`Renderer::render_to_window`]). It keeps the
    /// window alive until its surface is destroyed.
    pub fn new_windowed(config: &RendererConfig, window: Arc<winit::window::Window>) -> Result<Renderer> {
        let mut r = Renderer::with_device(Device::with_window(config.validation, window)?)?;
        r.set_edge_scale(config.edge_scale);
        Ok(r)
    }

    /// A renderer on a device made elsewhere ([`Device::through`] an XR runtime).
    pub fn from_device(device: Device) -> Result<Renderer> {
        Renderer::with_device(device)
    }

    /// The device, for whoever must hand its handles to an XR session.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Whether it draws into a window too (a device with a surface).
    pub fn has_window(&self) -> bool {
        self.device.surface.is_some()
    }

    fn with_device(device: Device) -> Result<Renderer> {
        let allocator = Allocator::new(&AllocatorCreateDesc {
            instance: device.instance.clone(),
            device: device.device.clone(),
            physical_device: device.physical,
            debug_settings: Default::default(),
            buffer_device_address: false,
            allocation_sizes: Default::default(),
        })
        .map_err(|source| GfxError::Alloc {
            what: "the allocator".into(),
            source,
        })?;
        let mut r = Renderer {
            target: None,
            swapchain: None,
            swapchain_stale: false,
            window_readback: None,
            inputs: Default::default(),
            counts: [[0; 4]; 2],
            atlas: None,
            sampler: vk::Sampler::null(),
            descriptor_pool: vk::DescriptorPool::null(),
            pipelines: Pipelines::default(),
            command_pool: vk::CommandPool::null(),
            slots: Default::default(),
            slot: 0,
            frames_in_flight: FRAMES_IN_FLIGHT,
            query_pool: vk::QueryPool::null(),
            timestamp_period: 0.0,
            bundle: Bundler::default(),
            bundle_queries: vk::QueryPool::null(),
            edge_pass: EdgePass::default(),
            edge_scale: None,
            frame_edge_scale: 1,
            allocator: ManuallyDrop::new(allocator),
            device,
        };
        // On error, `r` is dropped and destroys what was made.
        r.init()?;
        Ok(r)
    }

    pub fn device_name(&self) -> &str {
        self.device.name()
    }

    /// The log of validation warnings and errors. It stays readable after the renderer is
    /// dropped, and then includes what teardown reported (leaked objects, for instance).
    pub fn validation_log(&self) -> ValidationLog {
        self.device.validation_log()
    }

    /// The validation warnings and errors so far.
    pub fn validation_messages(&self) -> Vec<String> {
        self.validation_log().messages()
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let device = &self.device;
        // SAFETY: after wait idle nothing is in use; each object is destroyed once, before the
        // allocator; the allocator is dropped before `device` (a later field) destroys the device.
        unsafe {
            if let Err(e) = device.device.device_wait_idle() {
                tracing::error!("waiting for the GPU before teardown: {e}");
            }
            // Its set points at the target's depth: gone first.
            self.edge_pass.release(device, &mut self.allocator);
            if let Some(mut t) = self.target.take() {
                t.destroy(device, &mut self.allocator);
            }
            // Before the device destroys the surface (its Drop, after this one).
            if let Some(mut s) = self.swapchain.take() {
                s.destroy(device);
            }
            // Their buffers and fences (command buffers and sets go with the pools below).
            for slot in &mut self.slots {
                slot.destroy(device, &mut self.allocator);
            }
            if let Some(mut a) = self.atlas.take() {
                a.destroy(device, &mut self.allocator);
            }
            self.bundle.destroy(device, &mut self.allocator);
            self.edge_pass.destroy(device, &mut self.allocator);
            let d = &device.device;
            d.destroy_query_pool(self.bundle_queries, None);
            d.destroy_sampler(self.sampler, None);
            d.destroy_query_pool(self.query_pool, None);
            d.destroy_command_pool(self.command_pool, None);
            d.destroy_descriptor_pool(self.descriptor_pool, None);
            self.pipelines.destroy(device);
            ManuallyDrop::drop(&mut self.allocator);
        }
    }
}
