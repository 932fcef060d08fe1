//! Recording the bundler's commands: the uploads, the bundling iterations, the drawn points, and
//! the bundled edges' draw.

use ash::vk;

use crate::gfx::device::Device;
use crate::gfx::pipeline::groups_for;

use super::{
    B_EDGES, B_GROUPS, B_OFFSETS, B_SPLAT, B_VALUES, Bundler, DrawPart, GRID, INTERIOR, Pass, Pending, Work,
    full_schedule, incremental_schedule, indices_per_edge,
};

impl Bundler {
    /// Records `pending`: the staged copies, then the bundling work, with barriers so the draw's
    /// vertex shader (and a later compute pass) sees the result. With `timestamps`, writes query
    /// 0 before and query 1 after.
    ///
    /// # Safety
    /// `cb` is recording outside a render pass on this bundler's device; the buffers are not
    /// changed until it has executed.
    /// At most `budget` iterations run (`None`: all); the rest wait for the next call.
    // Long (~150 lines) on purpose: copies, iterations and their barriers in the order they run,
    // so the synchronization reads top to bottom.
    pub unsafe fn record(
        &self,
        device: &Device,
        cb: vk::CommandBuffer,
        pending: Pending,
        timestamps: Option<vk::QueryPool>,
        budget: Option<usize>,
    ) {
        let d = &device.device;
        use vk::{AccessFlags2 as A, PipelineStageFlags2 as S};
        let barrier = |src: (S, A), dst: (S, A)| {
            [vk::MemoryBarrier2::default()
                .src_stage_mask(src.0)
                .src_access_mask(src.1)
                .dst_stage_mask(dst.0)
                .dst_access_mask(dst.1)]
        };
        // SAFETY: per the function's contract.
        unsafe {
            let barrier_now = |src, dst| {
                d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().memory_barriers(&barrier(src, dst)));
            };
            if let Some(pool) = timestamps {
                d.cmd_reset_query_pool(cb, pool, 0, 2);
                d.cmd_write_timestamp2(cb, S::TOP_OF_PIPE, pool, 0);
            }
            // The last frame's draws and compute are done reading and writing before this overwrites.
            barrier_now(
                (
                    S::VERTEX_SHADER | S::COMPUTE_SHADER,
                    A::SHADER_STORAGE_READ | A::SHADER_STORAGE_WRITE,
                ),
                (
                    S::ALL_TRANSFER | S::COMPUTE_SHADER,
                    A::TRANSFER_WRITE | A::SHADER_STORAGE_WRITE,
                ),
            );
            if let Some(staging) = &self.buffers.staging {
                let (e, g, v) = self.staged;
                let copy = |dst: u32, src_offset: u64, size: u64| {
                    if size > 0 {
                        let region = vk::BufferCopy::default().src_offset(src_offset).size(size);
                        d.cmd_copy_buffer(cb, staging.handle, self.buffer(dst), &[region]);
                    }
                };
                if pending.edges {
                    copy(B_EDGES, 0, e);
                }
                if pending.values {
                    copy(B_GROUPS, e, g);
                    copy(B_VALUES, e + g, v);
                }
            }
            let mut rest = self.rest.borrow_mut();
            let work = pending.work.filter(|_| self.edge_count > 0);
            // A new full recompute starts over; an update during a full recompute lets it go on
            // (it reads the new values); otherwise an update replaces the rest of the last one.
            let schedule = match work {
                Some(Work::Full) => Some((full_schedule(), true)),
                Some(Work::Incremental) if !rest.1 || rest.0.is_empty() => Some((incremental_schedule(), false)),
                _ if self.edge_count > 0 && !rest.0.is_empty() => Some(std::mem::take(&mut *rest)),
                _ => None,
            };
            let Some((mut schedule, full)) = schedule else {
                rest.0.clear();
                barrier_now(
                    (S::ALL_TRANSFER, A::TRANSFER_WRITE),
                    (S::VERTEX_SHADER | S::COMPUTE_SHADER, A::SHADER_STORAGE_READ),
                );
                if pending.points || pending.edges {
                    self.record_points(device, cb);
                }
                if let Some(pool) = timestamps {
                    d.cmd_write_timestamp2(cb, S::BOTTOM_OF_PIPE, pool, 1);
                }
                return;
            };
            let n = u64::from(self.edge_count);
            let now = budget.unwrap_or(usize::MAX).min(schedule.len());
            *rest = (schedule.split_off(now), full);
            if work == Some(Work::Full) {
                d.cmd_fill_buffer(cb, self.buffer(B_OFFSETS), 0, n * u64::from(INTERIOR) * 8, 0);
            }
            barrier_now(
                (S::ALL_TRANSFER, A::TRANSFER_WRITE),
                (
                    S::COMPUTE_SHADER | S::VERTEX_SHADER,
                    A::SHADER_STORAGE_READ | A::SHADER_STORAGE_WRITE,
                ),
            );
            let cells = u64::from(self.group_count) * u64::from(INTERIOR * GRID * GRID);
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                self.compute_layout,
                0,
                &[self.set],
                &[],
            );
            let compute_rw = (S::COMPUTE_SHADER, A::SHADER_STORAGE_READ | A::SHADER_STORAGE_WRITE);
            for it in schedule {
                let pass = Pass {
                    edge_count: self.edge_count,
                    cells: cells as u32,
                    sigma: it.sigma,
                    step_cells: it.step,
                    smoothing: it.smoothing,
                };
                d.cmd_push_constants(
                    cb,
                    self.compute_layout,
                    vk::ShaderStageFlags::COMPUTE,
                    0,
                    bytemuck::bytes_of(&pass),
                );
                // Clear the grid (after the last iteration's blur read it).
                d.cmd_fill_buffer(cb, self.buffer(B_SPLAT), 0, cells * 4, 0);
                barrier_now((S::ALL_TRANSFER, A::TRANSFER_WRITE), compute_rw);
                let steps: [(vk::Pipeline, u64, u64); 4] = [
                    (self.splat, n * u64::from(INTERIOR), 256),
                    (self.blur_x, cells, 256),
                    (self.blur_y, cells, 256),
                    (self.advect, n, 64),
                ];
                for (pipeline, count, local) in steps {
                    d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, pipeline);
                    let (x, y) = groups_for(count, local);
                    d.cmd_dispatch(cb, x, y, 1);
                    barrier_now(compute_rw, compute_rw);
                }
                // The next iteration's clear of the grid waits for the blur's reads.
                barrier_now(compute_rw, (S::ALL_TRANSFER, A::TRANSFER_WRITE));
            }
            barrier_now(
                compute_rw,
                (S::VERTEX_SHADER | S::COMPUTE_SHADER, A::SHADER_STORAGE_READ),
            );
            // The offsets moved: so do the drawn points.
            self.record_points(device, cb);
            if let Some(pool) = timestamps {
                d.cmd_write_timestamp2(cb, S::BOTTOM_OF_PIPE, pool, 1);
            }
        }
    }

    /// Records the pass writing every edge's drawn points (at the current strength and level of
    /// detail) for the vertex shader, and the barrier before the draw reads them.
    ///
    /// # Safety
    /// As for [`Bundler::record`]: inside it, after the edges and offsets it reads were made
    /// visible to compute shaders, and after the last draw's reads (its first barrier).
    /// Records bundle_curve.comp (`pipeline`: into the drawn points or the readback) writing
    /// `segments + 1` points of every edge; the caller makes them visible where they go.
    ///
    /// # Safety
    /// `cb` is recording outside a rendering scope; the bundler's buffers are current.
    pub(super) unsafe fn dispatch_curve_points(
        &self,
        d: &ash::Device,
        cb: vk::CommandBuffer,
        pipeline: vk::Pipeline,
        segments: u32,
    ) {
        let pass = Pass {
            edge_count: self.edge_count,
            cells: segments,
            sigma: 0.0,
            step_cells: 0.0,
            smoothing: 0.0,
        };
        // SAFETY: per the function's contract.
        unsafe {
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                self.compute_layout,
                0,
                &[self.set],
                &[],
            );
            d.cmd_push_constants(
                cb,
                self.compute_layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                bytemuck::bytes_of(&pass),
            );
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, pipeline);
            let (x, y) = groups_for(u64::from(self.edge_count) * u64::from(segments + 1), 256);
            d.cmd_dispatch(cb, x, y, 1);
        }
    }

    pub(super) unsafe fn record_points(&self, device: &Device, cb: vk::CommandBuffer) {
        if self.edge_count == 0 {
            return;
        }
        let d = &device.device;
        // SAFETY: per the function's contract.
        unsafe {
            self.dispatch_curve_points(d, cb, self.points, self.segments);
            let to_draw = [vk::MemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COMPUTE_SHADER)
                .src_access_mask(vk::AccessFlags2::SHADER_STORAGE_WRITE)
                .dst_stage_mask(vk::PipelineStageFlags2::VERTEX_SHADER | vk::PipelineStageFlags2::COPY)
                .dst_access_mask(vk::AccessFlags2::SHADER_STORAGE_READ | vk::AccessFlags2::TRANSFER_READ)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().memory_barriers(&to_draw));
        }
    }

    /// Records the draw of `part`: the edges, then the highlighted ones over them, or one of the
    /// two, inside a rendering scope of `views` views whose push constants (clip_from_world[2])
    /// are set. Returns whether it bound its own set (the caller rebinds its own afterwards).
    ///
    /// # Safety
    /// `cb` is recording inside such a rendering scope; any pending work was recorded before it.
    pub unsafe fn record_draw(&self, device: &Device, cb: vk::CommandBuffer, views: u32, part: DrawPart) -> bool {
        let bundle = part == DrawPart::All;
        let highlight = self.highlight_count > 0;
        if self.edge_count == 0 || !(bundle || highlight) {
            return false;
        }
        let Some(indices) = &self.buffers.indices else {
            return false;
        };
        let d = &device.device;
        let indices_for = |edges: u32| (u64::from(edges) * indices_per_edge(self.segments)) as u32;
        let draw = |count: u32| {
            // SAFETY: per the function's contract.
            unsafe { d.cmd_draw_indexed(cb, indices_for(count), 1, 0, 0, 0) };
        };
        // SAFETY: per the function's contract.
        unsafe {
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::GRAPHICS,
                self.draw_layout,
                0,
                &[self.set],
                &[],
            );
            d.cmd_bind_index_buffer(cb, indices.handle, 0, vk::IndexType::UINT32);
            if bundle {
                d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, self.draw[views as usize - 1]);
                draw(self.edge_count);
            }
            if highlight {
                d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, self.highlight[views as usize - 1]);
                draw(self.highlight_count);
            }
        }
        true
    }
}
