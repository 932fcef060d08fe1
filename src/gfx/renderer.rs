//! The offscreen renderer: draws a [`DrawList`] into an image and reads it back.

use std::mem::ManuallyDrop;
use std::sync::Arc;

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::{Allocator, AllocatorCreateDesc};

use super::bundle::{BundleStyle, Bundler, DrawPart, EdgeSet, Pending};
use super::camera::Camera;
use super::colormap::srgb_to_linear;
use super::device::{Device, ValidationLog};
use super::draw::{DrawList, NetworkDraw};
use super::edge_pass::EdgePass;
use super::pipeline::{
    BINDING_ATLAS, BINDING_CUBES, BINDING_GLYPHS, BINDING_LINES, BINDING_TILES, BINDING_VALUES, Pipelines,
};
use super::resources::{Buffer, Image, full_range, image_barrier};
use super::swapchain::{Acquired, Swapchain};
use super::target::Target;
use super::text::Atlas;
use super::{BACKGROUND_SRGB, GfxError, Result, VkContext};

/// How to set up the renderer.
#[derive(Debug, Clone, Default)]
pub struct RendererConfig {
    /// Enable VK_LAYER_KHRONOS_validation and record its warnings and errors
    /// ([`Renderer::validation_log`]).
    pub validation: bool,
    /// Draw the bundled edges at 1 / this resolution (1: in the scene pass; see
    /// [`super::edge_pass`]); `None`: chosen by the number of edges ([`auto_edge_scale`]).
    pub edge_scale: Option<u32>,
}

impl RendererConfig {
    /// Validation on when the environment has `NETWALK_VALIDATION=1`; the edges' resolution
    /// scale from `NETWALK_EDGE_SCALE` (1 to [`super::edge_pass::MAX_SCALE`]) when set.
    pub fn from_env() -> RendererConfig {
        RendererConfig {
            validation: std::env::var("NETWALK_VALIDATION").is_ok_and(|v| v == "1"),
            edge_scale: std::env::var("NETWALK_EDGE_SCALE").ok().and_then(|v| match v.trim().parse() {
                Ok(scale) => Some(scale),
                Err(_) => {
                    tracing::warn!(value = %v, "NETWALK_EDGE_SCALE is not a whole number (1 to 8): the scale is chosen by the number of edges");
                    None
                }
            }),
        }
    }
}

/// Edges up to this many are drawn at full resolution by default; more go through the
/// low-resolution edge pass ([`auto_edge_scale`]).
pub const FULL_RESOLUTION_EDGES: u32 = 4_096;

/// The resolution scale the edges are drawn at by default: 1 (ribbons in the scene pass) for up
/// to [`FULL_RESOLUTION_EDGES`], then 2, 4 past 32× as many and 8 past 128× (a million edges'
/// light is a haze at any scale; frame time matters more). On the H200 the edge pass costs
/// 0.1–0.5 ms (stereo, 2064×2208 per eye) for thousands of edges, ribbons ~0.45 µs per edge
/// (docs/performance.md): ribbons stay while they are cheap, for their sharpness.
pub fn auto_edge_scale(edges: u32) -> u32 {
    match edges {
        e if e <= FULL_RESOLUTION_EDGES => 1,
        e if e <= 32 * FULL_RESOLUTION_EDGES => 2,
        e if e <= 128 * FULL_RESOLUTION_EDGES => 4,
        _ => 8,
    }
}

/// Tightly packed RGBA8 pixels (sRGB), rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbaImage {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.pixels[i],
            self.pixels[i + 1],
            self.pixels[i + 2],
            self.pixels[i + 3],
        ]
    }

    /// The images next to each other, left to right (all of one height).
    pub fn side_by_side(images: &[RgbaImage]) -> RgbaImage {
        let height = images.first().map_or(0, |i| i.height);
        let width = images.iter().map(|i| i.width).sum();
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height as usize {
            for image in images {
                let row = image.width as usize * 4;
                pixels.extend_from_slice(&image.pixels[y * row..(y + 1) * row]);
            }
        }
        RgbaImage { width, height, pixels }
    }

    pub fn write_png(&self, out: impl std::io::Write) -> Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()
    }
}

/// What one frame's timing measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTimes {
    /// CPU time to record the frame's commands.
    pub record: std::time::Duration,
    /// GPU time from the start to the end of the scene pass; `None` without timestamp support.
    pub gpu: Option<std::time::Duration>,
}

/// What became of a [`Renderer::render_to_window`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFrame {
    /// A frame of this size was presented.
    Presented { width: u32, height: u32 },
    /// Nothing was drawn: the window has no area (minimized). Wait for it to be resized.
    NoArea,
    /// Nothing was drawn: the swapchain was out of date; the next call recreates it.
    OutOfDate,
    /// Nothing was drawn: no swapchain image became free within a second (the window system
    /// holds them, e.g. for a hidden window). Try again later.
    NotReady,
}

/// What a frame does after the scene pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Copy the color into the readback buffer.
    Readback,
    /// Nothing more: the pass is timed with timestamps.
    Timestamps,
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

/// A storage buffer slot: the values (shared by both lists) or one kind of instance of a list.
#[derive(Clone, Copy)]
enum Slot {
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

const KINDS: [Kind; 4] = [Kind::Tiles, Kind::Cubes, Kind::Lines, Kind::Glyphs];
const LISTS: [List; 2] = [List::Network, List::Overlay];

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::Values => "values",
            Slot::Instances(List::Network, k) => {
                ["tile instances", "cube instances", "line instances", "glyph instances"][k as usize]
            }
            Slot::Instances(List::Overlay, k) => {
                ["overlay tiles", "overlay cubes", "overlay lines", "overlay glyphs"][k as usize]
            }
        }
    }

    fn binding(self) -> u32 {
        match self {
            Slot::Values => BINDING_VALUES,
            Slot::Instances(_, k) => [BINDING_TILES, BINDING_CUBES, BINDING_LINES, BINDING_GLYPHS][k as usize],
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
    /// The values, and each list's instances per kind (host-visible storage buffers). They are
    /// written only between frames: every render waits for its fence before returning.
    values: Option<Buffer>,
    instances: [[Option<Buffer>; 4]; 2],
    /// Instances to draw per list and kind.
    counts: [[u32; 4]; 2],
    atlas: Option<Image>,
    sampler: vk::Sampler,
    descriptor_pool: vk::DescriptorPool,
    /// One set per list: the values, that list's instances and the glyph atlas.
    descriptor_sets: [vk::DescriptorSet; 2],
    pipelines: Pipelines,
    command_pool: vk::CommandPool,
    command_buffer: vk::CommandBuffer,
    fence: vk::Fence,
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
            values: None,
            instances: Default::default(),
            counts: [[0; 4]; 2],
            atlas: None,
            sampler: vk::Sampler::null(),
            descriptor_pool: vk::DescriptorPool::null(),
            descriptor_sets: [vk::DescriptorSet::null(); 2],
            pipelines: Pipelines::default(),
            command_pool: vk::CommandPool::null(),
            command_buffer: vk::CommandBuffer::null(),
            fence: vk::Fence::null(),
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

    fn init(&mut self) -> Result<()> {
        self.pipelines = Pipelines::new(&self.device)?;
        let d = &self.device.device;
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(2 * 5),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(2),
        ];
        let info = vk::DescriptorPoolCreateInfo::default().max_sets(2).pool_sizes(&sizes);
        // SAFETY: valid create infos on a live device (for every call in this function).
        self.descriptor_pool = unsafe { d.create_descriptor_pool(&info, None) }.vk("create descriptor pool")?;
        self.device.name_object(self.descriptor_pool, "scene descriptor pool");
        let layouts = [self.pipelines.set_layout; 2];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.descriptor_pool)
            .set_layouts(&layouts);
        // SAFETY: as above.
        let sets = unsafe { d.allocate_descriptor_sets(&info) }.vk("allocate descriptor sets")?;
        self.descriptor_sets = [sets[0], sets[1]];
        self.device.name_object(sets[0], "network descriptor set");
        self.device.name_object(sets[1], "overlay descriptor set");
        let info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(self.device.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: as above.
        self.command_pool = unsafe { d.create_command_pool(&info, None) }.vk("create command pool")?;
        self.device.name_object(self.command_pool, "offscreen command pool");
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.command_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: as above.
        self.command_buffer = unsafe { d.allocate_command_buffers(&info) }.vk("allocate command buffer")?[0];
        self.device.name_object(self.command_buffer, "offscreen commands");
        // SAFETY: as above.
        self.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }.vk("create fence")?;
        self.device.name_object(self.fence, "offscreen fence");
        // SAFETY: the physical device belongs to this instance.
        let (limits, families) = unsafe {
            let instance = &self.device.instance;
            (
                instance.get_physical_device_properties(self.device.physical).limits,
                instance.get_physical_device_queue_family_properties(self.device.physical),
            )
        };
        let bits = families
            .get(self.device.queue_family as usize)
            .map_or(0, |f| f.timestamp_valid_bits);
        if bits > 0 && limits.timestamp_period > 0.0 {
            let info = vk::QueryPoolCreateInfo::default()
                .query_type(vk::QueryType::TIMESTAMP)
                .query_count(2);
            // SAFETY: valid create info on a live device.
            self.query_pool = unsafe { d.create_query_pool(&info, None) }.vk("create query pool")?;
            self.device.name_object(self.query_pool, "frame timestamps");
            // SAFETY: as above.
            self.bundle_queries = unsafe { d.create_query_pool(&info, None) }.vk("create query pool")?;
            self.device.name_object(self.bundle_queries, "bundling timestamps");
            self.timestamp_period = f64::from(limits.timestamp_period);
        }
        self.bundle.init(&self.device, &mut self.allocator)?;
        self.edge_pass
            .init(&self.device, &mut self.allocator, self.bundle.set_layout())?;
        // Every binding must hold a buffer, even before the first scene.
        self.write(Slot::Values, &[])?;
        for list in LISTS {
            for kind in KINDS {
                self.write(Slot::Instances(list, kind), &[])?;
            }
        }
        self.upload_atlas()
    }

    /// Copies the glyph atlas into a sampled image (once, at start) and binds it.
    fn upload_atlas(&mut self) -> Result<()> {
        let atlas = Atlas::get();
        let extent = vk::Extent2D {
            width: atlas.width,
            height: atlas.height,
        };
        let usage = vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST;
        let image = Image::new(
            &self.device,
            &mut self.allocator,
            "glyph atlas",
            extent,
            1,
            vk::Format::R8_UNORM,
            usage,
        )?;
        let image = self.atlas.insert(image);
        let mut staging = Buffer::new(
            &self.device,
            &mut self.allocator,
            "glyph atlas upload",
            atlas.pixels.len() as u64,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryLocation::CpuToGpu,
        )?;
        let d = &self.device.device;
        let cb = self.command_buffer;
        let range = full_range(vk::ImageAspectFlags::COLOR, 1);
        let copied = staging.write(&atlas.pixels).and_then(|()| {
            // SAFETY: nothing is in flight; the command buffer, image and buffer are live and
            // owned here; the submission is waited for before the staging buffer goes.
            unsafe {
                let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
                d.begin_command_buffer(cb, &begin).vk("begin command buffer")?;
                let to_dst = [vk::ImageMemoryBarrier2::default()
                    .dst_stage_mask(vk::PipelineStageFlags2::COPY)
                    .dst_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                    .old_layout(vk::ImageLayout::UNDEFINED)
                    .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                    .image(image.handle)
                    .subresource_range(range)];
                d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_dst));
                let region = vk::BufferImageCopy::default()
                    .image_subresource(
                        vk::ImageSubresourceLayers::default()
                            .aspect_mask(vk::ImageAspectFlags::COLOR)
                            .layer_count(1),
                    )
                    .image_extent(extent.into());
                d.cmd_copy_buffer_to_image(
                    cb,
                    staging.handle,
                    image.handle,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &[region],
                );
                let to_read = [vk::ImageMemoryBarrier2::default()
                    .src_stage_mask(vk::PipelineStageFlags2::COPY)
                    .src_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                    .dst_stage_mask(vk::PipelineStageFlags2::FRAGMENT_SHADER)
                    .dst_access_mask(vk::AccessFlags2::SHADER_SAMPLED_READ)
                    .old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                    .new_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
                    .image(image.handle)
                    .subresource_range(range)];
                d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_read));
                d.end_command_buffer(cb).vk("end command buffer")?;
                let commands = [vk::CommandBufferSubmitInfo::default().command_buffer(cb)];
                let submit = vk::SubmitInfo2::default().command_buffer_infos(&commands);
                d.queue_submit2(self.device.queue, &[submit], self.fence).vk("submit")?;
                d.wait_for_fences(&[self.fence], true, u64::MAX)
                    .vk("wait for the upload")?;
                d.reset_fences(&[self.fence]).vk("reset fence")
            }
        });
        // SAFETY: the copy finished (or never started).
        unsafe { staging.destroy(&self.device, &mut self.allocator) };
        copied?;
        let info = vk::SamplerCreateInfo::default()
            .mag_filter(vk::Filter::LINEAR)
            .min_filter(vk::Filter::LINEAR)
            .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE);
        // SAFETY: valid create info on a live device.
        self.sampler = unsafe { d.create_sampler(&info, None) }.vk("create sampler")?;
        self.device.name_object(self.sampler, "glyph atlas sampler");
        let images = [vk::DescriptorImageInfo::default()
            .sampler(self.sampler)
            .image_view(image.view)
            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
        let writes = self.descriptor_sets.map(|set| {
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(BINDING_ATLAS)
                .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .image_info(&images)
        });
        // SAFETY: the sets are not in use (no submission in flight).
        unsafe { d.update_descriptor_sets(&writes, &[]) };
        Ok(())
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

    /// Uploads the values tiles and cubes read: once per input, not per frame.
    pub fn set_values(&mut self, values: &[f32]) -> Result<()> {
        self.write(Slot::Values, bytemuck::cast_slice(values))
    }

    /// Uploads the network's instances: when the layout changes, not per frame.
    pub fn set_draw_list(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Network, list)
    }

    /// Uploads the overlay's instances (highlights, rays, panels, voxels), drawn after the
    /// network's: small, so rebuilt every frame.
    pub fn set_overlay(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Overlay, list)
    }

    fn write_list(&mut self, which: List, list: &DrawList) -> Result<()> {
        let count = |n: usize| u32::try_from(n).map_err(|_| GfxError::Invalid(format!("{n} instances")));
        self.write(Slot::Instances(which, Kind::Tiles), bytemuck::cast_slice(&list.tiles))?;
        self.write(Slot::Instances(which, Kind::Cubes), bytemuck::cast_slice(&list.cubes))?;
        self.write(Slot::Instances(which, Kind::Lines), bytemuck::cast_slice(&list.lines))?;
        self.write(Slot::Instances(which, Kind::Glyphs), bytemuck::cast_slice(&list.glyphs))?;
        self.counts[which as usize] = [
            count(list.tiles.len())?,
            count(list.cubes.len())?,
            count(list.lines.len())?,
            count(list.glyphs.len())?,
        ];
        Ok(())
    }

    /// Draw calls a frame records: one per list and kind of instance present, however many
    /// instances (at most 8).
    pub fn draw_calls(&self) -> usize {
        self.counts.iter().flatten().filter(|&&n| n > 0).count()
    }

    /// Uploads a network's values and draw list.
    pub fn set_network(&mut self, draw: &NetworkDraw) -> Result<()> {
        self.set_values(&draw.values)?;
        self.set_draw_list(&draw.list)
    }

    /// Uploads the edges to bundle and draw (see [`super::bundle`]); the next frame (or
    /// [`Renderer::bundle_now`]) recomputes the bundle from straight lines.
    pub fn set_edges<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        self.bundle.set_walked(self.edge_scale_for(edges.edge_count()) > 1);
        self.bundle.set_edges(&self.device, &mut self.allocator, edges, false)
    }

    /// New positions for the edges last given (the same edges: their blocks moved): the bundle
    /// is updated from its last shape rather than recomputed (a dragged block's edges follow it
    /// bundled, frame by frame).
    pub fn move_edges<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        self.bundle.set_walked(self.edge_scale_for(edges.edge_count()) > 1);
        self.bundle.set_edges(&self.device, &mut self.allocator, edges, true)
    }

    /// Uploads new values for the edges last given to [`Renderer::set_edges`] (same edges, new
    /// weights or activations); the next frame updates the bundle incrementally.
    pub fn set_edge_values<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        self.bundle.set_values(edges)
    }

    /// How the bundled edges look from the next frame on (strength, width, threshold, ...).
    pub fn set_bundle_style(&mut self, style: &BundleStyle) -> Result<()> {
        self.bundle.write_params(style)
    }

    /// The edges (indices into the last [`Renderer::set_edges`]'s) drawn over the bundle: a
    /// selected neuron's.
    pub fn set_edge_highlight(&mut self, edges: &[u32]) -> Result<()> {
        self.bundle.set_highlight(&self.device, &mut self.allocator, edges)
    }

    /// Draws the bundled edges at 1 / `scale` of the frame's resolution from the next frame on
    /// (1: at full resolution, in the scene pass; clamped to
    /// [`super::edge_pass::MAX_SCALE`]); `None`: by the number of edges ([`auto_edge_scale`]).
    /// The segments drawn per edge follow from the next [`Renderer::set_edges`].
    pub fn set_edge_scale(&mut self, scale: Option<u32>) {
        self.edge_scale = scale.map(|s| s.clamp(1, super::edge_pass::MAX_SCALE));
    }

    /// The resolution scale the current edges are drawn at (see [`Renderer::set_edge_scale`]).
    pub fn edge_scale(&self) -> u32 {
        self.edge_scale_for(self.bundle.edge_count() as usize)
    }

    /// The resolution scale `edges` edges would be drawn at.
    fn edge_scale_for(&self, edges: usize) -> u32 {
        self.edge_scale
            .unwrap_or_else(|| auto_edge_scale(u32::try_from(edges).unwrap_or(u32::MAX)))
    }

    /// Asks for a full recompute of the bundle (from straight lines) before the next frame.
    pub fn rebundle(&mut self) {
        self.bundle.request(super::bundle::Work::Full);
    }

    /// Most edges this device can bundle at once.
    pub fn max_bundled_edges(&self) -> usize {
        self.bundle.max_edges()
    }

    /// Edges uploaded for bundling.
    pub fn bundled_edges(&self) -> usize {
        self.bundle.edge_count() as usize
    }

    /// Runs the pending bundling work (uploads, full recompute or incremental update) now, in a
    /// submission of its own, and waits for it; returns its GPU time (timestamp queries; `None`
    /// without them, or when nothing was pending).
    pub fn bundle_now(&mut self) -> Result<Option<std::time::Duration>> {
        let pending = self.bundle.take_pending();
        if pending == Pending::default() && !self.bundle.unfinished() {
            return Ok(None);
        }
        let queries = (self.query_pool != vk::QueryPool::null()).then_some(self.bundle_queries);
        self.one_shot(|r, cb| {
            // SAFETY: recording outside a render pass; nothing changes the buffers until the
            // submission is waited for.
            unsafe { r.bundle.record(&r.device, cb, pending, queries, None) }
        })?;
        let Some(pool) = queries else { return Ok(None) };
        let mut ticks = [0u64; 2];
        // SAFETY: both queries were written by the finished submission.
        unsafe {
            self.device.device.get_query_pool_results(
                pool,
                0,
                &mut ticks,
                vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
            )
        }
        .vk("read timestamps")?;
        let ns = ticks[1].wrapping_sub(ticks[0]) as f64 * self.timestamp_period;
        Ok(Some(std::time::Duration::from_nanos(ns as u64)))
    }

    /// Every bundled edge's curve as drawn at the current style's strength: `SEGMENTS + 1` points
    /// from its source end to its target end (pending work runs first). For tests and tools: it
    /// reads the whole curve buffer back.
    pub fn bundle_curves(&mut self) -> Result<Vec<Vec<glam::Vec3>>> {
        self.bundle_now()?;
        self.bundle.prepare_curves(&self.device, &mut self.allocator)?;
        self.one_shot(|r, cb| {
            // SAFETY: as in bundle_now; prepare_curves was just called.
            unsafe { r.bundle.record_curves(&r.device, cb) }
        })?;
        self.bundle.curves()
    }

    /// Every bundled edge's points as the draw reads them (the level of detail's
    /// [`Renderer::bundle_drawn_segments`] + 1 per edge, at the current strength; pending work runs
    /// first). For tests and tools.
    pub fn bundle_drawn_curves(&mut self) -> Result<Vec<Vec<glam::Vec3>>> {
        self.bundle_now()?;
        self.bundle.prepare_drawn_readback(&self.device, &mut self.allocator)?;
        self.one_shot(|r, cb| {
            // SAFETY: as in bundle_now; prepare_drawn_readback was just called.
            unsafe { r.bundle.record_drawn_readback(&r.device, cb) }
        })?;
        self.bundle.drawn_curves()
    }

    /// Segments drawn per bundled edge (fewer when many edges are drawn: see
    /// [`super::bundle::drawn_segments`]).
    pub fn bundle_drawn_segments(&self) -> u32 {
        self.bundle.drawn_segments()
    }

    /// The vertex budget the level of detail of the next [`Renderer::set_edges`] is chosen with
    /// ([`super::bundle::VERTEX_BUDGET`] unless set).
    pub fn set_bundle_vertex_budget(&mut self, vertices: u64) {
        self.bundle.set_vertex_budget(vertices);
    }

    /// Records commands with `record` into the command buffer, submits them and waits.
    fn one_shot(&self, record: impl FnOnce(&Renderer, vk::CommandBuffer)) -> Result<()> {
        let d = &self.device.device;
        let cb = self.command_buffer;
        // SAFETY: nothing is pending on the command buffer (every submission is waited for).
        unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .vk("reset command buffer")?;
            let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            d.begin_command_buffer(cb, &begin).vk("begin command buffer")?;
            record(self, cb);
            d.end_command_buffer(cb).vk("end command buffer")?;
        }
        self.submit_and_wait(&[], &[])
    }

    /// Writes `bytes` into a slot's buffer, replacing the buffer (and its descriptor) when it is
    /// too small. Only called between frames (no submission in flight).
    fn write(&mut self, slot: Slot, bytes: &[u8]) -> Result<()> {
        let (current, sets) = match slot {
            Slot::Values => (&mut self.values, &self.descriptor_sets[..]),
            Slot::Instances(list, kind) => (
                &mut self.instances[list as usize][kind as usize],
                &self.descriptor_sets[list as usize..list as usize + 1],
            ),
        };
        let buffer = match current {
            Some(b) if b.size >= bytes.len() as u64 => b,
            current => {
                // At least 256 bytes: Vulkan has no empty buffers, and small scenes then never regrow.
                let size = (bytes.len() as u64).next_power_of_two().max(256);
                let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
                let buffer = Buffer::new(
                    &self.device,
                    &mut self.allocator,
                    slot.name(),
                    size,
                    usage,
                    MemoryLocation::CpuToGpu,
                )?;
                let infos = [vk::DescriptorBufferInfo::default()
                    .buffer(buffer.handle)
                    .range(vk::WHOLE_SIZE)];
                let writes: Vec<vk::WriteDescriptorSet> = sets
                    .iter()
                    .map(|&set| {
                        vk::WriteDescriptorSet::default()
                            .dst_set(set)
                            .dst_binding(slot.binding())
                            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                            .buffer_info(&infos)
                    })
                    .collect();
                // SAFETY: no submission is in flight (every render waits for its fence), so
                // neither the sets nor the old buffer are in use.
                unsafe {
                    self.device.device.update_descriptor_sets(&writes, &[]);
                    if let Some(mut old) = current.take() {
                        old.destroy(&self.device, &mut self.allocator);
                    }
                }
                current.insert(buffer)
            }
        };
        buffer.write(bytes)
    }

    /// Renders the current draw list as seen by each of `views` (1 camera: mono; 2: left and
    /// right eye in one multiview pass) into `width`×`height` images, one per view.
    pub fn render_offscreen(&mut self, width: u32, height: u32, views: &[Camera]) -> Result<Vec<RgbaImage>> {
        self.ensure_target(width, height, view_count(views)?)?;
        self.draw_frame(width, height, views, Finish::Readback)?;
        // The readback buffer now holds this image, not the last window frame.
        self.window_readback = None;
        let Some(target) = &self.target else {
            unreachable!("made by ensure_target")
        };
        let bytes = target.readback.mapped()?;
        let layer = width as usize * height as usize * 4;
        Ok(bytes[..layer * views.len()]
            .chunks_exact(layer)
            .map(|pixels| RgbaImage {
                width,
                height,
                pixels: pixels.to_vec(),
            })
            .collect())
    }

    /// Renders one frame offscreen like [`Renderer::render_offscreen`], without reading it back,
    /// and times it: CPU time to record the commands, GPU time of the scene pass (timestamp
    /// queries; `None` when the device has none).
    pub fn time_frame(&mut self, width: u32, height: u32, views: &[Camera]) -> Result<FrameTimes> {
        self.ensure_target(width, height, view_count(views)?)?;
        let record = self.draw_frame(width, height, views, Finish::Timestamps)?;
        let gpu = if self.query_pool == vk::QueryPool::null() {
            None
        } else {
            let mut ticks = [0u64; 2];
            // SAFETY: both queries were written by the finished submission.
            unsafe {
                self.device.device.get_query_pool_results(
                    self.query_pool,
                    0,
                    &mut ticks,
                    vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
                )
            }
            .vk("read timestamps")?;
            let ns = ticks[1].wrapping_sub(ticks[0]) as f64 * self.timestamp_period;
            Some(std::time::Duration::from_nanos(ns as u64))
        };
        Ok(FrameTimes { record, gpu })
    }

    /// Makes the offscreen target `width`×`height` with `views` layers, unless it is already.
    fn ensure_target(&mut self, width: u32, height: u32, views: u32) -> Result<()> {
        let max = self.device.max_image_dimension;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(GfxError::Invalid(format!(
                "size {width}x{height} (each side 1..={max})"
            )));
        }
        let extent = vk::Extent2D { width, height };
        if self
            .target
            .as_ref()
            .is_none_or(|t| t.extent != extent || t.views != views)
        {
            // Its sums are sized for the old target and its set points at its depth: gone first.
            self.edge_pass.release(&self.device, &mut self.allocator);
            if let Some(mut old) = self.target.take() {
                // SAFETY: no submission is in flight.
                unsafe { old.destroy(&self.device, &mut self.allocator) };
            }
            self.window_readback = None;
            self.target = Some(Target::new(&self.device, &mut self.allocator, extent, views)?);
        }
        self.prepare_edge_pass()
    }

    /// Sets up the low-resolution edge pass for the next frame, or none (scale 1 or no edges).
    fn prepare_edge_pass(&mut self) -> Result<()> {
        self.frame_edge_scale = 1;
        let scale = self.edge_scale();
        let Some(target) = &self.target else {
            return Ok(());
        };
        if scale <= 1 || !self.bundle.has_edges() {
            return Ok(());
        }
        // Coarser where the sums at this scale would not fit in a storage buffer.
        let scale = self.edge_pass.fitting_scale(target.extent, target.views, scale)?;
        self.edge_pass
            .ensure(&self.device, &mut self.allocator, target, scale)?;
        self.frame_edge_scale = scale;
        Ok(())
    }

    /// Records, submits and waits for one frame into the offscreen target; returns the time
    /// recording took.
    fn draw_frame(&mut self, width: u32, height: u32, views: &[Camera], finish: Finish) -> Result<std::time::Duration> {
        let Some(target) = &self.target else {
            return Err(GfxError::Invalid("no render target".into()));
        };
        let aspect = width as f32 / height as f32;
        let mut clip_from_world = [[0f32; 16]; 2];
        for (m, cam) in clip_from_world.iter_mut().zip(views.iter().cycle()) {
            *m = cam.clip_from_world(aspect).to_cols_array();
        }
        let started = std::time::Instant::now();
        self.record(
            target,
            views.len() as u32,
            bytemuck::cast_slice(&clip_from_world),
            finish,
        )?;
        let record = started.elapsed();
        self.submit_and_wait(&[], &[])?;
        Ok(record)
    }

    /// Submits the recorded command buffer (waiting for and signaling the given semaphores) and
    /// waits for it to finish, so the buffers and the target may be touched again afterwards.
    fn submit_and_wait(&self, waits: &[vk::SemaphoreSubmitInfo], signals: &[vk::SemaphoreSubmitInfo]) -> Result<()> {
        let d = &self.device.device;
        let commands = [vk::CommandBufferSubmitInfo::default().command_buffer(self.command_buffer)];
        let submit = vk::SubmitInfo2::default()
            .wait_semaphore_infos(waits)
            .command_buffer_infos(&commands)
            .signal_semaphore_infos(signals);
        // SAFETY: the command buffer is recorded and not pending; the fence is unsignaled.
        unsafe {
            d.queue_submit2(self.device.queue, &[submit], self.fence).vk("submit")?;
            d.wait_for_fences(&[self.fence], true, u64::MAX)
                .vk("wait for the frame")?;
            d.reset_fences(&[self.fence]).vk("reset fence")?;
        }
        Ok(())
    }

    /// Renders the current draw list in one multiview pass (left eye = layer 0) with the given
    /// clip_from_world matrices and copies both layers into `image`, an acquired and waited-for
    /// 2-layer XR swapchain image of `extent` in [`super::COLOR_FORMAT`]; returns when the GPU is
    /// done, with the image in COLOR_ATTACHMENT_OPTIMAL, ready to be released. With `readback`,
    /// also returns the two layers of that image as read back from it. With `depth` (an acquired
    /// 2-layer D32_SFLOAT XR depth swapchain image of `extent`), the pass's depth (0 near, 1 far;
    /// [`super::EyeView`]'s planes) is copied into it.
    ///
    /// # Safety
    /// `image` (and `depth`) must be such an image of this renderer's device, not in use by anyone else until
    /// this returns.
    pub unsafe fn render_to_xr_image(
        &mut self,
        image: vk::Image,
        depth: Option<vk::Image>,
        extent: vk::Extent2D,
        clip_from_world: [glam::Mat4; 2],
        readback: bool,
    ) -> Result<Option<Vec<RgbaImage>>> {
        self.ensure_target(extent.width, extent.height, 2)?;
        // The mirror window (renderers on a device with a surface): a swapchain image for the
        // left eye, unless the window has no area or none is free (then this frame skips it).
        let mut mirror = None;
        if self.device.surface.is_some() {
            if self.swapchain.is_none() || self.swapchain_stale {
                self.recreate_swapchain()?;
            }
            if let Some(swapchain) = &self.swapchain {
                match swapchain.acquire()? {
                    Acquired::Image { index, matches } => mirror = Some((index, matches)),
                    Acquired::NotReady => {}
                    Acquired::OutOfDate => self.swapchain_stale = true,
                }
            }
        }
        let Some(target) = &self.target else {
            unreachable!("made by ensure_target")
        };
        let matrices = clip_from_world.map(|m| m.to_cols_array());
        let (waits, signals, window) = match (mirror, &self.swapchain) {
            (Some((index, _)), Some(s)) => (
                vec![
                    vk::SemaphoreSubmitInfo::default()
                        .semaphore(s.acquired)
                        .stage_mask(vk::PipelineStageFlags2::CLEAR | vk::PipelineStageFlags2::BLIT),
                ],
                vec![
                    vk::SemaphoreSubmitInfo::default()
                        .semaphore(s.rendered[index as usize])
                        .stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS),
                ],
                Some((s.images[index as usize], s.extent)),
            ),
            _ => (Vec::new(), Vec::new(), None),
        };
        let recorded = self.record(
            target,
            2,
            bytemuck::cast_slice(&matrices),
            Finish::Xr {
                image,
                depth,
                readback,
                mirror: window,
            },
        );
        if let Err(e) = recorded {
            // An acquired window image's semaphore is signaled: start the swapchain over.
            self.swapchain_stale |= mirror.is_some();
            return Err(e);
        }
        self.submit_and_wait(&waits, &signals)?;
        if let (Some((index, matches)), Some(swapchain)) = (mirror, &self.swapchain) {
            let still_matches = swapchain.present(self.device.queue, index)?;
            if !matches || !still_matches {
                self.swapchain_stale = true;
            }
        }
        let Some(target) = &self.target else {
            unreachable!("made by ensure_target")
        };
        self.window_readback = None;
        if !readback {
            return Ok(None);
        }
        let bytes = target.readback.mapped()?;
        let layer = extent.width as usize * extent.height as usize * 4;
        Ok(Some(
            bytes[..layer * 2]
                .chunks_exact(layer)
                .map(|pixels| RgbaImage {
                    width: extent.width,
                    height: extent.height,
                    pixels: pixels.to_vec(),
                })
                .collect(),
        ))
    }

    /// Notes that the window changed size: the swapchain is recreated before the next frame.
    pub fn window_resized(&mut self) {
        self.swapchain_stale = true;
    }

    /// Draws the current draw list as seen by `camera` into the window and presents it (FIFO:
    /// waits for vsync when frames come faster). The image has the window's size. With
    /// `readback`, the presented image is also read back ([`Renderer::last_window_frame`]).
    ///
    /// A frame: acquire a swapchain image (signals `acquired`) → one submission that renders the
    /// scene into the offscreen color target, blits it into the image (after waiting for
    /// `acquired`), optionally copies the image to the readback buffer, transitions it to
    /// PRESENT_SRC and signals the image's `rendered` semaphore → present (waits `rendered`)
    /// → wait for the frame's fence. So between calls nothing is in flight on the GPU except the
    /// presentation engine's own work.
    pub fn render_to_window(&mut self, camera: &Camera, readback: bool) -> Result<WindowFrame> {
        if self.device.surface.is_none() {
            return Err(GfxError::Invalid(
                "render_to_window on a renderer made without a window".into(),
            ));
        }
        if self.swapchain.is_none() || self.swapchain_stale {
            self.recreate_swapchain()?;
        }
        let Some(swapchain) = &self.swapchain else {
            return Ok(WindowFrame::NoArea);
        };
        if readback && !swapchain.readable {
            return Err(GfxError::Invalid(
                "the window's swapchain images cannot be read back (no TRANSFER_SRC usage)".into(),
            ));
        }
        let (index, matches) = match swapchain.acquire()? {
            Acquired::Image { index, matches } => (index, matches),
            Acquired::NotReady => return Ok(WindowFrame::NotReady),
            Acquired::OutOfDate => {
                self.swapchain_stale = true;
                return Ok(WindowFrame::OutOfDate);
            }
        };
        let image = swapchain.images[index as usize];
        let (extent, bgra) = (
            swapchain.extent,
            swapchain.format == vk::Format::B8G8R8A8_SRGB || swapchain.format == vk::Format::B8G8R8A8_UNORM,
        );
        let (acquired, rendered) = (swapchain.acquired, swapchain.rendered[index as usize]);
        // The acquire signaled `acquired`: from here on, the frame must be submitted (a semaphore
        // left signaled could not be acquired with again).
        let recorded = self.ensure_target(extent.width, extent.height, 1).and_then(|()| {
            let Some(target) = &self.target else {
                unreachable!("made above")
            };
            self.record(
                target,
                1,
                &push_constants(&[*camera], extent),
                Finish::Window { image, readback },
            )
        });
        if let Err(e) = recorded {
            // The swapchain and its semaphores are in an unknown state: start over next frame.
            self.swapchain_stale = true;
            return Err(e);
        }
        // The blit is the first use of the swapchain image.
        let waits = [vk::SemaphoreSubmitInfo::default()
            .semaphore(acquired)
            .stage_mask(vk::PipelineStageFlags2::BLIT)];
        let signals = [vk::SemaphoreSubmitInfo::default()
            .semaphore(rendered)
            .stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)];
        self.submit_and_wait(&waits, &signals)?;
        let Some(swapchain) = &self.swapchain else {
            unreachable!("acquired from above")
        };
        let still_matches = swapchain.present(self.device.queue, index)?;
        if !matches || !still_matches {
            self.swapchain_stale = true;
        }
        self.window_readback = readback.then_some((extent, bgra));
        Ok(WindowFrame::Presented {
            width: extent.width,
            height: extent.height,
        })
    }

    /// The last frame [`Renderer::render_to_window`] presented with `readback`, as RGBA, or
    /// `None` when there is none (or an offscreen render came after it).
    pub fn last_window_frame(&self) -> Option<RgbaImage> {
        let (extent, bgra) = self.window_readback?;
        let target = self.target.as_ref()?;
        let bytes = target.readback.mapped().ok()?;
        let len = extent.width as usize * extent.height as usize * 4;
        let mut pixels = bytes.get(..len)?.to_vec();
        if bgra {
            for p in pixels.chunks_exact_mut(4) {
                p.swap(0, 2);
            }
        }
        Some(RgbaImage {
            width: extent.width,
            height: extent.height,
            pixels,
        })
    }

    /// Replaces the swapchain with one of the window's current size (none while it has no area).
    fn recreate_swapchain(&mut self) -> Result<()> {
        // SAFETY: waits for the GPU; frames already waited for their fences, this also covers
        // the queue's presentation work before the old swapchain's semaphores are destroyed.
        unsafe { self.device.device.device_wait_idle() }.vk("wait idle before recreating the swapchain")?;
        let old = self.swapchain.as_ref().map_or(vk::SwapchainKHR::null(), |s| s.handle);
        let new = Swapchain::new(&self.device, old);
        if let Some(mut old) = self.swapchain.take() {
            // SAFETY: idle (above); `old` was retired by the new swapchain's creation (or the
            // creation failed, and it is not used again).
            unsafe { old.destroy(&self.device) };
        }
        self.swapchain = new?;
        self.swapchain_stale = false;
        Ok(())
    }

    fn record(&self, target: &Target, views: u32, push_constants: &[u8], finish: Finish) -> Result<()> {
        let d = &self.device.device;
        let cb = self.command_buffer;
        let color_range = full_range(vk::ImageAspectFlags::COLOR, views);
        let depth_range = full_range(vk::ImageAspectFlags::DEPTH, views);
        let [r, g, b] = BACKGROUND_SRGB.map(srgb_to_linear);
        // SAFETY: the command buffer is not pending (the previous frame's fence was waited for);
        // every handle recorded is live and owned by this renderer.
        unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .vk("reset command buffer")?;
            let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            d.begin_command_buffer(cb, &begin).vk("begin command buffer")?;

            // Old contents are discarded (UNDEFINED); the previous frame's copy or blit and depth
            // writes must be done before the images are written again.
            let to_attachments = [
                vk::ImageMemoryBarrier2::default()
                    .src_stage_mask(vk::PipelineStageFlags2::COPY | vk::PipelineStageFlags2::BLIT)
                    .src_access_mask(vk::AccessFlags2::NONE)
                    .dst_stage_mask(vk::PipelineStageFlags2::COLOR_ATTACHMENT_OUTPUT)
                    .dst_access_mask(vk::AccessFlags2::COLOR_ATTACHMENT_WRITE)
                    .old_layout(vk::ImageLayout::UNDEFINED)
                    .new_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                    .image(target.color.handle)
                    .subresource_range(color_range),
                vk::ImageMemoryBarrier2::default()
                    .src_stage_mask(vk::PipelineStageFlags2::LATE_FRAGMENT_TESTS)
                    .src_access_mask(vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_WRITE)
                    .dst_stage_mask(
                        vk::PipelineStageFlags2::EARLY_FRAGMENT_TESTS | vk::PipelineStageFlags2::LATE_FRAGMENT_TESTS,
                    )
                    .dst_access_mask(
                        vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_READ
                            | vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_WRITE,
                    )
                    .old_layout(vk::ImageLayout::UNDEFINED)
                    .new_layout(vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL)
                    .image(target.depth.handle)
                    .subresource_range(depth_range),
            ];
            d.cmd_pipeline_barrier2(
                cb,
                &vk::DependencyInfo::default().image_memory_barriers(&to_attachments),
            );
            // Edge bundling waiting for this frame (new edges or values): before the pass that draws it.
            let pending = self.bundle.take_pending();
            if pending != Pending::default() || self.bundle.unfinished() {
                let budget = Some(super::bundle::ITERATIONS_PER_FRAME);
                self.bundle.record(&self.device, cb, pending, None, budget);
            }
            let timed = finish == Finish::Timestamps && self.query_pool != vk::QueryPool::null();
            if timed {
                d.cmd_reset_query_pool(cb, self.query_pool, 0, 2);
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::TOP_OF_PIPE, self.query_pool, 0);
            }

            use vk::AttachmentLoadOp as Load;
            use vk::AttachmentStoreOp as Store;
            // Depth kept only when the edge pass reads it or it goes on to an XR depth swapchain.
            let keep_depth = if matches!(finish, Finish::Xr { depth: Some(_), .. }) {
                Store::STORE
            } else {
                Store::DONT_CARE
            };
            let clear = [r, g, b, 1.0];
            if self.frame_edge_scale > 1 {
                // The bundle between the opaque kinds and the rest, as ribbons would be: the
                // opaque kinds, the edge pass (it reads their depth), then the highlighted edges
                // and the glyphs over the edges' light.
                self.record_scene_rendering(
                    cb,
                    target,
                    push_constants,
                    (Load::CLEAR, Store::STORE),
                    clear,
                    Stage::Opaque,
                );
                let drawn = (self.bundle.edge_count(), self.bundle.drawn_segments());
                self.edge_pass
                    .record(&self.device, cb, target, self.bundle.set(), drawn, push_constants)?;
                self.record_scene_rendering(
                    cb,
                    target,
                    push_constants,
                    (Load::LOAD, keep_depth),
                    clear,
                    Stage::Overlay,
                );
            } else {
                self.record_scene_rendering(cb, target, push_constants, (Load::CLEAR, keep_depth), clear, Stage::All);
            }
            if timed {
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::BOTTOM_OF_PIPE, self.query_pool, 1);
            }
            if finish == Finish::Timestamps {
                d.end_command_buffer(cb).vk("end command buffer")?;
                return Ok(());
            }

            let to_transfer = [vk::ImageMemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COLOR_ATTACHMENT_OUTPUT)
                .src_access_mask(vk::AccessFlags2::COLOR_ATTACHMENT_WRITE)
                // Read by the readback copy or by the blit into the window.
                .dst_stage_mask(vk::PipelineStageFlags2::COPY | vk::PipelineStageFlags2::BLIT)
                .dst_access_mask(vk::AccessFlags2::TRANSFER_READ)
                .old_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                .new_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
                .image(target.color.handle)
                .subresource_range(color_range)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_transfer));
            match finish {
                Finish::Readback => self.record_readback(cb, target, target.color.handle, views),
                Finish::Window { image, readback } => self.record_blit(cb, target, image, readback),
                Finish::Xr {
                    image,
                    depth,
                    readback,
                    mirror,
                } => {
                    self.record_xr_copy(cb, target, image, readback);
                    if let Some(depth) = depth {
                        self.record_xr_depth_copy(cb, target, depth);
                    }
                    if let Some((window_image, window_extent)) = mirror {
                        self.record_mirror_blit(cb, target, window_image, window_extent);
                    }
                }
                Finish::Timestamps => unreachable!("returned after the pass"),
            }
            d.end_command_buffer(cb).vk("end command buffer")?;
        }
        Ok(())
    }

    /// Records the blit of the target's color (in TRANSFER_SRC_OPTIMAL) into a swapchain image
    /// (acquired; the submission waits for that at the BLIT stage), optionally its copy to the
    /// readback buffer, and its transition to PRESENT_SRC.
    ///
    /// # Safety
    /// `cb` is recording; `image` is a swapchain image of this renderer of the target's size.
    unsafe fn record_blit(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image, readback: bool) {
        let d = &self.device.device;
        let range = full_range(vk::ImageAspectFlags::COLOR, 1);
        let barrier = |src_stage, src_access, dst_stage, dst_access, old, new| {
            image_barrier(
                image,
                range,
                (src_stage, src_access),
                (dst_stage, dst_access),
                (old, new),
            )
        };
        use vk::{AccessFlags2 as A, ImageLayout as L, PipelineStageFlags2 as S};
        // After the acquire semaphore's wait (BLIT stage); the old contents are discarded.
        let to_dst = [barrier(
            S::BLIT,
            A::NONE,
            S::BLIT,
            A::TRANSFER_WRITE,
            L::UNDEFINED,
            L::TRANSFER_DST_OPTIMAL,
        )];
        let layers = vk::ImageSubresourceLayers::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .mip_level(0)
            .base_array_layer(0)
            .layer_count(1);
        let corner = vk::Offset3D {
            x: target.extent.width as i32,
            y: target.extent.height as i32,
            z: 1,
        };
        // Same size, so a 1:1 copy; a blit rather than a copy because it converts RGBA to the
        // swapchain's channel order (BGRA, usually).
        let region = vk::ImageBlit::default()
            .src_subresource(layers)
            .src_offsets([vk::Offset3D::default(), corner])
            .dst_subresource(layers)
            .dst_offsets([vk::Offset3D::default(), corner]);
        // SAFETY: per the function's contract.
        unsafe {
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_dst));
            d.cmd_blit_image(
                cb,
                target.color.handle,
                L::TRANSFER_SRC_OPTIMAL,
                image,
                L::TRANSFER_DST_OPTIMAL,
                &[region],
                vk::Filter::NEAREST,
            );
            // Presentation needs no access of its own: the `rendered` semaphore signal (all
            // commands) orders it after the transition.
            let to_present = if readback {
                let to_src = [barrier(
                    S::BLIT,
                    A::TRANSFER_WRITE,
                    S::COPY,
                    A::TRANSFER_READ,
                    L::TRANSFER_DST_OPTIMAL,
                    L::TRANSFER_SRC_OPTIMAL,
                )];
                d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_src));
                self.record_readback(cb, target, image, 1);
                barrier(
                    S::COPY,
                    A::NONE,
                    S::NONE,
                    A::NONE,
                    L::TRANSFER_SRC_OPTIMAL,
                    L::PRESENT_SRC_KHR,
                )
            } else {
                barrier(
                    S::BLIT,
                    A::TRANSFER_WRITE,
                    S::NONE,
                    A::NONE,
                    L::TRANSFER_DST_OPTIMAL,
                    L::PRESENT_SRC_KHR,
                )
            };
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&[to_present]));
        }
    }

    /// Records the copy of the target's two layers (in TRANSFER_SRC_OPTIMAL) into an XR swapchain
    /// image, optionally its readback, and its transition to COLOR_ATTACHMENT_OPTIMAL.
    ///
    /// # Safety
    /// `cb` is recording; `image` is an acquired (and waited-for) 2-layer XR swapchain image of
    /// the target's size and format.
    unsafe fn record_xr_copy(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image, readback: bool) {
        let d = &self.device.device;
        let range = full_range(vk::ImageAspectFlags::COLOR, 2);
        let barrier = |src_stage, src_access, dst_stage, dst_access, old, new| {
            image_barrier(
                image,
                range,
                (src_stage, src_access),
                (dst_stage, dst_access),
                (old, new),
            )
        };
        use vk::{AccessFlags2 as A, ImageLayout as L, PipelineStageFlags2 as S};
        // SAFETY: per the function's contract.
        unsafe {
            // The runtime's compositor read the image before handing it out again; the old
            // contents are discarded.
            let to_dst = [barrier(
                S::ALL_COMMANDS,
                A::NONE,
                S::COPY,
                A::TRANSFER_WRITE,
                L::UNDEFINED,
                L::TRANSFER_DST_OPTIMAL,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_dst));
            copy_layers(
                d,
                cb,
                (target.color.handle, image),
                vk::ImageAspectFlags::COLOR,
                target.extent,
            );
            let (last_stage, old) = if readback {
                let to_src = [barrier(
                    S::COPY,
                    A::TRANSFER_WRITE,
                    S::COPY,
                    A::TRANSFER_READ,
                    L::TRANSFER_DST_OPTIMAL,
                    L::TRANSFER_SRC_OPTIMAL,
                )];
                d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_src));
                self.record_readback(cb, target, image, 2);
                (S::COPY, L::TRANSFER_SRC_OPTIMAL)
            } else {
                (S::COPY, L::TRANSFER_DST_OPTIMAL)
            };
            // The compositor samples it after release (the submission is finished by then).
            let to_release = [barrier(
                last_stage,
                if readback { A::NONE } else { A::TRANSFER_WRITE },
                S::ALL_COMMANDS,
                A::MEMORY_READ,
                old,
                L::COLOR_ATTACHMENT_OPTIMAL,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_release));
        }
    }

    /// Records the blit of the target's left eye (layer 0, in TRANSFER_SRC_OPTIMAL) into a window
    /// swapchain image: cleared to the background, the eye scaled to fit in the middle, then
    /// PRESENT_SRC. The submission waits for the image's acquire at the CLEAR/BLIT stages.
    ///
    /// # Safety
    /// `cb` is recording after the scene pass; `image` is an acquired window swapchain image of
    /// `extent` of this renderer.
    unsafe fn record_mirror_blit(
        &self,
        cb: vk::CommandBuffer,
        target: &Target,
        image: vk::Image,
        extent: vk::Extent2D,
    ) {
        let d = &self.device.device;
        let range = full_range(vk::ImageAspectFlags::COLOR, 1);
        use vk::{AccessFlags2 as A, ImageLayout as L, PipelineStageFlags2 as S};
        let barrier = |src_stage, src_access, dst_stage, dst_access, old, new| {
            image_barrier(
                image,
                range,
                (src_stage, src_access),
                (dst_stage, dst_access),
                (old, new),
            )
        };
        let (tw, th) = (target.extent.width as f32, target.extent.height as f32);
        let scale = (extent.width as f32 / tw).min(extent.height as f32 / th);
        let (w, h) = ((tw * scale).round() as i32, (th * scale).round() as i32);
        let (x, y) = ((extent.width as i32 - w) / 2, (extent.height as i32 - h) / 2);
        let layer0 = vk::ImageSubresourceLayers::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .layer_count(1);
        let region = vk::ImageBlit::default()
            .src_subresource(layer0)
            .src_offsets([
                vk::Offset3D::default(),
                vk::Offset3D {
                    x: target.extent.width as i32,
                    y: target.extent.height as i32,
                    z: 1,
                },
            ])
            .dst_subresource(layer0)
            .dst_offsets([
                vk::Offset3D { x, y, z: 0 },
                vk::Offset3D {
                    x: x + w,
                    y: y + h,
                    z: 1,
                },
            ]);
        let [r, g, b] = BACKGROUND_SRGB.map(srgb_to_linear);
        // SAFETY: per the function's contract.
        unsafe {
            let to_dst = [barrier(
                S::CLEAR | S::BLIT,
                A::NONE,
                S::CLEAR,
                A::TRANSFER_WRITE,
                L::UNDEFINED,
                L::TRANSFER_DST_OPTIMAL,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_dst));
            d.cmd_clear_color_image(
                cb,
                image,
                L::TRANSFER_DST_OPTIMAL,
                &vk::ClearColorValue {
                    float32: [r, g, b, 1.0],
                },
                &[range],
            );
            let cleared = [barrier(
                S::CLEAR,
                A::TRANSFER_WRITE,
                S::BLIT,
                A::TRANSFER_WRITE,
                L::TRANSFER_DST_OPTIMAL,
                L::TRANSFER_DST_OPTIMAL,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&cleared));
            if w > 0 && h > 0 {
                d.cmd_blit_image(
                    cb,
                    target.color.handle,
                    L::TRANSFER_SRC_OPTIMAL,
                    image,
                    L::TRANSFER_DST_OPTIMAL,
                    &[region],
                    vk::Filter::LINEAR,
                );
            }
            let to_present = [barrier(
                S::BLIT,
                A::TRANSFER_WRITE,
                S::NONE,
                A::NONE,
                L::TRANSFER_DST_OPTIMAL,
                L::PRESENT_SRC_KHR,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_present));
        }
    }

    /// Records the copy of the target's depth (both layers, just written by the pass) into an XR
    /// depth swapchain image, left in DEPTH_STENCIL_ATTACHMENT_OPTIMAL as OpenXR wants it released.
    ///
    /// # Safety
    /// `cb` is recording after the scene pass; `image` is an acquired (and waited-for) 2-layer
    /// D32_SFLOAT XR swapchain image of the target's size.
    unsafe fn record_xr_depth_copy(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image) {
        let d = &self.device.device;
        let range = full_range(vk::ImageAspectFlags::DEPTH, 2);
        use vk::{AccessFlags2 as A, ImageLayout as L, PipelineStageFlags2 as S};
        let barrier = |img, src_stage, src_access, dst_stage, dst_access, old, new| {
            image_barrier(img, range, (src_stage, src_access), (dst_stage, dst_access), (old, new))
        };
        // SAFETY: per the function's contract.
        unsafe {
            let before = [
                barrier(
                    target.depth.handle,
                    S::LATE_FRAGMENT_TESTS,
                    A::DEPTH_STENCIL_ATTACHMENT_WRITE,
                    S::COPY,
                    A::TRANSFER_READ,
                    L::DEPTH_ATTACHMENT_OPTIMAL,
                    L::TRANSFER_SRC_OPTIMAL,
                ),
                barrier(
                    image,
                    S::ALL_COMMANDS,
                    A::NONE,
                    S::COPY,
                    A::TRANSFER_WRITE,
                    L::UNDEFINED,
                    L::TRANSFER_DST_OPTIMAL,
                ),
            ];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&before));
            copy_layers(
                d,
                cb,
                (target.depth.handle, image),
                vk::ImageAspectFlags::DEPTH,
                target.extent,
            );
            let after = [barrier(
                image,
                S::COPY,
                A::TRANSFER_WRITE,
                S::ALL_COMMANDS,
                A::MEMORY_READ,
                L::TRANSFER_DST_OPTIMAL,
                L::DEPTH_STENCIL_ATTACHMENT_OPTIMAL,
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&after));
        }
    }

    /// Records the copy of `views` layers of `image` (in TRANSFER_SRC_OPTIMAL, the target's size)
    /// into the target's readback buffer, made visible to the host once the fence signals.
    ///
    /// # Safety
    /// `cb` is recording; `image` is the target's color or a swapchain image of its size.
    unsafe fn record_readback(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image, views: u32) {
        let d = &self.device.device;
        // SAFETY: per the function's contract.
        unsafe {
            let layer_bytes = u64::from(target.extent.width) * u64::from(target.extent.height) * 4;
            let regions: Vec<vk::BufferImageCopy> = (0..views)
                .map(|layer| {
                    vk::BufferImageCopy::default()
                        .buffer_offset(u64::from(layer) * layer_bytes)
                        .image_subresource(
                            vk::ImageSubresourceLayers::default()
                                .aspect_mask(vk::ImageAspectFlags::COLOR)
                                .mip_level(0)
                                .base_array_layer(layer)
                                .layer_count(1),
                        )
                        .image_extent(target.extent.into())
                })
                .collect();
            d.cmd_copy_image_to_buffer(
                cb,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                target.readback.handle,
                &regions,
            );
            // Make the copy visible to the host once the fence signals.
            let to_host = [vk::BufferMemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COPY)
                .src_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                .dst_stage_mask(vk::PipelineStageFlags2::HOST)
                .dst_access_mask(vk::AccessFlags2::HOST_READ)
                .buffer(target.readback.handle)
                .size(vk::WHOLE_SIZE)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_host));
        }
    }
}

impl Renderer {
    /// Records one rendering scope over the target's colour and depth (both loaded as `load`,
    /// cleared to `clear` and 1; depth stored as `depth_store`) with the views' push constants,
    /// drawing `stage`.
    ///
    /// # Safety
    /// `cb` is recording outside a rendering scope; the target's images are in
    /// COLOR_ATTACHMENT_OPTIMAL and DEPTH_ATTACHMENT_OPTIMAL, their earlier writes made visible.
    unsafe fn record_scene_rendering(
        &self,
        cb: vk::CommandBuffer,
        target: &Target,
        push_constants: &[u8],
        (load, depth_store): (vk::AttachmentLoadOp, vk::AttachmentStoreOp),
        clear: [f32; 4],
        stage: Stage,
    ) {
        let d = &self.device.device;
        let (area, viewport) = (target.area(), target.viewport());
        // Lavapipe (Mesa 22.3) draws the second view of instanced multiview draws partly into
        // the first layer: there each layer gets its own scope, with the one-view pipelines and
        // that view's matrix first.
        let per_layer = target.views > 1 && self.device.name().starts_with("llvmpipe");
        let scopes: Vec<(vk::ImageView, vk::ImageView, u32, usize)> = if per_layer {
            target
                .layers
                .iter()
                .enumerate()
                .map(|(i, [color, depth])| (*color, *depth, 1, i))
                .collect()
        } else {
            vec![(target.color.view, target.depth.view, target.views, 0)]
        };
        for (color_view, depth_view, views, first) in scopes {
            let color = [vk::RenderingAttachmentInfo::default()
                .image_view(color_view)
                .image_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                .load_op(load)
                .store_op(vk::AttachmentStoreOp::STORE)
                .clear_value(vk::ClearValue {
                    color: vk::ClearColorValue { float32: clear },
                })];
            let depth = vk::RenderingAttachmentInfo::default()
                .image_view(depth_view)
                .image_layout(vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL)
                .load_op(load)
                .store_op(depth_store)
                .clear_value(vk::ClearValue {
                    depth_stencil: vk::ClearDepthStencilValue { depth: 1.0, stencil: 0 },
                });
            let rendering = vk::RenderingInfo::default()
                .render_area(area)
                .layer_count(1)
                .view_mask((1 << views) - 1)
                .color_attachments(&color)
                .depth_attachment(&depth);
            // The matrices from this scope's first view on (clip_from_world[gl_ViewIndex]).
            let matrix = push_constants.len() / target.views.max(1) as usize;
            let mut constants = push_constants.get(first * matrix..).unwrap_or(push_constants).to_vec();
            constants.resize(push_constants.len(), 0);
            // SAFETY: per the function's contract.
            unsafe {
                d.cmd_begin_rendering(cb, &rendering);
                d.cmd_set_viewport(cb, 0, &[viewport]);
                d.cmd_set_scissor(cb, 0, &[area]);
                d.cmd_push_constants(cb, self.pipelines.layout, vk::ShaderStageFlags::VERTEX, 0, &constants);
                self.record_draws(cb, views, stage);
                d.cmd_end_rendering(cb);
            }
        }
    }

    /// Records the scene's draw calls of `stage` into `cb`, inside a rendering scope over `views`
    /// views whose push constants are set (it binds the sets). Every target (offscreen, window,
    /// XR) uses it.
    fn record_draws(&self, cb: vk::CommandBuffer, views: u32, stage: Stage) {
        let d = &self.device.device;
        // SAFETY: `cb` is recording inside a rendering scope with this renderer's pipeline layout
        // and push constants; the pipelines, sets and buffers are live.
        unsafe {
            // One instanced draw per list and kind, the vertices made in the shaders: 6 per tile,
            // line and glyph quad, 36 per cube. Glyphs of both lists last: they blend over the rest.
            let p = &self.pipelines;
            let pipelines = [p.tiles(views), p.cubes(views), p.lines(views), p.glyphs(views)];
            let vertices = [6, 36, 6, 6];
            let opaque = LISTS
                .iter()
                .flat_map(|&l| [Kind::Tiles, Kind::Cubes, Kind::Lines].map(|k| (l, k)))
                .filter(|_| stage != Stage::Overlay);
            let glyphs = LISTS
                .iter()
                .map(|&l| (l, Kind::Glyphs))
                .filter(|_| stage != Stage::Opaque);
            let edges = match stage {
                Stage::All => Some(DrawPart::All),
                Stage::Overlay => Some(DrawPart::Highlight),
                Stage::Opaque => None,
            };
            let mut bound = None;
            // The bundled edges between the opaque kinds and the glyphs: they blend additively
            // over the first and are tested against their depth.
            for item in opaque.map(Some).chain([None]).chain(glyphs.map(Some)) {
                let Some((list, kind)) = item else {
                    if let Some(part) = edges
                        && self.bundle.record_draw(&self.device, cb, views, part)
                    {
                        // It bound its own set.
                        bound = None;
                    }
                    continue;
                };
                let instances = self.counts[list as usize][kind as usize];
                if instances == 0 {
                    continue;
                }
                if bound != Some(list) {
                    d.cmd_bind_descriptor_sets(
                        cb,
                        vk::PipelineBindPoint::GRAPHICS,
                        p.layout,
                        0,
                        &[self.descriptor_sets[list as usize]],
                        &[],
                    );
                    bound = Some(list);
                }
                d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, pipelines[kind as usize]);
                d.cmd_draw(cb, vertices[kind as usize], instances, 0, 0);
            }
        }
    }
}

/// What a scene rendering scope draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Everything: the opaque kinds, the bundled edges as ribbons with the highlight, the glyphs.
    All,
    /// The opaque kinds (tiles, cubes, lines of both lists), before the edge pass.
    Opaque,
    /// The highlighted edges and the glyphs, after the edge pass.
    Overlay,
}

/// 1 camera: mono; 2: left and right eye in one multiview pass.
fn view_count(views: &[Camera]) -> Result<u32> {
    match views.len() {
        1 | 2 => Ok(views.len() as u32),
        n => Err(GfxError::Invalid(format!("{n} views (1 or 2 are supported)"))),
    }
}

/// The push constants of a frame: the clip_from_world matrix of each view (the first again for
/// the second slot of a mono frame).
fn push_constants(views: &[Camera], extent: vk::Extent2D) -> Vec<u8> {
    let aspect = extent.width as f32 / extent.height as f32;
    let mut clip_from_world = [[0f32; 16]; 2];
    for (m, cam) in clip_from_world.iter_mut().zip(views.iter().cycle()) {
        *m = cam.clip_from_world(aspect).to_cols_array();
    }
    bytemuck::cast_slice(&clip_from_world).to_vec()
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
            for b in self.instances.iter_mut().flatten().chain([&mut self.values]) {
                if let Some(mut b) = b.take() {
                    b.destroy(device, &mut self.allocator);
                }
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
            d.destroy_fence(self.fence, None);
            d.destroy_command_pool(self.command_pool, None);
            d.destroy_descriptor_pool(self.descriptor_pool, None);
            self.pipelines.destroy(device);
            ManuallyDrop::drop(&mut self.allocator);
        }
    }
}

/// Records the copy of both layers of `src` (TRANSFER_SRC_OPTIMAL) into `dst`
/// (TRANSFER_DST_OPTIMAL), images of the same `extent`: the target into an XR swapchain image.
///
/// # Safety
/// `cb` is recording outside a render pass; both images have two layers of `aspect`, are in those
/// layouts and stay alive until the submission has run.
unsafe fn copy_layers(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    (src, dst): (vk::Image, vk::Image),
    aspect: vk::ImageAspectFlags,
    extent: vk::Extent2D,
) {
    let layers = vk::ImageSubresourceLayers::default().aspect_mask(aspect).layer_count(2);
    let region = vk::ImageCopy::default()
        .src_subresource(layers)
        .dst_subresource(layers)
        .extent(extent.into());
    // SAFETY: per the function's contract.
    unsafe {
        d.cmd_copy_image(
            cb,
            src,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            dst,
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            &[region],
        );
    }
}
