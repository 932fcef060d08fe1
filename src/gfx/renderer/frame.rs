//! One frame's course, whatever its target: the offscreen target sized for it, the edge pass
//! prepared, the commands recorded in a frame slot and submitted (`slots.rs`), waited for when
//! read back; one-shot command submissions; the views' push constants.

use super::{Finish, Renderer};
use crate::gfx::camera::Camera;
use crate::gfx::target::Target;
use crate::gfx::{GfxError, Result, VkContext};
use ash::vk;

/// 1 camera: mono; 2: left and right eye in one multiview pass.
pub(super) fn view_count(views: &[Camera]) -> Result<u32> {
    match views.len() {
        1 | 2 => Ok(views.len() as u32),
        n => Err(GfxError::Invalid(format!("{n} views (1 or 2 are supported)"))),
    }
}

/// The push constants of a frame: the clip_from_world matrix of each view (the first again for
/// the second slot of a mono frame).
pub(super) fn push_constants(views: &[Camera], extent: vk::Extent2D) -> Vec<u8> {
    let aspect = extent.width as f32 / extent.height as f32;
    let mut clip_from_world = [[0f32; 16]; 2];
    for (m, cam) in clip_from_world.iter_mut().zip(views.iter().cycle()) {
        *m = cam.clip_from_world(aspect).to_cols_array();
    }
    bytemuck::cast_slice(&clip_from_world).to_vec()
}

impl Renderer {
    /// Records commands with `record` into the next slot's command buffer, submits them and
    /// waits.
    pub(super) fn one_shot(&mut self, record: impl FnOnce(&Renderer, vk::CommandBuffer)) -> Result<()> {
        self.begin_slot()?;
        let d = &self.device.device;
        let cb = self.command_buffer();
        // SAFETY: the slot's command buffer is not pending (begin_slot waited for its fence).
        unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .vk("reset command buffer")?;
            let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            d.begin_command_buffer(cb, &begin).vk("begin command buffer")?;
            record(self, cb);
            d.end_command_buffer(cb).vk("end command buffer")?;
        }
        self.submit_and_wait(&[], &[])
    }

    /// Makes the offscreen target `width`×`height` with `views` layers, unless it is already.
    pub(super) fn ensure_target(&mut self, width: u32, height: u32, views: u32) -> Result<()> {
        let max = self.device.max_image_dimension;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(GfxError::Invalid(format!(
                "size {width}x{height} (each side 1..={max})"
            )));
        }
        let extent = vk::Extent2D { width, height };
        if self
            .target
            .as_ref()
            .is_none_or(|t| t.extent != extent || t.views != views)
        {
            // The frames in flight draw into the old target.
            self.wait_in_flight()?;
            // Its sums are sized for the old target and its set points at its depth: gone first.
            self.edge_pass.release(&self.device, &mut self.allocator);
            if let Some(mut old) = self.target.take() {
                // SAFETY: no submission is in flight (waited for above).
                unsafe { old.destroy(&self.device, &mut self.allocator) };
            }
            self.window_readback = None;
            self.target = Some(Target::new(&self.device, &mut self.allocator, extent, views)?);
        }
        self.prepare_edge_pass()
    }

    /// Records, submits and waits for one frame into the offscreen target (in the next slot);
    /// returns the time recording took.
    pub(super) fn draw_frame(
        &mut self,
        width: u32,
        height: u32,
        views: &[Camera],
        finish: Finish,
    ) -> Result<std::time::Duration> {
        self.begin_slot()?;
        let record = self.record_offscreen(width, height, views, finish)?;
        self.submit_and_wait(&[], &[])?;
        Ok(record)
    }

    /// Records one frame into the offscreen target, in the current slot (begun); returns the
    /// time recording took.
    pub(super) fn record_offscreen(
        &self,
        width: u32,
        height: u32,
        views: &[Camera],
        finish: Finish,
    ) -> Result<std::time::Duration> {
        let Some(target) = &self.target else {
            return Err(GfxError::Invalid("no render target".into()));
        };
        let constants = push_constants(views, vk::Extent2D { width, height });
        let started = std::time::Instant::now();
        self.record(target, views.len() as u32, &constants, finish)?;
        Ok(started.elapsed())
    }
}
