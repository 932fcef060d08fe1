//! The swapchains the frames go to: one 2-layer color swapchain (layer 0 = left eye, 1 = right)
//! the renderer's multiview pass is copied into, and a depth one for
//! XR_KHR_composition_layer_depth when the runtime offers it; and the projection layer that
//! submits them.

use std::ffi::c_void;

use ash::vk;
use ash::vk::Handle;
use openxr as xr;

use super::{XrContext, XrError};
use crate::gfx::{COLOR_FORMAT, Device, EyeView};

pub(super) struct Swapchains {
    // Depth first: the swapchains are destroyed in this order.
    depth: Option<xr::Swapchain<xr::Vulkan>>,
    color: xr::Swapchain<xr::Vulkan>,
    depth_images: Vec<vk::Image>,
    images: Vec<vk::Image>,
    /// Each eye's size.
    pub extent: vk::Extent2D,
}

/// One frame's acquired images (released by [`Swapchains::release`]).
pub(super) struct Acquired {
    pub color: vk::Image,
    pub depth: Option<vk::Image>,
}

impl Swapchains {
    pub fn new(
        instance: &xr::Instance,
        session: &xr::Session<xr::Vulkan>,
        device: &Device,
        extent: vk::Extent2D,
    ) -> Result<Swapchains, XrError> {
        let formats = session.enumerate_swapchain_formats().xr("list swapchain formats")?;
        if !formats.contains(&(COLOR_FORMAT.as_raw() as u32)) {
            return Err(XrError::MissingFeature(format!(
                "an R8G8B8A8_SRGB swapchain format (offered: {formats:?})"
            )));
        }
        let create = |usage_flags, format: vk::Format, what| {
            session
                .create_swapchain(&xr::SwapchainCreateInfo {
                    create_flags: xr::SwapchainCreateFlags::EMPTY,
                    usage_flags,
                    format: format.as_raw() as u32,
                    sample_count: 1,
                    width: extent.width,
                    height: extent.height,
                    face_count: 1,
                    array_size: 2,
                    mip_count: 1,
                })
                .xr(what)
        };
        let color = create(
            xr::SwapchainUsageFlags::COLOR_ATTACHMENT
                | xr::SwapchainUsageFlags::TRANSFER_DST
                | xr::SwapchainUsageFlags::TRANSFER_SRC,
            COLOR_FORMAT,
            "create the swapchain",
        )?;
        // Depth for XR_KHR_composition_layer_depth, when the runtime offers it and the format.
        let depth_format = vk::Format::D32_SFLOAT;
        let depth = if instance.exts().khr_composition_layer_depth.is_some()
            && formats.contains(&(depth_format.as_raw() as u32))
        {
            Some(create(
                xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT | xr::SwapchainUsageFlags::TRANSFER_DST,
                depth_format,
                "create the depth swapchain",
            )?)
        } else {
            None
        };
        let depth_images: Vec<vk::Image> = match &depth {
            Some(d) => d
                .enumerate_images()
                .xr("list depth swapchain images")?
                .into_iter()
                .map(vk::Image::from_raw)
                .collect(),
            None => Vec::new(),
        };
        for (i, &image) in depth_images.iter().enumerate() {
            device.name_object(image, &format!("XR depth swapchain image {i}"));
        }
        let images: Vec<vk::Image> = color
            .enumerate_images()
            .xr("list swapchain images")?
            .into_iter()
            .map(vk::Image::from_raw)
            .collect();
        for (i, &image) in images.iter().enumerate() {
            device.name_object(image, &format!("XR swapchain image {i}"));
        }
        Ok(Swapchains {
            depth,
            color,
            depth_images,
            images,
            extent,
        })
    }

    pub fn has_depth(&self) -> bool {
        self.depth.is_some()
    }

    /// Acquires and waits for this frame's images.
    pub fn acquire(&mut self) -> Result<Acquired, XrError> {
        let index = self.color.acquire_image().xr("acquire a swapchain image")?;
        self.color
            .wait_image(xr::Duration::INFINITE)
            .xr("wait for the swapchain image")?;
        let depth = match self.depth.as_mut() {
            Some(d) => {
                let i = d.acquire_image().xr("acquire a depth swapchain image")?;
                d.wait_image(xr::Duration::INFINITE)
                    .xr("wait for the depth swapchain image")?;
                Some(
                    *self
                        .depth_images
                        .get(i as usize)
                        .ok_or_else(|| XrError::MissingFeature(format!("depth swapchain image {i}")))?,
                )
            }
            None => None,
        };
        let color = *self
            .images
            .get(index as usize)
            .ok_or_else(|| XrError::MissingFeature(format!("swapchain image {index}")))?;
        Ok(Acquired { color, depth })
    }

    /// Gives the acquired images back to the runtime.
    pub fn release(&mut self) -> Result<(), XrError> {
        self.color.release_image().xr("release the swapchain image")?;
        if let Some(d) = self.depth.as_mut() {
            d.release_image().xr("release the depth swapchain image")?;
        }
        Ok(())
    }

    /// Ends the frame at `time` with one projection layer in `space`: the released images,
    /// seen from `views` (as located), with the depth planes `eye_views` were rendered with.
    pub fn end_frame(
        &self,
        stream: &mut xr::FrameStream<xr::Vulkan>,
        space: &xr::Space,
        time: xr::Time,
        blend: xr::EnvironmentBlendMode,
        views: &[xr::View],
        eye_views: &[EyeView; 2],
    ) -> Result<(), XrError> {
        let extent = self.extent;
        let rect = xr::Rect2Di {
            offset: xr::Offset2Di { x: 0, y: 0 },
            extent: xr::Extent2Di {
                width: extent.width as i32,
                height: extent.height as i32,
            },
        };
        // Depth per eye: the same layer of the depth swapchain, with the planes the pass used.
        let depth_infos = self.depth.as_ref().map(|d| {
            [0u32, 1].map(|i| xr::sys::CompositionLayerDepthInfoKHR {
                ty: xr::sys::CompositionLayerDepthInfoKHR::TYPE,
                next: std::ptr::null(),
                sub_image: xr::sys::SwapchainSubImage {
                    swapchain: d.as_raw(),
                    image_rect: rect,
                    image_array_index: i,
                },
                min_depth: 0.0,
                max_depth: 1.0,
                near_z: eye_views[i as usize].near,
                far_z: eye_views[i as usize].far,
            })
        });
        let projection_views = [0, 1].map(|i| {
            let view = xr::CompositionLayerProjectionView::new()
                .pose(views[i].pose)
                .fov(views[i].fov)
                .sub_image(
                    xr::SwapchainSubImage::new()
                        .swapchain(&self.color)
                        .image_array_index(i as u32)
                        .image_rect(rect),
                );
            match &depth_infos {
                Some(infos) => {
                    let mut raw = view.into_raw();
                    raw.next = &infos[i] as *const _ as *const c_void;
                    // SAFETY: `infos` outlives the xrEndFrame call below.
                    unsafe { xr::CompositionLayerProjectionView::from_raw(raw) }
                }
                None => view,
            }
        });
        let layer = xr::CompositionLayerProjection::new()
            .space(space)
            .views(&projection_views);
        stream.end(time, blend, &[&layer]).xr("end the frame")
    }
}
