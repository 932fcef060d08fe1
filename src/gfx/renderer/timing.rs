//! Timing a frame: [`FrameTimes`] (CPU record and submit, GPU scene pass) from
//! [`Renderer::time_frame`](super::Renderer::time_frame); timing frames in flight:
//! [`FlightTimes`] from [`Renderer::time_frames_in_flight`](super::Renderer::time_frames_in_flight).

use super::frame::view_count;
use super::slots::FlightTimes;
use super::{Finish, Renderer};
use crate::gfx::camera::Camera;
use crate::gfx::{Result, VkContext};
use ash::vk;
use std::time::Instant;

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

impl Renderer {
    /// Renders `frames` frames of the current draw lists offscreen back to back, as the window and
    /// XR loops do (no readback, no wait for the GPU after a submission), with up to `in_flight`
    /// (1 or 2) frames in flight, and times each: CPU time recording it, CPU time blocked on a
    /// fence, and wall time. With 1 the frame waits for its own fence right after its submission
    /// (the old behaviour); with 2 it waits, before recording, for the fence of the frame two
    /// before it. `per_frame(renderer, i)` runs before frame `i` starts (an app's uploads: e.g.
    /// `set_overlay`); its time counts only in the wall time. The last frame's wall time and wait
    /// include waiting for every frame to finish. The frames in flight afterwards are as before.
    pub fn time_frames_in_flight(
        &mut self,
        width: u32,
        height: u32,
        views: &[Camera],
        frames: usize,
        in_flight: usize,
        per_frame: &mut dyn FnMut(&mut Renderer, usize) -> Result<()>,
    ) -> Result<Vec<FlightTimes>> {
        self.frames_in_flight_run(width, height, views, (frames, in_flight), Finish::Nothing, per_frame)
    }

    /// Renders `frames` frames offscreen back to back with up to `in_flight` frames in flight,
    /// each finished with `finish`, timed as [`Renderer::time_frames_in_flight`] says; waits for
    /// them all at the end.
    pub(super) fn frames_in_flight_run(
        &mut self,
        width: u32,
        height: u32,
        views: &[Camera],
        (frames, in_flight): (usize, usize),
        finish: Finish,
        per_frame: &mut dyn FnMut(&mut Renderer, usize) -> Result<()>,
    ) -> Result<Vec<FlightTimes>> {
        Renderer::check_in_flight(in_flight)?;
        self.ensure_target(width, height, view_count(views)?)?;
        let before = self.frames_in_flight;
        self.set_frames_in_flight(in_flight)?;
        let mut times = Vec::with_capacity(frames);
        let run = (|| {
            let mut started = Instant::now();
            for i in 0..frames {
                per_frame(self, i)?;
                // Target and edge pass as the window's frames keep them (a no-op unless changed).
                self.ensure_target(width, height, view_count(views)?)?;
                let mut wait = self.begin_slot()?;
                let record = self.record_offscreen(width, height, views, finish)?;
                wait += self.submit_slot(&[], &[])?;
                if i + 1 == frames {
                    let done = Instant::now();
                    self.wait_in_flight()?;
                    wait += done.elapsed();
                }
                let now = Instant::now();
                times.push(FlightTimes {
                    record,
                    wait,
                    wall: now - started,
                });
                started = now;
            }
            Ok(())
        })();
        // Also waits for the frames in flight (after an error too).
        let restored = self.set_frames_in_flight(before);
        run.and(restored).map(|()| times)
    }
}
