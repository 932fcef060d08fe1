//! The offscreen render target: a color and a depth image with one layer per view, and the
//! host-visible buffer the color is read back through.

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use super::device::Device;
use super::resources::{Buffer, Image, aspect_of, full_range};
use super::{COLOR_FORMAT, DEPTH_FORMAT, Result, VkContext};

pub struct Target {
    pub extent: vk::Extent2D,
    pub views: u32,
    pub color: Image,
    pub depth: Image,
    /// Tightly packed RGBA8 rows, view after view.
    pub readback: Buffer,
    /// One-layer views of the color and depth, per view: for drawing one layer at a time
    /// (lavapipe's stereo, the edge pass's composite).
    pub layers: Vec<[vk::ImageView; 2]>,
}

impl Target {
    pub fn new(device: &Device, allocator: &mut Allocator, extent: vk::Extent2D, views: u32) -> Result<Target> {
        let mut color = Image::new(
            device,
            allocator,
            "offscreen color",
            extent,
            views,
            COLOR_FORMAT,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        )?;
        let depth = Image::new(
            device,
            allocator,
            "offscreen depth",
            extent,
            views,
            DEPTH_FORMAT,
            // TRANSFER_SRC: copied into the XR depth swapchain (XR_KHR_composition_layer_depth);
            // SAMPLED: read by the low-resolution edge pass (src/gfx/edge_pass.rs).
            vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT
                | vk::ImageUsageFlags::TRANSFER_SRC
                | vk::ImageUsageFlags::SAMPLED,
        );
        let mut depth = match depth {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: never used.
                unsafe { color.destroy(device, allocator) };
                return Err(e);
            }
        };
        let bytes = u64::from(extent.width) * u64::from(extent.height) * 4 * u64::from(views);
        let usage = vk::BufferUsageFlags::TRANSFER_DST;
        match Buffer::new(device, allocator, "readback", bytes, usage, MemoryLocation::GpuToCpu) {
            Ok(readback) => {
                let mut target = Target {
                    extent,
                    views,
                    color,
                    depth,
                    readback,
                    layers: Vec::new(),
                };
                match target.make_layer_views(device) {
                    Ok(()) => Ok(target),
                    Err(e) => {
                        // SAFETY: never used.
                        unsafe { target.destroy(device, allocator) };
                        Err(e)
                    }
                }
            }
            Err(e) => {
                // SAFETY: never used.
                unsafe {
                    color.destroy(device, allocator);
                    depth.destroy(device, allocator);
                }
                Err(e)
            }
        }
    }

    /// The whole target, as a render area or scissor.
    pub fn area(&self) -> vk::Rect2D {
        vk::Rect2D {
            offset: vk::Offset2D::default(),
            extent: self.extent,
        }
    }

    /// The viewport covering the whole target, depth 0 to 1.
    pub fn viewport(&self) -> vk::Viewport {
        vk::Viewport {
            x: 0.0,
            y: 0.0,
            width: self.extent.width as f32,
            height: self.extent.height as f32,
            min_depth: 0.0,
            max_depth: 1.0,
        }
    }

    fn make_layer_views(&mut self, device: &Device) -> Result<()> {
        for layer in 0..self.views {
            let mut views = [vk::ImageView::null(); 2];
            let images = [
                (self.color.handle, COLOR_FORMAT, "offscreen color layer"),
                (self.depth.handle, DEPTH_FORMAT, "offscreen depth layer"),
            ];
            for (view, (image, format, name)) in views.iter_mut().zip(images) {
                let range = vk::ImageSubresourceRange {
                    base_array_layer: layer,
                    ..full_range(aspect_of(format), 1)
                };
                let info = vk::ImageViewCreateInfo::default()
                    .image(image)
                    .view_type(vk::ImageViewType::TYPE_2D)
                    .format(format)
                    .subresource_range(range);
                // SAFETY: a live image of this device with that layer and format.
                let made = unsafe { device.device.create_image_view(&info, None) }.vk("create image view");
                match made {
                    Ok(v) => {
                        *view = v;
                        device.name_object(v, &format!("{name} {layer}"));
                    }
                    Err(e) => {
                        self.layers.push(views);
                        return Err(e);
                    }
                }
            }
            self.layers.push(views);
        }
        Ok(())
    }

    /// # Safety
    /// The GPU must be done with the target; `device` and `allocator` must be the ones it was
    /// made with.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        // SAFETY: per the contract; null views are ignored.
        unsafe {
            for view in self.layers.drain(..).flatten() {
                device.device.destroy_image_view(view, None);
            }
            self.color.destroy(device, allocator);
            self.depth.destroy(device, allocator);
            self.readback.destroy(device, allocator);
        }
    }
}
