//! The offscreen render target: a color and a depth image with one layer per view, and the
//! host-visible buffer the color is read back through.

use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use super::device::Device;
use super::resources::{Buffer, Image};
use super::{COLOR_FORMAT, DEPTH_FORMAT, Result};

pub struct Target {
    pub extent: vk::Extent2D,
    pub views: u32,
    pub color: Image,
    pub depth: Image,
    /// Tightly packed RGBA8 rows, view after view.
    pub readback: Buffer,
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
            Ok(readback) => Ok(Target {
                extent,
                views,
                color,
                depth,
                readback,
            }),
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

    /// # Safety
    /// The GPU must be done with the target; `device` and `allocator` must be the ones it was
    /// made with.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        // SAFETY: per the contract.
        unsafe {
            self.color.destroy(device, allocator);
            self.depth.destroy(device, allocator);
            self.readback.destroy(device, allocator);
        }
    }
}
