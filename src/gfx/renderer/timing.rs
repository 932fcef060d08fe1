//! Timing a frame: [`FrameTimes`] (CPU record and submit, GPU scene pass) from
//! [`Renderer::time_frame`](super::Renderer::time_frame).

use super::frame::view_count;
use super::{Finish, Renderer};
use crate::gfx::camera::Camera;
use crate::gfx::{Result, VkContext};
use ash::vk;

/// What one frame's timing measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTimes {
    /// CPU time to record the frame's commands.
    pub record: std::time::Duration,
    /// GPU time from the start to the end of the scene pass; `None` without timestamp support.
    pub gpu: Option<std::time::Duration>,
}

impl Renderer {
    /// Renders one frame offscreen like [`Renderer::render_offscreen`], without reading it back,
    /// and times it: CPU time to record the commands, GPU time of the scene pass (timestamp
    /// queries; `None` when the device has none).
    pub fn time_frame(&mut self, width: u32, height: u32, views: &[Camera]) -> Result<FrameTimes> {
        self.ensure_target(width, height, view_count(views)?)?;
        let record = self.draw_frame(width, height, views, Finish::Timestamps)?;
        let gpu = if self.query_pool == vk::QueryPool::null() {
            None
        } else {
            let mut ticks = [0u64; 2];
            // SAFETY: both queries were written by the finished submission.
            unsafe {
                self.device.device.get_query_pool_results(
                    self.query_pool,
                    0,
                    &mut ticks,
                    vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
                )
            }
            .vk("read timestamps")?;
            let ns = ticks[1].wrapping_sub(ticks[0]) as f64 * self.timestamp_period;
            Some(std::time::Duration::from_nanos(ns as u64))
        };
        Ok(FrameTimes { record, gpu })
    }
}
