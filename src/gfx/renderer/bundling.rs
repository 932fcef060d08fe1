//! The renderer's glue to the edge bundler ([`crate::gfx::bundle`]) and the low-resolution edge
//! pass ([`crate::gfx::edge_pass`]): uploading edges, values, style and highlight, the edges'
//! resolution scale, bundling on its own (timed) and reading the curves back for tests.
//!
//! The bundler's buffers are not per frame slot (they carry its state from frame to frame): every
//! call that writes them from the CPU or replaces them first waits for the frames in flight
//! (guarded; see `slots.rs`). They change on new edges, weights, style or selection, not per frame.

use super::Renderer;
use crate::gfx::bundle::{BundleStyle, EdgeSet, Pending};
use crate::gfx::{Result, VkContext};
use ash::vk;

/// Edges up to this many are drawn at full resolution by default; more go through the
/// low-resolution edge pass ([`auto_edge_scale`]).
pub const FULL_RESOLUTION_EDGES: u32 = 4_096;

/// The resolution scale the edges are drawn at by default: 1 (ribbons in the scene pass) for up
/// to [`FULL_RESOLUTION_EDGES`], then 2, 4 past 32× as many and 8 past 128× (a million edges'
/// light is a haze at any scale; frame time matters more). On the H200 the edge pass costs
/// 0.1–0.5 ms (stereo, 2064×2208 per eye) for thousands of edges, ribbons ~0.45 µs per edge
/// (docs/performance.md): ribbons stay while they are cheap, for their sharpness.
pub fn auto_edge_scale(edges: u32) -> u32 {
    match edges {
        e if e <= FULL_RESOLUTION_EDGES => 1,
        e if e <= 32 * FULL_RESOLUTION_EDGES => 2,
        e if e <= 128 * FULL_RESOLUTION_EDGES => 4,
        _ => 8,
    }
}

impl Renderer {
    /// Uploads the edges to bundle and draw (see [`crate::gfx::bundle`]); the next frame (or
    /// [`Renderer::bundle_now`]) recomputes the bundle from straight lines.
    pub fn set_edges<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        // Guarded: the bundler's buffers are shared by the frame slots.
        self.wait_in_flight()?;
        self.bundle.set_walked(self.edge_scale_for(edges.edge_count()) > 1);
        self.bundle.set_edges(&self.device, &mut self.allocator, edges, false)
    }

    /// New positions for the edges last given (the same edges: their blocks moved): the bundle
    /// is updated from its last shape rather than recomputed (a dragged block's edges follow it
    /// bundled, frame by frame).
    pub fn move_edges<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        // Guarded, as in set_edges.
        self.wait_in_flight()?;
        self.bundle.set_walked(self.edge_scale_for(edges.edge_count()) > 1);
        self.bundle.set_edges(&self.device, &mut self.allocator, edges, true)
    }

    /// Uploads new values for the edges last given to [`Renderer::set_edges`] (same edges, new
    /// weights or activations); the next frame updates the bundle incrementally.
    pub fn set_edge_values<E: EdgeSet + ?Sized>(&mut self, edges: &E) -> Result<()> {
        // Guarded: the staging buffer may still be read by a frame in flight.
        self.wait_in_flight()?;
        self.bundle.set_values(edges)
    }

    /// How the bundled edges look from the next frame on (strength, width, threshold, ...).
    pub fn set_bundle_style(&mut self, style: &BundleStyle) -> Result<()> {
        // Guarded: the params buffer is read by the frames in flight.
        self.wait_in_flight()?;
        self.bundle.write_params(style)
    }

    /// The edges (indices into the last [`Renderer::set_edges`]'s) drawn over the bundle: a
    /// selected neuron's.
    pub fn set_edge_highlight(&mut self, edges: &[u32]) -> Result<()> {
        // Guarded: the highlight and params buffers are read by the frames in flight.
        self.wait_in_flight()?;
        self.bundle.set_highlight(&self.device, &mut self.allocator, edges)
    }

    /// Draws the bundled edges at 1 / `scale` of the frame's resolution from the next frame on
    /// (1: at full resolution, in the scene pass; clamped to
    /// [`crate::gfx::edge_pass::MAX_SCALE`]); `None`: by the number of edges ([`auto_edge_scale`]).
    /// The segments drawn per edge follow from the next [`Renderer::set_edges`].
    pub fn set_edge_scale(&mut self, scale: Option<u32>) {
        self.edge_scale = scale.map(|s| s.clamp(1, crate::gfx::edge_pass::MAX_SCALE));
    }

    /// The resolution scale the current edges are drawn at (see [`Renderer::set_edge_scale`]).
    pub fn edge_scale(&self) -> u32 {
        self.edge_scale_for(self.bundle.edge_count() as usize)
    }

    /// The resolution scale `edges` edges would be drawn at.
    pub(super) fn edge_scale_for(&self, edges: usize) -> u32 {
        self.edge_scale
            .unwrap_or_else(|| auto_edge_scale(u32::try_from(edges).unwrap_or(u32::MAX)))
    }

    /// Asks for a full recompute of the bundle (from straight lines) before the next frame.
    pub fn rebundle(&mut self) {
        self.bundle.request(crate::gfx::bundle::Work::Full);
    }

    /// Most edges this device can bundle at once.
    pub fn max_bundled_edges(&self) -> usize {
        self.bundle.max_edges()
    }

    /// Edges uploaded for bundling.
    pub fn bundled_edges(&self) -> usize {
        self.bundle.edge_count() as usize
    }

    /// Runs the pending bundling work (uploads, full recompute or incremental update) now, in a
    /// submission of its own, and waits for it; returns its GPU time (timestamp queries; `None`
    /// without them, or when nothing was pending).
    pub fn bundle_now(&mut self) -> Result<Option<std::time::Duration>> {
        let pending = self.bundle.take_pending();
        if pending == Pending::default() && !self.bundle.unfinished() {
            return Ok(None);
        }
        let queries = (self.query_pool != vk::QueryPool::null()).then_some(self.bundle_queries);
        self.one_shot(|r, cb| {
            // SAFETY: recording outside a render pass; nothing changes the buffers until the
            // submission is waited for.
            unsafe { r.bundle.record(&r.device, cb, pending, queries, None) }
        })?;
        let Some(pool) = queries else { return Ok(None) };
        let mut ticks = [0u64; 2];
        // SAFETY: both queries were written by the finished submission.
        unsafe {
            self.device.device.get_query_pool_results(
                pool,
                0,
                &mut ticks,
                vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
            )
        }
        .vk("read timestamps")?;
        let ns = ticks[1].wrapping_sub(ticks[0]) as f64 * self.timestamp_period;
        Ok(Some(std::time::Duration::from_nanos(ns as u64)))
    }

    /// Every bundled edge's curve as drawn at the current style's strength: `SEGMENTS + 1` points
    /// from its source end to its target end (pending work runs first). For tests and tools: it
    /// reads the whole curve buffer back.
    pub fn bundle_curves(&mut self) -> Result<Vec<Vec<glam::Vec3>>> {
        self.bundle_now()?;
        self.bundle.prepare_curves(&self.device, &mut self.allocator)?;
        self.one_shot(|r, cb| {
            // SAFETY: as in bundle_now; prepare_curves was just called.
            unsafe { r.bundle.record_curves(&r.device, cb) }
        })?;
        self.bundle.curves()
    }

    /// Every bundled edge's points as the draw reads them (the level of detail's
    /// [`Renderer::bundle_drawn_segments`] + 1 per edge, at the current strength; pending work runs
    /// first). For tests and tools.
    pub fn bundle_drawn_curves(&mut self) -> Result<Vec<Vec<glam::Vec3>>> {
        self.bundle_now()?;
        self.bundle.prepare_drawn_readback(&self.device, &mut self.allocator)?;
        self.one_shot(|r, cb| {
            // SAFETY: as in bundle_now; prepare_drawn_readback was just called.
            unsafe { r.bundle.record_drawn_readback(&r.device, cb) }
        })?;
        self.bundle.drawn_curves()
    }

    /// Segments drawn per bundled edge (fewer when many edges are drawn: see
    /// [`crate::gfx::bundle::drawn_segments`]).
    pub fn bundle_drawn_segments(&self) -> u32 {
        self.bundle.drawn_segments()
    }

    /// The vertex budget the level of detail of the next [`Renderer::set_edges`] is chosen with
    /// ([`crate::gfx::bundle::VERTEX_BUDGET`] unless set).
    pub fn set_bundle_vertex_budget(&mut self, vertices: u64) {
        self.bundle.set_vertex_budget(vertices);
    }

    /// Sets up the low-resolution edge pass for the next frame, or none (scale 1 or no edges).
    pub(super) fn prepare_edge_pass(&mut self) -> Result<()> {
        self.frame_edge_scale = 1;
        let scale = self.edge_scale();
        let Some(target) = &self.target else {
            return Ok(());
        };
        if scale <= 1 || !self.bundle.has_edges() {
            return Ok(());
        }
        // Coarser where the sums at this scale would not fit in a storage buffer.
        let scale = self.edge_pass.fitting_scale(target.extent, target.views, scale)?;
        if !self.edge_pass.fits(target, scale) {
            // New sums replace the ones the frames in flight use.
            self.wait_in_flight()?;
        }
        self.edge_pass
            .ensure(&self.device, &mut self.allocator, target, scale)?;
        self.frame_edge_scale = scale;
        Ok(())
    }
}
