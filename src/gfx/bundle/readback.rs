//! Reading the bundled curves back (tests and benchmarks): the full-resolution curves and the
//! drawn points, each copied into a host-visible buffer.

use ash::vk;

use glam::Vec3;
use gpu_allocator::vulkan::Allocator;

use crate::gfx::device::Device;
use crate::gfx::{GfxError, Result};

use super::{B_CURVES, B_POINTS, Bundler, SEGMENTS};

impl Bundler {
    /// Makes the curve readback buffer big enough for every edge's points.
    pub fn prepare_curves(&mut self, device: &Device, allocator: &mut Allocator) -> Result<()> {
        let bytes = u64::from(self.edge_count) * u64::from(SEGMENTS + 1) * 16;
        self.ensure(device, allocator, B_CURVES, bytes)
    }

    /// Records the pass writing every edge's points at the current strength into the curve
    /// readback buffer, made visible to the host.
    ///
    /// # Safety
    /// As for [`Bundler::record`], after it; [`Bundler::prepare_curves`] was called since the
    /// last [`Bundler::set_edges`].
    pub unsafe fn record_curves(&self, device: &Device, cb: vk::CommandBuffer) {
        let d = &device.device;
        // SAFETY: per the function's contract.
        unsafe {
            self.dispatch_curve_points(d, cb, self.curve, SEGMENTS);
            let to_host = [vk::MemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COMPUTE_SHADER)
                .src_access_mask(vk::AccessFlags2::SHADER_STORAGE_WRITE)
                .dst_stage_mask(vk::PipelineStageFlags2::HOST)
                .dst_access_mask(vk::AccessFlags2::HOST_READ)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().memory_barriers(&to_host));
        }
    }

    /// Makes the curve readback buffer big enough for a copy of the drawn points.
    pub fn prepare_drawn_readback(&mut self, device: &Device, allocator: &mut Allocator) -> Result<()> {
        let bytes = u64::from(self.edge_count) * u64::from(self.segments + 1) * 16;
        self.ensure(device, allocator, B_CURVES, bytes)
    }

    /// Records a copy of the drawn points (what the vertex shader reads) into the curve readback
    /// buffer, made visible to the host.
    ///
    /// # Safety
    /// As for [`Bundler::record_curves`], with [`Bundler::prepare_drawn_readback`] instead.
    pub unsafe fn record_drawn_readback(&self, device: &Device, cb: vk::CommandBuffer) {
        let d = &device.device;
        let bytes = u64::from(self.edge_count) * u64::from(self.segments + 1) * 16;
        if bytes == 0 {
            return;
        }
        use vk::{AccessFlags2 as A, PipelineStageFlags2 as S};
        let barrier = |src: S, src_access: A, dst: S, dst_access: A| {
            [vk::MemoryBarrier2::default()
                .src_stage_mask(src)
                .src_access_mask(src_access)
                .dst_stage_mask(dst)
                .dst_access_mask(dst_access)]
        };
        // SAFETY: per the function's contract.
        unsafe {
            let before = barrier(S::COMPUTE_SHADER, A::SHADER_STORAGE_WRITE, S::COPY, A::TRANSFER_READ);
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().memory_barriers(&before));
            let region = vk::BufferCopy::default().size(bytes);
            d.cmd_copy_buffer(cb, self.buffer(B_POINTS), self.buffer(B_CURVES), &[region]);
            let after = barrier(S::COPY, A::TRANSFER_WRITE, S::HOST, A::HOST_READ);
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().memory_barriers(&after));
        }
    }

    /// The points [`Bundler::record_curves`] wrote: `SEGMENTS + 1` per edge.
    pub fn curves(&self) -> Result<Vec<Vec<Vec3>>> {
        self.read_curves(SEGMENTS + 1)
    }

    /// The drawn points [`Bundler::record_drawn_readback`] copied: `drawn_segments() + 1` per edge.
    pub fn drawn_curves(&self) -> Result<Vec<Vec<Vec3>>> {
        self.read_curves(self.segments + 1)
    }

    pub(super) fn read_curves(&self, points: u32) -> Result<Vec<Vec<Vec3>>> {
        let buffer = self.buffers.slots[B_CURVES as usize]
            .as_ref()
            .ok_or_else(|| GfxError::Invalid("bundle curves buffer missing".into()))?;
        let points = points as usize;
        let bytes = buffer
            .mapped()?
            .get(..self.edge_count as usize * points * 16)
            .ok_or_else(|| GfxError::Invalid("bundle curves buffer too small".into()))?;
        Ok(bytes
            .chunks_exact(points * 16)
            .map(|c| {
                c.chunks_exact(16)
                    .map(|p| {
                        let [x, y, z, _]: [f32; 4] = bytemuck::pod_read_unaligned(p);
                        Vec3::new(x, y, z)
                    })
                    .collect()
            })
            .collect())
    }
}
