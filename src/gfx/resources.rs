//! Buffers and images with their gpu-allocator memory. Parts, not owners: the owner calls
//! `destroy` before the allocator and device go away.

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::{Allocation, AllocationCreateDesc, AllocationScheme, Allocator};

use super::device::Device;
use super::{GfxError, Result, VkContext};

/// A buffer and its memory. Host-visible buffers (CpuToGpu, GpuToCpu) stay mapped; gpu-allocator
/// only hands out HOST_COHERENT memory for those, so no flush or invalidate is needed.
pub struct Buffer {
    pub handle: vk::Buffer,
    pub size: vk::DeviceSize,
    allocation: Option<Allocation>,
}

impl Buffer {
    pub fn new(
        device: &Device,
        allocator: &mut Allocator,
        name: &str,
        size: vk::DeviceSize,
        usage: vk::BufferUsageFlags,
        location: MemoryLocation,
    ) -> Result<Buffer> {
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: valid create info on a live device.
        let handle = unsafe { device.device.create_buffer(&info, None) }.vk("create buffer")?;
        device.name_object(handle, name);
        let mut buffer = Buffer {
            handle,
            size,
            allocation: None,
        };
        let made = (|| {
            // SAFETY: `handle` is a live buffer of this device.
            let requirements = unsafe { device.device.get_buffer_memory_requirements(handle) };
            let a = allocator
                .allocate(&AllocationCreateDesc {
                    name,
                    requirements,
                    location,
                    linear: true,
                    allocation_scheme: AllocationScheme::GpuAllocatorManaged,
                })
                .map_err(|source| GfxError::Alloc {
                    what: name.to_owned(),
                    source,
                })?;
            // SAFETY: the allocation satisfies the buffer's requirements and is unused.
            let bound = unsafe { device.device.bind_buffer_memory(handle, a.memory(), a.offset()) };
            buffer.allocation = Some(a);
            bound.vk("bind buffer memory")
        })();
        match made {
            Ok(()) => Ok(buffer),
            Err(e) => {
                // SAFETY: the buffer was never used.
                unsafe { buffer.destroy(device, allocator) };
                Err(e)
            }
        }
    }

    /// The mapped bytes of a host-visible buffer.
    pub fn mapped(&self) -> Result<&[u8]> {
        self.allocation
            .as_ref()
            .and_then(Allocation::mapped_slice)
            .ok_or_else(|| GfxError::Invalid("buffer is not host-visible".into()))
    }

    /// Copies `data` to the start of a host-visible buffer.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_at(0, data)
    }

    /// Copies `data` into a host-visible buffer from byte `offset` on.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let size = self.size;
        let dst = self
            .allocation
            .as_mut()
            .and_then(Allocation::mapped_slice_mut)
            .ok_or_else(|| GfxError::Invalid("buffer is not host-visible".into()))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        dst.get_mut(start..start.saturating_add(data.len()))
            .ok_or_else(|| {
                GfxError::Invalid(format!(
                    "{} bytes at {offset} do not fit a {size}-byte buffer",
                    data.len()
                ))
            })?
            .copy_from_slice(data);
        Ok(())
    }

    /// # Safety
    /// The GPU must be done with the buffer; `device` and `allocator` must be the ones it was
    /// made with.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        // SAFETY: per the contract.
        unsafe { device.device.destroy_buffer(self.handle, None) };
        if let Some(a) = self.allocation.take()
            && let Err(e) = allocator.free(a)
        {
            tracing::error!("freeing buffer memory: {e}");
        }
    }
}

/// A 2-D (array) image in device memory with one view over all its layers.
pub struct Image {
    pub handle: vk::Image,
    pub view: vk::ImageView,
    allocation: Option<Allocation>,
}

impl Image {
    pub fn new(
        device: &Device,
        allocator: &mut Allocator,
        name: &str,
        extent: vk::Extent2D,
        layers: u32,
        format: vk::Format,
        usage: vk::ImageUsageFlags,
    ) -> Result<Image> {
        let aspect = aspect_of(format);
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(extent.into())
            .mip_levels(1)
            .array_layers(layers)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        // SAFETY: valid create info on a live device.
        let handle = unsafe { device.device.create_image(&info, None) }.vk("create image")?;
        device.name_object(handle, name);
        let mut image = Image {
            handle,
            view: vk::ImageView::null(),
            allocation: None,
        };
        let made = (|| {
            // SAFETY: `handle` is a live image of this device.
            let requirements = unsafe { device.device.get_image_memory_requirements(handle) };
            let a = allocator
                .allocate(&AllocationCreateDesc {
                    name,
                    requirements,
                    location: MemoryLocation::GpuOnly,
                    linear: false,
                    allocation_scheme: AllocationScheme::GpuAllocatorManaged,
                })
                .map_err(|source| GfxError::Alloc {
                    what: name.to_owned(),
                    source,
                })?;
            // SAFETY: the allocation satisfies the image's requirements.
            let bound = unsafe { device.device.bind_image_memory(handle, a.memory(), a.offset()) };
            image.allocation = Some(a);
            bound.vk("bind image memory")?;
            let view_info = vk::ImageViewCreateInfo::default()
                .image(handle)
                .view_type(vk::ImageViewType::TYPE_2D_ARRAY)
                .format(format)
                .subresource_range(full_range(aspect, layers));
            // SAFETY: the image is bound to memory and the view matches it.
            image.view = unsafe { device.device.create_image_view(&view_info, None) }.vk("create image view")?;
            device.name_object(image.view, &format!("{name} view"));
            Ok(())
        })();
        match made {
            Ok(()) => Ok(image),
            Err(e) => {
                // SAFETY: the image was never used.
                unsafe { image.destroy(device, allocator) };
                Err(e)
            }
        }
    }

    /// # Safety
    /// The GPU must be done with the image; `device` and `allocator` must be the ones it was made
    /// with.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        // SAFETY: per the contract; destroying a null view is a no-op.
        unsafe {
            device.device.destroy_image_view(self.view, None);
            device.device.destroy_image(self.handle, None);
        }
        if let Some(a) = self.allocation.take()
            && let Err(e) = allocator.free(a)
        {
            tracing::error!("freeing image memory: {e}");
        }
    }
}

/// The aspect of an image of `format`: depth for the depth formats, else color.
pub fn aspect_of(format: vk::Format) -> vk::ImageAspectFlags {
    match format {
        vk::Format::D16_UNORM | vk::Format::D32_SFLOAT | vk::Format::X8_D24_UNORM_PACK32 => vk::ImageAspectFlags::DEPTH,
        _ => vk::ImageAspectFlags::COLOR,
    }
}

/// All mip levels and `layers` array layers of an image aspect.
pub fn full_range(aspect: vk::ImageAspectFlags, layers: u32) -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange::default()
        .aspect_mask(aspect)
        .base_mip_level(0)
        .level_count(1)
        .base_array_layer(0)
        .layer_count(layers)
}

/// A barrier on `range` of `image`: work in `src` (stage, access) before work in `dst`, with the
/// layout change `layouts` (old, new).
pub fn image_barrier(
    image: vk::Image,
    range: vk::ImageSubresourceRange,
    src: (vk::PipelineStageFlags2, vk::AccessFlags2),
    dst: (vk::PipelineStageFlags2, vk::AccessFlags2),
    layouts: (vk::ImageLayout, vk::ImageLayout),
) -> vk::ImageMemoryBarrier2<'static> {
    vk::ImageMemoryBarrier2::default()
        .src_stage_mask(src.0)
        .src_access_mask(src.1)
        .dst_stage_mask(dst.0)
        .dst_access_mask(dst.1)
        .old_layout(layouts.0)
        .new_layout(layouts.1)
        .image(image)
        .subresource_range(range)
}
