//! Offscreen frames read back to the CPU: [`RgbaImage`] (pixels, side by side, PNG encoding),
//! [`Renderer::render_offscreen`](super::Renderer::render_offscreen) and the copy into the
//! target's readback buffer.

use super::frame::view_count;
use super::{Finish, Renderer};
use crate::gfx::Result;
use crate::gfx::camera::Camera;
use crate::gfx::target::Target;
use ash::vk;

/// Tightly packed RGBA8 pixels (sRGB), rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbaImage {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.pixels[i],
            self.pixels[i + 1],
            self.pixels[i + 2],
            self.pixels[i + 3],
        ]
    }

    /// The images next to each other, left to right (all of one height).
    pub fn side_by_side(images: &[RgbaImage]) -> RgbaImage {
        let height = images.first().map_or(0, |i| i.height);
        let width = images.iter().map(|i| i.width).sum();
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height as usize {
            for image in images {
                let row = image.width as usize * 4;
                pixels.extend_from_slice(&image.pixels[y * row..(y + 1) * row]);
            }
        }
        RgbaImage { width, height, pixels }
    }

    pub fn write_png(&self, out: impl std::io::Write) -> Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()
    }
}

impl Renderer {
    /// Renders the current draw list as seen by each of `views` (1 camera: mono; 2: left and
    /// right eye in one multiview pass) into `width`×`height` images, one per view.
    pub fn render_offscreen(&mut self, width: u32, height: u32, views: &[Camera]) -> Result<Vec<RgbaImage>> {
        self.ensure_target(width, height, view_count(views)?)?;
        self.draw_frame(width, height, views, Finish::Readback)?;
        // The readback buffer now holds this image, not the last window frame.
        self.window_readback = None;
        self.read_views(width, height, views.len())
    }

    /// Renders `frames` frames like [`Renderer::render_offscreen`], but back to back with
    /// [`FRAMES_IN_FLIGHT`](super::FRAMES_IN_FLIGHT) frames in flight (as the window and XR loops
    /// draw), `per_frame(renderer, i)` changing what frame `i` draws before it starts; returns
    /// the last frame's images (each frame copies into the one readback buffer, in order). For
    /// tests of the frame slots: it should equal a [`Renderer::render_offscreen`] of the last
    /// frame's draw lists.
    pub fn render_offscreen_in_flight(
        &mut self,
        width: u32,
        height: u32,
        views: &[Camera],
        frames: usize,
        per_frame: &mut dyn FnMut(&mut Renderer, usize) -> Result<()>,
    ) -> Result<Vec<RgbaImage>> {
        if frames == 0 {
            return Err(crate::gfx::GfxError::Invalid("0 frames to render".into()));
        }
        let in_flight = super::FRAMES_IN_FLIGHT;
        self.frames_in_flight_run(width, height, views, (frames, in_flight), Finish::Readback, per_frame)?;
        self.window_readback = None;
        // Every frame was waited for at the end of the run.
        self.read_views(width, height, views.len())
    }

    /// The `views` layers of the last offscreen frame, as the readback buffer holds them (the
    /// frame waited for; the target made by it).
    fn read_views(&self, width: u32, height: u32, views: usize) -> Result<Vec<RgbaImage>> {
        let Some(target) = &self.target else {
            unreachable!("made by the frame that was read back")
        };
        let bytes = target.readback.mapped()?;
        let layer = width as usize * height as usize * 4;
        Ok(bytes[..layer * views]
            .chunks_exact(layer)
            .map(|pixels| RgbaImage {
                width,
                height,
                pixels: pixels.to_vec(),
            })
            .collect())
    }

    /// Records the copy of `views` layers of `image` (in TRANSFER_SRC_OPTIMAL, the target's size)
    /// into the target's readback buffer, made visible to the host once the fence signals.
    ///
    /// # Safety
    /// `cb` is recording; `image` is the target's color or a swapchain image of its size.
    pub(super) unsafe fn record_readback(&self, cb: vk::CommandBuffer, target: &Target, image: vk::Image, views: u32) {
        let d = &self.device.device;
        // SAFETY: per the function's contract.
        unsafe {
            let layer_bytes = u64::from(target.extent.width) * u64::from(target.extent.height) * 4;
            let regions: Vec<vk::BufferImageCopy> = (0..views)
                .map(|layer| {
                    vk::BufferImageCopy::default()
                        .buffer_offset(u64::from(layer) * layer_bytes)
                        .image_subresource(
                            vk::ImageSubresourceLayers::default()
                                .aspect_mask(vk::ImageAspectFlags::COLOR)
                                .mip_level(0)
                                .base_array_layer(layer)
                                .layer_count(1),
                        )
                        .image_extent(target.extent.into())
                })
                .collect();
            // An earlier frame still in flight may have copied into it too.
            let to_copy = [vk::BufferMemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COPY)
                .src_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                .dst_stage_mask(vk::PipelineStageFlags2::COPY)
                .dst_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                .buffer(target.readback.handle)
                .size(vk::WHOLE_SIZE)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_copy));
            d.cmd_copy_image_to_buffer(
                cb,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                target.readback.handle,
                &regions,
            );
            // Make the copy visible to the host once the fence signals.
            let to_host = [vk::BufferMemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COPY)
                .src_access_mask(vk::AccessFlags2::TRANSFER_WRITE)
                .dst_stage_mask(vk::PipelineStageFlags2::HOST)
                .dst_access_mask(vk::AccessFlags2::HOST_READ)
                .buffer(target.readback.handle)
                .size(vk::WHOLE_SIZE)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().buffer_memory_barriers(&to_host));
        }
    }
}
