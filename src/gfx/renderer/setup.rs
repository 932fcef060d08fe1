//! The renderer's device resources, made once at start: descriptor and command pools (the frame
//! slots' sets, command buffers and fences are made in `slots`), timestamp queries, the bundler's
//! and edge pass's parts, and the glyph atlas.

use super::{FRAMES_IN_FLIGHT, Renderer};
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
        // Two sets (network, overlay) per frame slot.
        let sets = 2 * FRAMES_IN_FLIGHT as u32;
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(sets * 5),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(sets),
        ];
        let info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(sets)
            .pool_sizes(&sizes);
        // SAFETY: valid create infos on a live device (for every call in this function).
        self.descriptor_pool = unsafe { d.create_descriptor_pool(&info, None) }.vk("create descriptor pool")?;
        self.device.name_object(self.descriptor_pool, "scene descriptor pool");
        let info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(self.device.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: as above.
        self.command_pool = unsafe { d.create_command_pool(&info, None) }.vk("create command pool")?;
        self.device.name_object(self.command_pool, "frame command pool");
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
        // Every binding must hold a buffer, even before the first scene (made empty here).
        self.init_slots()?;
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
        let (image_handle, atlas_view) = (image.handle, image.view);
        self.atlas = Some(image);
        let mut staging = Buffer::new(
            &self.device,
            &mut self.allocator,
            "glyph atlas upload",
            atlas.pixels.len() as u64,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryLocation::CpuToGpu,
        )?;
        let range = full_range(vk::ImageAspectFlags::COLOR, 1);
        let staging_handle = staging.handle;
        let copied = staging.write(&atlas.pixels).and_then(|()| {
            self.one_shot(|r, cb| {
                let d = &r.device.device;
                // SAFETY: `cb` is recording; the image and buffer are live and owned here; the
                // submission is waited for before the staging buffer goes.
                unsafe {
                    let to_dst = [vk::ImageMemoryBarrier2::default()
                        .dst_stage_mask(vk::PipelineStageFlags2::COPY)
                        .dst_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                        .old_layout(vk::ImageLayout::UNDEFINED)
                        .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                        .image(image_handle)
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
                        staging_handle,
                        image_handle,
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
                        .image(image_handle)
                        .subresource_range(range)];
                    d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_read));
                }
            })
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
        let d = &self.device.device;
        // SAFETY: valid create info on a live device.
        self.sampler = unsafe { d.create_sampler(&info, None) }.vk("create sampler")?;
        self.device.name_object(self.sampler, "glyph atlas sampler");
        let images = [vk::DescriptorImageInfo::default()
            .sampler(self.sampler)
            .image_view(atlas_view)
            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
        let writes: Vec<vk::WriteDescriptorSet> = self
            .slots
            .iter()
            .flat_map(|slot| slot.sets)
            .map(|set| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(BINDING_ATLAS)
                    .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                    .image_info(&images)
            })
            .collect();
        // SAFETY: the sets are not in use (no submission in flight: the upload was waited for).
        unsafe { d.update_descriptor_sets(&writes, &[]) };
        Ok(())
    }
}
