//! The bundler's GPU resources: descriptor set and pipelines made once, and the buffers grown
//! to fit the edges (and the ribbon's index buffer for the drawn level of detail).

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use crate::gfx::device::Device;
use crate::gfx::pipeline::{Blend, SCENE_PASS, ShaderModules, compute_pipeline, graphics_pipeline};
use crate::gfx::resources::Buffer;
use crate::gfx::{GfxError, Result, VkContext};

use super::{
    B_CURVES, B_HIGHLIGHT, B_PARAMS, B_POINTS, BINDINGS, BundleStyle, Bundler, GRID, Pass, SEGMENTS, VERTEX_BUDGET,
    indices_per_edge, vertices_per_edge,
};

impl Bundler {
    /// Builds the layouts, pipelines and empty buffers.
    pub fn init(&mut self, device: &Device, allocator: &mut Allocator) -> Result<()> {
        let d = &device.device;
        // SAFETY: the physical device belongs to this instance.
        self.max_range = u64::from(unsafe {
            device
                .instance
                .get_physical_device_properties(device.physical)
                .limits
                .max_storage_buffer_range
        });
        // FRAGMENT: the edge pass's composite reads the params.
        let stages = vk::ShaderStageFlags::COMPUTE | vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
        let bindings: Vec<_> = (0..BINDINGS)
            .map(|b| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(stages)
            })
            .collect();
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: valid create infos on a live device (every call in this function).
        self.set_layout = unsafe { d.create_descriptor_set_layout(&info, None) }.vk("create bundle set layout")?;
        device.name_object(self.set_layout, "bundle set layout");
        let set_layouts = [self.set_layout];
        let layout = |stage: vk::ShaderStageFlags, push_bytes: u32, name: &str| -> Result<vk::PipelineLayout> {
            let push = [vk::PushConstantRange::default().stage_flags(stage).size(push_bytes)];
            let info = vk::PipelineLayoutCreateInfo::default()
                .set_layouts(&set_layouts)
                .push_constant_ranges(&push);
            // SAFETY: as above.
            let layout = unsafe { d.create_pipeline_layout(&info, None) }.vk("create bundle pipeline layout")?;
            device.name_object(layout, name);
            Ok(layout)
        };
        self.compute_layout = layout(
            vk::ShaderStageFlags::COMPUTE,
            size_of::<Pass>() as u32,
            "bundle compute layout",
        )?;
        // The same push constants as the scene's pipelines (clip_from_world[2]), so they stay
        // valid across the switch between the two layouts.
        self.draw_layout = layout(
            vk::ShaderStageFlags::VERTEX,
            crate::gfx::pipeline::PUSH_CONSTANT_BYTES,
            "bundle draw layout",
        )?;
        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(BINDINGS)];
        let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
        // SAFETY: as above.
        self.pool = unsafe { d.create_descriptor_pool(&info, None) }.vk("create bundle descriptor pool")?;
        device.name_object(self.pool, "bundle descriptor pool");
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.pool)
            .set_layouts(&set_layouts);
        // SAFETY: as above.
        self.set = unsafe { d.allocate_descriptor_sets(&info) }.vk("allocate bundle descriptor set")?[0];
        device.name_object(self.set, "bundle descriptor set");
        self.build_pipelines(device)?;
        for b in 0..BINDINGS {
            self.ensure(device, allocator, b, 256)?;
        }
        self.segments = SEGMENTS;
        self.vertex_budget = VERTEX_BUDGET;
        self.write_params(&BundleStyle::default())
    }

    /// Makes the index buffer hold at least `edges` edges of `segments` segments. Only between
    /// frames: nothing may be in flight.
    pub(super) fn ensure_indices(
        &mut self,
        device: &Device,
        allocator: &mut Allocator,
        edges: u32,
        segments: u32,
    ) -> Result<()> {
        if self.indexed.1 == segments && self.indexed.0 >= edges && self.buffers.indices.is_some() {
            return Ok(());
        }
        // Room to grow (a power of two), as for the other buffers.
        let edges = edges.max(1).next_power_of_two();
        let per_edge = vertices_per_edge(segments) as u32;
        let mut indices: Vec<u32> = Vec::with_capacity((u64::from(edges) * indices_per_edge(segments)) as usize);
        for e in 0..edges {
            for j in 0..segments {
                // Point j's corners are 2j (side −1) and 2j + 1 (side +1).
                let v = e * per_edge + 2 * j;
                indices.extend([v, v + 2, v + 3, v, v + 3, v + 1]);
            }
        }
        if let Some(mut old) = self.buffers.indices.take() {
            // SAFETY: nothing is in flight (the caller's contract).
            unsafe { old.destroy(device, allocator) };
        }
        self.indexed = (0, 0);
        let mut buffer = Buffer::new(
            device,
            allocator,
            "bundle ribbon indices",
            (indices.len() * 4) as u64,
            vk::BufferUsageFlags::INDEX_BUFFER,
            MemoryLocation::CpuToGpu,
        )?;
        let written = buffer.write(bytemuck::cast_slice(&indices));
        self.buffers.indices = Some(buffer);
        written?;
        self.indexed = (edges, segments);
        Ok(())
    }

    pub(super) fn build_pipelines(&mut self, device: &Device) -> Result<()> {
        let shaders = ShaderModules::new(
            device,
            [
                (
                    "bundle_splat.comp",
                    &include_bytes!("../../../shaders/bundle_splat.comp.spv")[..],
                ),
                (
                    "bundle_blur.comp",
                    &include_bytes!("../../../shaders/bundle_blur.comp.spv")[..],
                ),
                (
                    "bundle_advect.comp",
                    &include_bytes!("../../../shaders/bundle_advect.comp.spv")[..],
                ),
                (
                    "bundle_curve.comp",
                    &include_bytes!("../../../shaders/bundle_curve.comp.spv")[..],
                ),
                ("bundle.vert", &include_bytes!("../../../shaders/bundle.vert.spv")[..]),
                ("bundle.frag", &include_bytes!("../../../shaders/bundle.frag.spv")[..]),
            ],
        )?;
        let modules = shaders.modules;
        let layout = self.compute_layout;
        self.splat = compute_pipeline(device, layout, modules[0], &[], "bundle splat")?;
        // SIDE (u32) and ALONG_Y (a 32-bit bool).
        let spec = |along_y: u32| [GRID, along_y];
        self.blur_x = compute_pipeline(device, layout, modules[1], &spec(0), "bundle blur x")?;
        self.blur_y = compute_pipeline(device, layout, modules[1], &spec(1), "bundle blur y")?;
        self.advect = compute_pipeline(device, layout, modules[2], &[], "bundle advect")?;
        // DRAW (a 32-bit bool).
        self.curve = compute_pipeline(device, layout, modules[3], &[0], "bundle curves")?;
        self.points = compute_pipeline(device, layout, modules[3], &[1], "bundle drawn points")?;
        for views in 1..=2u32 {
            let i = views as usize - 1;
            let shaders = [modules[4], modules[5]];
            self.draw[i] = self.graphics(device, shaders, views, false)?;
            self.highlight[i] = self.graphics(device, shaders, views, true)?;
        }
        Ok(())
    }

    pub(super) fn graphics(
        &self,
        device: &Device,
        [vert, frag]: [vk::ShaderModule; 2],
        views: u32,
        highlight: bool,
    ) -> Result<vk::Pipeline> {
        // HIGHLIGHT (a 32-bit bool).
        let entries = [vk::SpecializationMapEntry::default().constant_id(0).offset(0).size(4)];
        let data: [u8; 4] = bytemuck::cast(u32::from(highlight));
        let specialization = vk::SpecializationInfo::default().map_entries(&entries).data(&data);
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(vert)
                .name(c"main")
                .specialization_info(&specialization),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(frag)
                .name(c"main"),
        ];
        // Both are tested against the scene's depth; only the (opaque) highlight writes it.
        let (blend, what) = if highlight {
            (Blend::Opaque, "highlighted edges")
        } else {
            (Blend::Additive, "bundled edges")
        };
        graphics_pipeline(device, self.draw_layout, &stages, (SCENE_PASS, views), blend, what)
    }

    /// Makes binding `binding`'s buffer at least `bytes` long (a new one, bound to the set, when
    /// it is shorter). Only between frames: nothing may be in flight.
    pub(super) fn ensure(
        &mut self,
        device: &Device,
        allocator: &mut Allocator,
        binding: u32,
        bytes: u64,
    ) -> Result<()> {
        if bytes > self.max_range {
            return Err(GfxError::Invalid(format!(
                "{} would need {bytes} bytes; this device's storage buffers hold at most {}",
                Self::slot_name(binding),
                self.max_range
            )));
        }
        let slot = &mut self.buffers.slots[binding as usize];
        if slot.as_ref().is_some_and(|b| b.size >= bytes) {
            return Ok(());
        }
        let size = bytes.next_power_of_two().max(256).min(self.max_range.max(256));
        let (location, usage) = match binding {
            // Written by the host between frames.
            B_PARAMS | B_HIGHLIGHT => (MemoryLocation::CpuToGpu, vk::BufferUsageFlags::empty()),
            // Written by the curve pass, or a copy of the drawn points (for tests and tools).
            B_CURVES => (MemoryLocation::GpuToCpu, vk::BufferUsageFlags::TRANSFER_DST),
            // Read back by a copy (see Bundler::record_drawn_readback).
            B_POINTS => (MemoryLocation::GpuOnly, vk::BufferUsageFlags::TRANSFER_SRC),
            // Filled by copies from the staging buffer, or cleared by fills, and the shaders.
            _ => (MemoryLocation::GpuOnly, vk::BufferUsageFlags::TRANSFER_DST),
        };
        let buffer = Buffer::new(
            device,
            allocator,
            Self::slot_name(binding),
            size,
            vk::BufferUsageFlags::STORAGE_BUFFER | usage,
            location,
        )?;
        let infos = [vk::DescriptorBufferInfo::default()
            .buffer(buffer.handle)
            .range(vk::WHOLE_SIZE)];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(self.set)
            .dst_binding(binding)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&infos);
        // SAFETY: nothing is in flight (the caller's contract), so neither the set nor the old
        // buffer is in use.
        unsafe {
            device.device.update_descriptor_sets(&[write], &[]);
            if let Some(mut old) = slot.take() {
                old.destroy(device, allocator);
            }
        }
        *slot = Some(buffer);
        Ok(())
    }
}
