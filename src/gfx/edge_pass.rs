//! The low-resolution edge pass: many bundled edges summed into a buffer `scale` times smaller
//! on each side by a compute shader, then added to the scene, one step per view.
//!
//! Why: the H100/H200 (compute GPUs with little raster hardware) draw tens of thousands of long
//! thin additive ribbons at headset resolution in many milliseconds, and drawing them as
//! triangles into a smaller image barely helps: the triangles themselves are the cost
//! (docs/performance.md). A compute shader walks each drawn segment over the pixels it crosses
//! instead (shaders/edges_raster.comp: one invocation per segment and view, the light split
//! between the two pixels nearest the line so the sum does not depend on where it falls, hidden
//! where the scene's nearest depth over the low-resolution pixel is nearer, summed with integer atomics so the order edges are walked
//! in does not matter); the composite (shaders/edges_composite.frag) reads the sums bilinearly
//! and adds them in the edges' colours. The highlighted edges and the labels are drawn after it,
//! over the light (src/gfx/renderer.rs splits the scene's rendering around this pass).
//!
//! Steps, after the scene's opaque kinds (their depth stored): the frame's matrices and sizes
//! written and the sums cleared (transfer); the scene's nearest depth at low resolution
//! (compute, shaders/edges_depth.comp); the walk (compute, testing against it); the
//! marks of the 16×16-pixel tiles that got light (compute, shaders/edges_lit.comp); then per view
//! the composite (the scene's colour loaded; a quad per tile, only those lit or next to one
//! drawn, so its cost follows the area the edges cover; no multiview: lavapipe draws every view
//! of such a multiview draw into the first layer).
//!
//! "Order-independent" holds up to the dither of the fixed-point rounding, which follows each
//! segment's index.

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use super::device::Device;
use super::pipeline::{Blend, PassFormats, ShaderModules, compute_pipeline, graphics_pipeline, groups_for};
use super::resources::{Buffer, full_range, image_barrier};
use super::target::Target;
use super::{COLOR_FORMAT, GfxError, Result, VkContext};

/// Largest scale accepted (beyond it a pixel covers too much of the view to mean anything).
pub const MAX_SCALE: u32 = 8;

/// Set 1 bindings (shaders/edges_pass.glsl, edges_raster.comp).
const BINDING_SCENE_DEPTH: u32 = 0;
const BINDING_LIGHT: u32 = 1;
const BINDING_FRAME: u32 = 2;
const BINDING_TILES: u32 = 3;
const BINDING_NEAR: u32 = 4;

/// Side of a composite tile in low-resolution pixels (TILE in shaders/edges_pass.glsl).
const TILE: u32 = 16;

/// Invocations per workgroup of the walk (edges_raster.comp's local_size_x).
const RASTER_LOCAL: u64 = 64;

/// `Frame` in shaders/edges_pass.glsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Frame {
    clip_from_world: [[f32; 16]; 2],
    low: [i32; 2],
    full: [i32; 2],
    scale: i32,
    views: i32,
    tiles: [i32; 2],
}

/// The sums and the scene layers for one target size, view count and scale.
struct Sums {
    /// The scene target's size and views they were made for.
    full: vk::Extent2D,
    views: u32,
    scale: u32,
    extent: vk::Extent2D,
    /// Two u32 per low-resolution pixel and view.
    light: Buffer,
    /// Tiles across and down, and one u32 per tile and view: lit or not.
    tiles: (u32, u32),
    lit: Buffer,
    /// One f32 per low-resolution pixel and view: the scene's nearest depth there.
    near: Buffer,
}

/// The pass's pipelines, set and buffers: a part of the renderer, null/empty until
/// [`EdgePass::init`], destroyed by [`EdgePass::destroy`].
#[derive(Default)]
pub(crate) struct EdgePass {
    sampler: vk::Sampler,
    set_layout: vk::DescriptorSetLayout,
    /// Sets 0 (the bundler's) and 1 (this pass's).
    layout: vk::PipelineLayout,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    raster: vk::Pipeline,
    /// Marks the tiles with light (shaders/edges_lit.comp).
    mark: vk::Pipeline,
    /// The low-resolution nearest depth (shaders/edges_depth.comp).
    depth: vk::Pipeline,
    composite: vk::Pipeline,
    /// The frame's matrices and sizes (written by the command buffer itself).
    frame: Option<Buffer>,
    sums: Option<Sums>,
    /// The device's largest storage buffer range (bounds the sums' size).
    max_range: u64,
}

/// Bytes of the sums for a target of `full` with `views` views at `scale`.
fn light_bytes(full: vk::Extent2D, views: u32, scale: u32) -> u64 {
    let low = low_extent(full, scale);
    u64::from(low.width) * u64::from(low.height) * u64::from(views) * 2 * 4
}

/// The low-resolution size for a target of `full` at `scale` (every full-resolution pixel
/// covered).
pub fn low_extent(full: vk::Extent2D, scale: u32) -> vk::Extent2D {
    vk::Extent2D {
        width: full.width.div_ceil(scale),
        height: full.height.div_ceil(scale),
    }
}

impl EdgePass {
    /// `bundle_set_layout`: the bundler's set layout (set 0 of the pass's pipelines).
    pub fn init(
        &mut self,
        device: &Device,
        allocator: &mut Allocator,
        bundle_set_layout: vk::DescriptorSetLayout,
    ) -> Result<()> {
        let d = &device.device;
        // SAFETY: the physical device belongs to this instance.
        self.max_range = u64::from(unsafe {
            device
                .instance
                .get_physical_device_properties(device.physical)
                .limits
                .max_storage_buffer_range
        });
        let info = vk::SamplerCreateInfo::default()
            .mag_filter(vk::Filter::NEAREST)
            .min_filter(vk::Filter::NEAREST)
            .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
            .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .max_lod(0.0);
        // SAFETY: valid create infos on a live device (every call in this function).
        self.sampler = unsafe { d.create_sampler(&info, None) }.vk("create sampler")?;
        device.name_object(self.sampler, "edge pass scene depth sampler");
        let compute = vk::ShaderStageFlags::COMPUTE;
        let (vertex, fragment) = (vk::ShaderStageFlags::VERTEX, vk::ShaderStageFlags::FRAGMENT);
        let storage = vk::DescriptorType::STORAGE_BUFFER;
        let bindings = [
            (BINDING_SCENE_DEPTH, vk::DescriptorType::COMBINED_IMAGE_SAMPLER, compute),
            (BINDING_LIGHT, storage, compute | fragment),
            (BINDING_FRAME, storage, compute | vertex | fragment),
            (BINDING_TILES, storage, compute | vertex),
            (BINDING_NEAR, storage, compute),
        ]
        .map(|(b, ty, stages)| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(b)
                .descriptor_type(ty)
                .descriptor_count(1)
                .stage_flags(stages)
        });
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: as above.
        self.set_layout = unsafe { d.create_descriptor_set_layout(&info, None) }.vk("create edge pass set layout")?;
        device.name_object(self.set_layout, "edge pass set layout");
        let set_layouts = [bundle_set_layout, self.set_layout];
        // The composite's layer.
        let push = [vk::PushConstantRange::default().stage_flags(vertex | fragment).size(4)];
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&set_layouts)
            .push_constant_ranges(&push);
        // SAFETY: as above.
        self.layout = unsafe { d.create_pipeline_layout(&info, None) }.vk("create edge pass layout")?;
        device.name_object(self.layout, "edge pass layout");
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(1),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(4),
        ];
        let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
        // SAFETY: as above.
        self.pool = unsafe { d.create_descriptor_pool(&info, None) }.vk("create edge pass descriptor pool")?;
        device.name_object(self.pool, "edge pass descriptor pool");
        let own = [self.set_layout];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.pool)
            .set_layouts(&own);
        // SAFETY: as above.
        self.set = unsafe { d.allocate_descriptor_sets(&info) }.vk("allocate edge pass descriptor set")?[0];
        device.name_object(self.set, "edge pass descriptor set");
        let frame = Buffer::new(
            device,
            allocator,
            "edge pass frame",
            size_of::<Frame>() as u64,
            vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryLocation::GpuOnly,
        )?;
        self.bind_buffer(device, BINDING_FRAME, &frame);
        self.frame = Some(frame);
        self.build_pipelines(device)
    }

    fn build_pipelines(&mut self, device: &Device) -> Result<()> {
        let shaders = ShaderModules::new(
            device,
            [
                (
                    "edges_raster.comp",
                    &include_bytes!("../../shaders/edges_raster.comp.spv")[..],
                ),
                (
                    "edges_tiles.vert",
                    &include_bytes!("../../shaders/edges_tiles.vert.spv")[..],
                ),
                (
                    "edges_composite.frag",
                    &include_bytes!("../../shaders/edges_composite.frag.spv")[..],
                ),
                (
                    "edges_lit.comp",
                    &include_bytes!("../../shaders/edges_lit.comp.spv")[..],
                ),
                (
                    "edges_depth.comp",
                    &include_bytes!("../../shaders/edges_depth.comp.spv")[..],
                ),
            ],
        )?;
        let modules = shaders.modules;
        self.raster = compute_pipeline(device, self.layout, modules[0], &[], "edge pass raster")?;
        self.mark = compute_pipeline(device, self.layout, modules[3], &[], "edge pass lit tiles")?;
        self.depth = compute_pipeline(device, self.layout, modules[4], &[], "edge pass depth")?;
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(modules[1])
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(modules[2])
                .name(c"main"),
        ];
        // Into one layer of the scene's colour (0 views: no multiview), no depth: the walk did
        // the hiding.
        let scene_color = PassFormats {
            color: COLOR_FORMAT,
            depth: None,
        };
        self.composite = graphics_pipeline(
            device,
            self.layout,
            &stages,
            (scene_color, 0),
            Blend::Additive,
            "edge pass composite",
        )?;
        Ok(())
    }

    /// The smallest scale from `scale` up to [`MAX_SCALE`] whose sums for a target of `full`
    /// with `views` views fit in one storage buffer of this device, or an error saying why none
    /// does.
    pub fn fitting_scale(&self, full: vk::Extent2D, views: u32, scale: u32) -> Result<u32> {
        (scale..=MAX_SCALE)
            .find(|&s| light_bytes(full, views, s) <= self.max_range)
            .ok_or_else(|| {
                GfxError::Invalid(format!(
                    "the edge pass for {}x{} × {views} view(s) needs {} bytes at 1/{MAX_SCALE}; this device's storage buffers hold {}",
                    full.width,
                    full.height,
                    light_bytes(full, views, MAX_SCALE),
                    self.max_range
                ))
            })
    }

    /// Whether the sums are made for `target` at `scale` ([`EdgePass::ensure`] then keeps them).
    pub fn fits(&self, target: &Target, scale: u32) -> bool {
        self.sums
            .as_ref()
            .is_some_and(|s| s.full == target.extent && s.views == target.views && s.scale == scale)
    }

    /// Makes the sums for `target` at `scale` (keeps them when they fit) and points the set at
    /// them and at the target's depth. Only between frames: nothing may be in flight.
    pub fn ensure(&mut self, device: &Device, allocator: &mut Allocator, target: &Target, scale: u32) -> Result<()> {
        if self.fits(target, scale) {
            return Ok(());
        }
        self.release(device, allocator);
        let extent = low_extent(target.extent, scale);
        let bytes = light_bytes(target.extent, target.views, scale);
        let tiles = (extent.width.div_ceil(TILE), extent.height.div_ceil(TILE));
        let per_view = |n: u64| n * u64::from(target.views) * 4;
        let buffers = [
            ("edge pass light", bytes),
            ("edge pass lit tiles", per_view(u64::from(tiles.0) * u64::from(tiles.1))),
            (
                "edge pass near depth",
                per_view(u64::from(extent.width) * u64::from(extent.height)),
            ),
        ];
        let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST;
        let mut made = Vec::with_capacity(buffers.len());
        for (name, bytes) in buffers {
            match Buffer::new(device, allocator, name, bytes, usage, MemoryLocation::GpuOnly) {
                Ok(b) => made.push(b),
                Err(e) => {
                    for mut b in made {
                        // SAFETY: never used.
                        unsafe { b.destroy(device, allocator) };
                    }
                    return Err(e);
                }
            }
        }
        let Ok([light, lit, near]) = <[Buffer; 3]>::try_from(made) else {
            unreachable!("three buffers made above")
        };
        let depth = [vk::DescriptorImageInfo::default()
            .sampler(self.sampler)
            .image_view(target.depth.view)
            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(self.set)
            .dst_binding(BINDING_SCENE_DEPTH)
            .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
            .image_info(&depth);
        // SAFETY: the set is not in use (nothing in flight); the view is live.
        unsafe { device.device.update_descriptor_sets(&[write], &[]) };
        for (binding, buffer) in [(BINDING_LIGHT, &light), (BINDING_TILES, &lit), (BINDING_NEAR, &near)] {
            self.bind_buffer(device, binding, buffer);
        }
        self.sums = Some(Sums {
            full: target.extent,
            views: target.views,
            scale,
            extent,
            light,
            tiles,
            lit,
            near,
        });
        Ok(())
    }

    /// Points the set's `binding` at the whole of `buffer`. Only while the set is not in use.
    fn bind_buffer(&self, device: &Device, binding: u32, buffer: &Buffer) {
        let info = [vk::DescriptorBufferInfo::default()
            .buffer(buffer.handle)
            .range(vk::WHOLE_SIZE)];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(self.set)
            .dst_binding(binding)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&info);
        // SAFETY: the set is not in use (the callers' contract); the buffer is live.
        unsafe { device.device.update_descriptor_sets(&[write], &[]) };
    }

    /// Frees the sums (the target they were made for is going away, or another scale is
    /// wanted). Only between frames.
    pub fn release(&mut self, device: &Device, allocator: &mut Allocator) {
        if let Some(mut sums) = self.sums.take() {
            // SAFETY: nothing is in flight (the contract of the callers).
            unsafe {
                sums.light.destroy(device, allocator);
                sums.lit.destroy(device, allocator);
                sums.near.destroy(device, allocator);
            }
        }
    }

    /// Records the pass after the scene's opaque kinds: the scene's depth (stored, in
    /// DEPTH_ATTACHMENT_OPTIMAL) is read and left in that layout for more depth tests, the
    /// scene's colour (in COLOR_ATTACHMENT_OPTIMAL) gets the edges' light added, visible to
    /// attachment reads and writes after it. `bundle_set` is the bundler's set
    /// (its drawn points current), with `segments` drawn segments per edge of `edges`;
    /// `clip_from_world` the views' matrices (the scene pass's push constants).
    ///
    /// # Safety
    /// `cb` is recording outside a rendering scope; [`EdgePass::ensure`] was called for `target`
    /// since it was made; the scene pass that wrote `target` was recorded before.
    // Long (~220 lines) on purpose: five dispatches and the composite with the barriers between
    // them, in the order they run, so the synchronization can be checked reading top to bottom.
    pub unsafe fn record(
        &self,
        device: &Device,
        cb: vk::CommandBuffer,
        target: &Target,
        bundle_set: vk::DescriptorSet,
        (edges, segments): (u32, u32),
        clip_from_world: &[u8],
    ) -> Result<()> {
        let (Some(sums), Some(frame_buffer)) = (&self.sums, &self.frame) else {
            return Err(GfxError::Invalid(
                "edge pass recorded before its buffers were made".into(),
            ));
        };
        let mut frame = Frame {
            clip_from_world: [[0.0; 16]; 2],
            low: [sums.extent.width as i32, sums.extent.height as i32],
            full: [target.extent.width as i32, target.extent.height as i32],
            scale: sums.scale as i32,
            views: target.views as i32,
            tiles: [sums.tiles.0 as i32, sums.tiles.1 as i32],
        };
        let matrices: &mut [u8] = bytemuck::cast_slice_mut(&mut frame.clip_from_world);
        let n = clip_from_world.len().min(matrices.len());
        matrices[..n].copy_from_slice(&clip_from_world[..n]);
        let d = &device.device;
        let views = target.views;
        let color_range = full_range(vk::ImageAspectFlags::COLOR, views);
        let depth_range = full_range(vk::ImageAspectFlags::DEPTH, views);
        use vk::{AccessFlags2 as A, ImageLayout as L, PipelineStageFlags2 as S};
        let buffer_barrier = |buffer: vk::Buffer, src: (S, A), dst: (S, A)| {
            vk::BufferMemoryBarrier2::default()
                .src_stage_mask(src.0)
                .src_access_mask(src.1)
                .dst_stage_mask(dst.0)
                .dst_access_mask(dst.1)
                .buffer(buffer)
                .size(vk::WHOLE_SIZE)
        };
        let sets = [bundle_set, self.set];
        let (full_area, full_viewport) = (target.area(), target.viewport());
        // SAFETY: per the function's contract; every handle is live and owned here or by the
        // renderer.
        unsafe {
            // The previous frame's composite read both before its fence; nothing else uses them.
            let to_transfer = [
                buffer_barrier(
                    frame_buffer.handle,
                    (S::FRAGMENT_SHADER | S::COMPUTE_SHADER, A::NONE),
                    (S::COPY | S::CLEAR, A::TRANSFER_WRITE),
                ),
                // (Fills count as copies for some: both stages.)
                buffer_barrier(
                    sums.light.handle,
                    (S::FRAGMENT_SHADER, A::NONE),
                    (S::COPY | S::CLEAR, A::TRANSFER_WRITE),
                ),
            ];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_transfer));
            d.cmd_update_buffer(cb, frame_buffer.handle, 0, bytemuck::bytes_of(&frame));
            d.cmd_fill_buffer(cb, sums.light.handle, 0, vk::WHOLE_SIZE, 0);
            let to_compute = [
                // (vkCmdUpdateBuffer counts as a clear for some, a copy for others: both stages.)
                buffer_barrier(
                    frame_buffer.handle,
                    (S::COPY | S::CLEAR, A::TRANSFER_WRITE),
                    (
                        S::COMPUTE_SHADER | S::VERTEX_SHADER | S::FRAGMENT_SHADER,
                        A::SHADER_STORAGE_READ,
                    ),
                ),
                // The previous frame's composite read the marks before its fence (and its walk the
                // depths).
                buffer_barrier(
                    sums.lit.handle,
                    (S::VERTEX_SHADER, A::NONE),
                    (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                ),
                buffer_barrier(
                    sums.near.handle,
                    (S::COMPUTE_SHADER, A::NONE),
                    (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                ),
                buffer_barrier(
                    sums.light.handle,
                    (S::COPY | S::CLEAR, A::TRANSFER_WRITE),
                    (S::COMPUTE_SHADER, A::SHADER_STORAGE_READ | A::SHADER_STORAGE_WRITE),
                ),
            ];
            let depth_to_read = [image_barrier(
                target.depth.handle,
                depth_range,
                (S::LATE_FRAGMENT_TESTS, A::DEPTH_STENCIL_ATTACHMENT_WRITE),
                (S::COMPUTE_SHADER, A::SHADER_SAMPLED_READ),
                (L::DEPTH_ATTACHMENT_OPTIMAL, L::SHADER_READ_ONLY_OPTIMAL),
            )];
            // The bundler's compute work this frame (the drawn points) before the walk reads it.
            let bundled = [vk::MemoryBarrier2::default()
                .src_stage_mask(S::COMPUTE_SHADER)
                .src_access_mask(A::SHADER_STORAGE_WRITE)
                .dst_stage_mask(S::COMPUTE_SHADER | S::FRAGMENT_SHADER)
                .dst_access_mask(A::SHADER_STORAGE_READ)];
            d.cmd_pipeline_barrier2(
                cb,
                &vk::DependencyInfo::default()
                    .memory_barriers(&bundled)
                    .buffer_memory_barriers(&to_compute)
                    .image_memory_barriers(&depth_to_read),
            );

            d.cmd_bind_descriptor_sets(cb, vk::PipelineBindPoint::COMPUTE, self.layout, 0, &sets, &[]);
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, self.depth);
            d.cmd_dispatch(cb, sums.extent.width.div_ceil(8), sums.extent.height.div_ceil(8), views);
            let to_walk = [buffer_barrier(
                sums.near.handle,
                (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                (S::COMPUTE_SHADER, A::SHADER_STORAGE_READ),
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_walk));
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, self.raster);
            let (x, y) = groups_for(u64::from(edges) * u64::from(segments), RASTER_LOCAL);
            d.cmd_dispatch(cb, x, y, views);
            let to_mark = [buffer_barrier(
                sums.light.handle,
                (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                (S::COMPUTE_SHADER, A::SHADER_STORAGE_READ),
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_mark));
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, self.mark);
            d.cmd_dispatch(cb, sums.tiles.0, sums.tiles.1, views);

            let to_composite = [
                buffer_barrier(
                    sums.light.handle,
                    (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                    (S::FRAGMENT_SHADER, A::SHADER_STORAGE_READ),
                ),
                buffer_barrier(
                    sums.lit.handle,
                    (S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE),
                    (S::VERTEX_SHADER, A::SHADER_STORAGE_READ),
                ),
            ];
            let images = [
                // Back to where the scene pass left it: the rest of the scene is tested against it,
                // the XR depth copy reads it from there.
                image_barrier(
                    target.depth.handle,
                    depth_range,
                    (S::COMPUTE_SHADER, A::SHADER_SAMPLED_READ),
                    (
                        S::EARLY_FRAGMENT_TESTS | S::LATE_FRAGMENT_TESTS,
                        A::DEPTH_STENCIL_ATTACHMENT_READ | A::DEPTH_STENCIL_ATTACHMENT_WRITE,
                    ),
                    (L::SHADER_READ_ONLY_OPTIMAL, L::DEPTH_ATTACHMENT_OPTIMAL),
                ),
                // The scene pass's colour writes before the composite's blending.
                image_barrier(
                    target.color.handle,
                    color_range,
                    (S::COLOR_ATTACHMENT_OUTPUT, A::COLOR_ATTACHMENT_WRITE),
                    (
                        S::COLOR_ATTACHMENT_OUTPUT,
                        A::COLOR_ATTACHMENT_READ | A::COLOR_ATTACHMENT_WRITE,
                    ),
                    (L::COLOR_ATTACHMENT_OPTIMAL, L::COLOR_ATTACHMENT_OPTIMAL),
                ),
            ];
            d.cmd_pipeline_barrier2(
                cb,
                &vk::DependencyInfo::default()
                    .buffer_memory_barriers(&to_composite)
                    .image_memory_barriers(&images),
            );

            for (layer, [view, _]) in target.layers.iter().enumerate() {
                let color = [vk::RenderingAttachmentInfo::default()
                    .image_view(*view)
                    .image_layout(L::COLOR_ATTACHMENT_OPTIMAL)
                    .load_op(vk::AttachmentLoadOp::LOAD)
                    .store_op(vk::AttachmentStoreOp::STORE)];
                let rendering = vk::RenderingInfo::default()
                    .render_area(full_area)
                    .layer_count(1)
                    .color_attachments(&color);
                d.cmd_begin_rendering(cb, &rendering);
                d.cmd_set_viewport(cb, 0, &[full_viewport]);
                d.cmd_set_scissor(cb, 0, &[full_area]);
                d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, self.composite);
                d.cmd_bind_descriptor_sets(cb, vk::PipelineBindPoint::GRAPHICS, self.layout, 0, &sets, &[]);
                let layer = layer as i32;
                let stages = vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
                d.cmd_push_constants(cb, self.layout, stages, 0, bytemuck::bytes_of(&layer));
                // One quad per tile (see shaders/edges_tiles.vert).
                d.cmd_draw(cb, 6, sums.tiles.0 * sums.tiles.1, 0, 0);
                d.cmd_end_rendering(cb);
            }
            // The light added before the rest of the scene blends over it.
            let added = [image_barrier(
                target.color.handle,
                color_range,
                (S::COLOR_ATTACHMENT_OUTPUT, A::COLOR_ATTACHMENT_WRITE),
                (
                    S::COLOR_ATTACHMENT_OUTPUT,
                    A::COLOR_ATTACHMENT_READ | A::COLOR_ATTACHMENT_WRITE,
                ),
                (L::COLOR_ATTACHMENT_OPTIMAL, L::COLOR_ATTACHMENT_OPTIMAL),
            )];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&added));
        }
        Ok(())
    }

    /// # Safety
    /// The GPU must be done with everything here; `device` and `allocator` are the ones used.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        self.release(device, allocator);
        let d = &device.device;
        // SAFETY: per the contract; null handles are ignored.
        unsafe {
            if let Some(mut frame) = self.frame.take() {
                frame.destroy(device, allocator);
            }
            d.destroy_pipeline(self.raster, None);
            d.destroy_pipeline(self.mark, None);
            d.destroy_pipeline(self.depth, None);
            d.destroy_pipeline(self.composite, None);
            d.destroy_descriptor_pool(self.pool, None);
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
            d.destroy_sampler(self.sampler, None);
        }
        *self = EdgePass::default();
    }
}
