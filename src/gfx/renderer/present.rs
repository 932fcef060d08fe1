//! The desktop window's target: the swapchain, drawing a frame into it and presenting it
//! ([`WindowFrame`]), the blits into swapchain images (the window's, and the XR mirror's), and
//! reading the last presented frame back.

use super::frame::push_constants;
use super::readback::RgbaImage;
use super::{Finish, Renderer};
use crate::gfx::camera::Camera;
use crate::gfx::colormap::srgb_to_linear;
use crate::gfx::resources::{full_range, image_barrier};
use crate::gfx::swapchain::{Acquired, Swapchain};
use crate::gfx::target::Target;
use crate::gfx::{BACKGROUND_SRGB, GfxError, Result, VkContext};
use ash::vk;

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

impl Renderer {
    /// Notes that the window changed size: the swapchain is recreated before the next frame.
    pub fn window_resized(&mut self) {
        self.swapchain_stale = true;
    }

    /// Draws the current draw list as seen by `camera` into the window and presents it (FIFO:
    /// waits for vsync when frames come faster). The image has the window's size. With
    /// `readback`, the presented image is also read back ([`Renderer::last_window_frame`]).
    ///
    /// A frame: take the next frame slot (wait for its fence: the frame two before this one) →
    /// acquire a swapchain image (signals the slot's `acquired`) → one submission that renders
    /// the scene into the offscreen color target, blits it into the image (after waiting for
    /// `acquired`), optionally copies the image to the readback buffer, transitions it to
    /// PRESENT_SRC and signals the image's `rendered` semaphore → present (waits `rendered`).
    /// It returns without waiting for the GPU: the next frame is recorded while this one draws.
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
        // The slot's fence waited for: its acquire semaphore and buffers are free again.
        self.begin_slot()?;
        let slot = self.slot;
        let Some(swapchain) = &self.swapchain else {
            unreachable!("checked above")
        };
        let (index, matches) = match swapchain.acquire(slot)? {
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
        let (acquired, rendered) = (swapchain.acquired[slot], swapchain.rendered[index as usize]);
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
        self.submit_slot(&waits, &signals)?;
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
    /// `None` when there is none (or an offscreen render came after it). Waits for that frame
    /// (the last one submitted) to finish.
    pub fn last_window_frame(&self) -> Option<RgbaImage> {
        let (extent, bgra) = self.window_readback?;
        // It is the last frame submitted (any other clears `window_readback`): once it is done,
        // nothing writes the readback buffer.
        if let Err(e) = self.wait_in_flight() {
            tracing::error!("waiting for the window frame to read back: {e}");
            return None;
        }
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
    pub(super) fn recreate_swapchain(&mut self) -> Result<()> {
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

    /// Records the blit of the target's color (in TRANSFER_SRC_OPTIMAL) into a swapchain image
    /// (acquired; the submission waits for that at the BLIT stage), optionally its copy to the
    /// readback buffer, and its transition to PRESENT_SRC.
    ///
    /// # Safety
    /// `cb` is recording; `image` is a swapchain image of this renderer of the target's size.
    pub(super) unsafe fn record_blit(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image, readback: bool) {
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

    /// Records the blit of the target's left eye (layer 0, in TRANSFER_SRC_OPTIMAL) into a window
    /// swapchain image: cleared to the background, the eye scaled to fit in the middle, then
    /// PRESENT_SRC. The submission waits for the image's acquire at the CLEAR/BLIT stages.
    ///
    /// # Safety
    /// `cb` is recording after the scene pass; `image` is an acquired window swapchain image of
    /// `extent` of this renderer.
    pub(super) unsafe fn record_mirror_blit(
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
}
