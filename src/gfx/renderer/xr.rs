//! The OpenXR target: drawing both eyes (multiview) and copying them, and the depth, into the
//! runtime's acquired swapchain images.

use super::readback::RgbaImage;
use super::{Finish, Renderer};
use crate::gfx::Result;
use crate::gfx::resources::{full_range, image_barrier};
use crate::gfx::swapchain::Acquired;
use crate::gfx::target::Target;
use ash::vk;

/// Records the copy of both layers of `src` (TRANSFER_SRC_OPTIMAL) into `dst`
/// (TRANSFER_DST_OPTIMAL), images of the same `extent`: the target into an XR swapchain image.
///
/// # Safety
/// `cb` is recording outside a render pass; both images have two layers of `aspect`, are in those
/// layouts and stay alive until the submission has run.
pub(super) unsafe fn copy_layers(
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

impl Renderer {
    /// Renders the current draw list in one multiview pass (left eye = layer 0) with the given
    /// clip_from_world matrices and copies both layers into `image`, an acquired and waited-for
    /// 2-layer XR swapchain image of `extent` in [`crate::gfx::COLOR_FORMAT`]; returns once the
    /// frame is submitted (in the next frame slot, after waiting for that slot's fence: the frame
    /// two before), the image left in COLOR_ATTACHMENT_OPTIMAL, ready to be released (OpenXR
    /// wants the work submitted to the session's queue before the release, not finished). With
    /// `readback`, it waits for the GPU and also returns the two layers of that image as read
    /// back from it. With `depth` (an acquired
    /// 2-layer D32_SFLOAT XR depth swapchain image of `extent`), the pass's depth (0 near, 1 far;
    /// [`crate::gfx::EyeView`]'s planes) is copied into it.
    ///
    /// # Safety
    /// `image` (and `depth`) must be such an image of this renderer's device, not in use by anyone
    /// else until the submission is done (work queued after it on the session's queue, as the
    /// runtime's is after the release, is). Before the XR swapchains are destroyed, call
    /// [`Renderer::wait_frames`].
    pub unsafe fn render_to_xr_image(
        &mut self,
        image: vk::Image,
        depth: Option<vk::Image>,
        extent: vk::Extent2D,
        clip_from_world: [glam::Mat4; 2],
        readback: bool,
    ) -> Result<Option<Vec<RgbaImage>>> {
        self.ensure_target(extent.width, extent.height, 2)?;
        // The next frame slot, its fence waited for (the frame two before this one).
        self.begin_slot()?;
        let slot = self.slot;
        // The mirror window (renderers on a device with a surface): a swapchain image for the
        // left eye, unless the window has no area or none is free (then this frame skips it).
        let mut mirror = None;
        if self.device.surface.is_some() {
            if self.swapchain.is_none() || self.swapchain_stale {
                self.recreate_swapchain()?;
            }
            if let Some(swapchain) = &self.swapchain {
                match swapchain.acquire(slot)? {
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
                        .semaphore(s.acquired[slot])
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
        self.submit_slot(&waits, &signals)?;
        if readback {
            self.wait_slot(slot)?;
        }
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

    /// Records the copy of the target's two layers (in TRANSFER_SRC_OPTIMAL) into an XR swapchain
    /// image, optionally its readback, and its transition to COLOR_ATTACHMENT_OPTIMAL.
    ///
    /// # Safety
    /// `cb` is recording; `image` is an acquired (and waited-for) 2-layer XR swapchain image of
    /// the target's size and format.
    pub(super) unsafe fn record_xr_copy(
        &self,
        cb: vk::CommandBuffer,
        target: &Target,
        image: vk::Image,
        readback: bool,
    ) {
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

    /// Records the copy of the target's depth (both layers, just written by the pass) into an XR
    /// depth swapchain image, left in DEPTH_STENCIL_ATTACHMENT_OPTIMAL as OpenXR wants it released.
    ///
    /// # Safety
    /// `cb` is recording after the scene pass; `image` is an acquired (and waited-for) 2-layer
    /// D32_SFLOAT XR swapchain image of the target's size.
    pub(super) unsafe fn record_xr_depth_copy(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image) {
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
}
