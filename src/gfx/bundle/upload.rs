//! Handing the bundler edges, values, style and a highlight between frames: staged for the next
//! frame's commands, which copy them and run the work they ask for.

use ash::vk;
use bytemuck::Zeroable;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use crate::gfx::colormap::srgb_to_linear;
use crate::gfx::device::Device;
use crate::gfx::resources::Buffer;
use crate::gfx::{GfxError, Result};

use super::{
    B_BLURRED, B_DENSITY, B_EDGES, B_GROUPS, B_HIGHLIGHT, B_OFFSETS, B_PARAMS, B_POINTS, B_SPLAT, B_VALUES,
    BundleStyle, Bundler, EdgeSet, GRID, GroupFrame, INTERIOR, Params, Pending, Work, drawn_segments, group_frames,
    inverse_max, walked_segments,
};

impl Bundler {
    /// Stages new edges (topology, positions, values) and asks for a full recompute. Only between
    /// frames.
    /// With `warm`, when the edges are as many as before (the same edges, moved: a block was
    /// dragged or switched layout), the bundle goes on from its last shape (an incremental update)
    /// instead of starting again from straight lines.
    pub fn set_edges<E: EdgeSet + ?Sized>(
        &mut self,
        device: &Device,
        allocator: &mut Allocator,
        edges: &E,
        warm: bool,
    ) -> Result<()> {
        if edges.edge_count() > self.max_edges() {
            return Err(GfxError::Invalid(format!(
                "{} edges to bundle; this device holds at most {} (build them with a smaller budget)",
                edges.edge_count(),
                self.max_edges()
            )));
        }
        let instances = edges.edge_instances();
        let frames = group_frames(&instances, edges.group_count(), &edges.group_max_abs());
        let n = instances.len() as u64;
        let warm = warm
            && self.edge_count as usize == instances.len()
            && self.group_count as usize == frames.len()
            && self.buffers.slots[B_OFFSETS as usize].is_some();
        let cells = frames.len() as u64 * u64::from(INTERIOR * GRID * GRID);
        self.ensure(device, allocator, B_EDGES, n * 32)?;
        self.ensure(device, allocator, B_VALUES, n * 4)?;
        self.ensure(device, allocator, B_OFFSETS, n * u64::from(INTERIOR) * 8)?;
        self.ensure(device, allocator, B_GROUPS, frames.len() as u64 * 64)?;
        self.ensure(device, allocator, B_SPLAT, cells * 4)?;
        self.ensure(device, allocator, B_BLURRED, cells * 4)?;
        self.ensure(device, allocator, B_DENSITY, cells * 4)?;
        let segments = if self.walked {
            walked_segments(instances.len(), self.max_range)
        } else {
            drawn_segments(instances.len(), self.vertex_budget)
        };
        self.ensure(device, allocator, B_POINTS, n * u64::from(segments + 1) * 16)?;
        self.ensure_indices(device, allocator, instances.len() as u32, segments)?;
        let edge_bytes: &[u8] = bytemuck::cast_slice(&instances);
        let group_bytes: &[u8] = bytemuck::cast_slice(&frames);
        let value_bytes: &[u8] = bytemuck::cast_slice(edges.edge_values());
        self.stage(device, allocator, &[edge_bytes, group_bytes, value_bytes])?;
        self.staged = (
            edge_bytes.len() as u64,
            group_bytes.len() as u64,
            value_bytes.len() as u64,
        );
        self.edge_count = instances.len() as u32;
        self.group_count = frames.len() as u32;
        // The old highlight indexes the old edges.
        self.highlight_count = 0;
        self.segments = segments;
        self.upload_params()?;
        let work = if warm { Work::Incremental } else { Work::Full };
        self.pending.set(Pending {
            edges: true,
            values: true,
            work: Some(work),
            points: true,
        });
        Ok(())
    }

    /// Stages new values for the same edges and asks for an incremental update (unless a full
    /// recompute is pending anyway). Also re-scales each group's opacity and weights to its new
    /// largest |value|. Only between frames.
    pub fn set_values<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        if edges.edge_values().len() != self.edge_count as usize {
            return Err(GfxError::Invalid(format!(
                "{} edge values for {} bundled edges",
                edges.edge_values().len(),
                self.edge_count
            )));
        }
        let (e, g, _) = self.staged;
        let staging = self
            .buffers
            .staging
            .as_mut()
            .ok_or_else(|| GfxError::Invalid("edge values before any edges".into()))?;
        let mut frames: Vec<GroupFrame> = staging
            .mapped()?
            .get(e as usize..(e + g) as usize)
            .ok_or_else(|| GfxError::Invalid("staged groups missing".into()))?
            .chunks_exact(size_of::<GroupFrame>())
            .map(bytemuck::pod_read_unaligned)
            .collect();
        for (f, max) in frames.iter_mut().zip(edges.group_max_abs()) {
            f.e1[3] = inverse_max(max);
        }
        staging.write_at(e, bytemuck::cast_slice(&frames))?;
        staging.write_at(e + g, bytemuck::cast_slice(edges.edge_values()))?;
        let mut p = self.pending.get();
        p.values = true;
        if p.work.is_none() {
            p.work = Some(Work::Incremental);
        }
        self.pending.set(p);
        Ok(())
    }

    /// Copies `parts` one after the other into the staging buffer (grown as needed).
    pub(super) fn stage(&mut self, device: &Device, allocator: &mut Allocator, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.buffers.staging.as_ref().is_none_or(|b| b.size < total as u64) {
            if let Some(mut old) = self.buffers.staging.take() {
                // SAFETY: nothing is in flight (between frames).
                unsafe { old.destroy(device, allocator) };
            }
            self.buffers.staging = Some(Buffer::new(
                device,
                allocator,
                "bundle upload",
                (total as u64).next_power_of_two().max(256),
                vk::BufferUsageFlags::TRANSFER_SRC,
                MemoryLocation::CpuToGpu,
            )?);
        }
        let Some(staging) = &mut self.buffers.staging else {
            unreachable!("made above")
        };
        let mut at = 0;
        for part in parts {
            staging.write_at(at, part)?;
            at += part.len() as u64;
        }
        Ok(())
    }

    /// Writes the style the draw and the curve readback use. Only between frames.
    pub fn write_params(&mut self, style: &BundleStyle) -> Result<()> {
        let linear = |c: [f32; 3]| {
            let [r, g, b] = c.map(srgb_to_linear);
            [r, g, b, 1.0]
        };
        let finite = |v: f32, default: f32| if v.is_finite() { v } else { default };
        let d = BundleStyle::default();
        let params = Params {
            positive: linear(style.positive),
            negative: linear(style.negative),
            strength: finite(style.strength, d.strength).clamp(0.0, 1.0),
            width: finite(style.width, d.width).max(0.0),
            threshold: finite(style.threshold, d.threshold).clamp(0.0, 1.0),
            opacity: finite(style.opacity, d.opacity).max(0.0),
            ..Params::zeroed()
        };
        if params.strength != self.params.strength {
            // The drawn points are at the old strength.
            let mut p = self.pending.get();
            p.points = true;
            self.pending.set(p);
        }
        self.params = params;
        self.upload_params()
    }

    /// Writes the style with the current counts and level of detail into the params buffer.
    pub(super) fn upload_params(&mut self) -> Result<()> {
        let params = Params {
            edge_count: self.edge_count,
            highlight_count: self.highlight_count,
            segments: self.segments,
            ..self.params
        };
        let buffer = self.buffers.slots[B_PARAMS as usize]
            .as_mut()
            .ok_or_else(|| GfxError::Invalid("bundle params buffer missing".into()))?;
        buffer.write(bytemuck::bytes_of(&params))
    }

    /// The edges drawn over the bundle (indices into the edges). Only between frames.
    pub fn set_highlight(&mut self, device: &Device, allocator: &mut Allocator, edges: &[u32]) -> Result<()> {
        if let Some(bad) = edges.iter().find(|&&e| e >= self.edge_count) {
            return Err(GfxError::Invalid(format!(
                "highlighted edge {bad} of {}",
                self.edge_count
            )));
        }
        self.ensure(device, allocator, B_HIGHLIGHT, edges.len() as u64 * 4)?;
        let buffer = self.buffers.slots[B_HIGHLIGHT as usize]
            .as_mut()
            .ok_or_else(|| GfxError::Invalid("bundle highlight buffer missing".into()))?;
        buffer.write(bytemuck::cast_slice(edges))?;
        self.highlight_count = edges.len() as u32;
        self.upload_params()
    }
}
