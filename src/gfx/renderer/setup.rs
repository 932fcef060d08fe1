//! The renderer's device resources, made once at start: descriptor pool and sets, command pool
//! and buffer, fence, timestamp queries, the bundler's and edge pass's parts, and the glyph atlas.

use super::{KINDS, LISTS, Renderer, Slot};
use crate::gfx::pipeline::{BINDING_ATLAS, Pipelines};
use crate::gfx::resources::{Buffer, Image, full_range};
use crate::gfx::text::Atlas;
use crate::gfx::{Result, VkContext};
use ash::vk;
use gpu_allocator::MemoryLocation;

impl Renderer {
    pub(super) fn init(&mut self) -> Result<()> {
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
    pub(super) fn upload_atlas(&mut self) -> Result<()> {
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
}
