//! Edge bundling on the GPU and the bundled edges' draw.
//!
//! The edges of the fully connected layers (any [`EdgeSet`]: plain arrays of ends, groups and
//! values; `crate::view::edges` gives the scene's edges as one) are bundled by
//! kernel density estimation edge bundling (KDEEB: Hurter, Ersoy, Telea 2012) in compute shaders,
//! done per slice (see shaders/bundle.glsl): every edge is a curve of [`SEGMENTS`] segments; its
//! interior points move only within their group's plane (perpendicular to the direction from the
//! source block to the target block), so point `k` of every edge of a group lives in slice `k`
//! with its own [`GRID`]×[`GRID`] density grid. An iteration: clear the grids, splat every point's
//! weight (its edge's |value| in fixed point: integer atomics, so the sums do not depend on the
//! order of the edges), blur with a Gaussian (x then y), move every point a step up the density's
//! gradient and smooth each curve. A full recompute starts from straight lines and runs
//! [`full_schedule`] (wide kernel to narrow); an incremental update (new weights while scrubbing
//! or training: the density changes, the edges do not) starts from the last result and runs
//! [`incremental_schedule`].
//!
//! The result is an offset per interior point. After bundling, or a change of the bundling
//! strength (0 straight … 1 fully bundled), a compute pass writes every edge's drawn points
//! (`straight + strength × offset`, [`drawn_segments`] segments: fewer when many edges are drawn)
//! into a buffer the vertex shader reads; the draw is indexed, so each point's two ribbon corners
//! are shaded once (`2 × (segments + 1)` vertices per edge). No CPU round trip. Edges blend additively (premultiplied, depth-tested, no depth write), so the order they
//! are drawn in does not matter, in mono and in multiview stereo alike; a selected neuron's edges
//! are drawn after them, opaque and wider, over the bundle.
//!
//! [`Bundler`] is a part of the [`super::Renderer`], which owns it and calls
//! [`Bundler::destroy`].
//!
//! Here: the constants, schedules, style, the plain edge types ([`EdgeInstance`], [`EdgeSet`],
//! [`GroupFrame`]) and the `Bundler` with its small accessors and teardown; `setup` makes its
//! pipelines and buffers, `upload` stages edges, values, style and highlight, `record` records the
//! bundling and the draw, `readback` reads the curves back.

mod readback;
mod record;
mod setup;
mod upload;

use std::cell::Cell;

use ash::vk;
use bytemuck::{Pod, Zeroable};
use glam::Vec3;
use gpu_allocator::vulkan::Allocator;

use super::colormap::{NEGATIVE_COLOR, POSITIVE_COLOR};
use super::device::Device;
use super::resources::Buffer;

/// Segments per curve (shaders/bundle.glsl: SEGMENTS).
pub const SEGMENTS: u32 = 16;
/// Points per curve that move: all but the two endpoints.
pub const INTERIOR: u32 = SEGMENTS - 1;
/// Cells per side of each slice's density grid.
pub const GRID: u32 = 64;
/// Fixed-point scale of a point's density weight (shaders: SPLAT_ONE).
pub const SPLAT_ONE: f32 = 1024.0;
/// Margin around a group's endpoints in its grid, as a fraction of their extent.
pub const GRID_MARGIN: f32 = 0.15;
/// A full recompute: this many iterations, the kernel's sigma going geometrically from
/// `FULL_SIGMA.0` to `FULL_SIGMA.1` cells.
pub const FULL_ITERATIONS: usize = 16;
pub const FULL_SIGMA: (f32, f32) = (8.0, 1.0);
/// Each iteration moves every point this many sigmas up the gradient.
pub const STEP_PER_SIGMA: f32 = 0.5;
/// Each iteration then moves every point this fraction of the way to its neighbours' mean.
pub const SMOOTHING: f32 = 0.5;
/// An incremental update: the last kernels of a full recompute, from the last result.
pub const INCREMENTAL_SIGMAS: [f32; 3] = [1.5, 1.25, 1.0];
/// Segments drawn per edge, most detailed first: every point, every 2nd, every 4th (each a divisor
/// of [`SEGMENTS`]). The ends are always drawn where they are.
pub const DRAWN_SEGMENTS: [u32; 3] = [SEGMENTS, SEGMENTS / 2, SEGMENTS / 4];

/// Vertices the bundled edges' draw may shade per view before it draws fewer segments per edge.
/// Why 2M: on an NVIDIA H200 at Quest-3 size the old draw cost 0.8–1.3 ns per vertex (96 per edge,
/// each evaluating three curve points: 68k edges, 6.5M vertices, 8.4 ms), and the renderer's
/// budget (≤ 4 ms GPU, ≤ 4× the empty frame, stereo) leaves the edges about 2.5 ms for two views;
/// a vertex now reads three points (about a third of the old work), so ~0.6 ns × 2M ≈ 1.2 ms a
/// view. So: 16 segments (34 vertices) up to 58,823 edges, 8 (18) up to 111,111 (a 784-81-49-10
/// MLP's 68k edges: 1.2M vertices), then 4 (10). Past 200k edges even 4 segments are over the
/// budget (1M edges: 10M vertices); the floor stays at 4 so the bundles keep their shape.
pub const VERTEX_BUDGET: u64 = 2_000_000;

/// Vertices the draw shades per edge when it draws `segments` segments: both sides of each point.
pub fn vertices_per_edge(segments: u32) -> u64 {
    2 * (u64::from(segments) + 1)
}

/// Indices per edge: two triangles per segment.
fn indices_per_edge(segments: u32) -> u64 {
    6 * u64::from(segments)
}

/// The segments drawn per edge for `edges` edges: the most of [`DRAWN_SEGMENTS`] whose vertices
/// fit in `budget` (see [`VERTEX_BUDGET`]), at least the last.
pub fn drawn_segments(edges: usize, budget: u64) -> u32 {
    let last = DRAWN_SEGMENTS[DRAWN_SEGMENTS.len() - 1];
    DRAWN_SEGMENTS
        .into_iter()
        .find(|&s| (edges as u64).saturating_mul(vertices_per_edge(s)) <= budget)
        .unwrap_or(last)
}

/// Segments the low-resolution edge pass may walk per view before it walks fewer per edge. Why
/// 4.5M: on an NVIDIA H200 (stereo 2×2064×2208) 1.06M edges at 4 segments cost 3.8 ms a frame at
/// 1/8, at 16 segments 4.3 ms — over the renderer's 4 ms — while 68k edges at 16 segments cost
/// 0.02 ms more than at 8 (docs/performance.md). So: 16 segments up to 281,250 edges, 8 up to
/// 562,500, then 4 (the floor, as for the ribbons).
pub const WALK_SEGMENT_BUDGET: u64 = 4_500_000;

/// The segments walked per edge for `edges` edges by the low-resolution edge pass: the most of
/// [`DRAWN_SEGMENTS`] within [`WALK_SEGMENT_BUDGET`] whose drawn points (16 bytes each, one more
/// than the segments per edge) fit in a storage buffer of `max_range` bytes, at least the last.
pub fn walked_segments(edges: usize, max_range: u64) -> u32 {
    let last = DRAWN_SEGMENTS[DRAWN_SEGMENTS.len() - 1];
    let edges = edges as u64;
    DRAWN_SEGMENTS
        .into_iter()
        .find(|&s| {
            edges.saturating_mul(u64::from(s)) <= WALK_SEGMENT_BUDGET
                && edges.saturating_mul(u64::from(s) + 1).saturating_mul(16) <= max_range
        })
        .unwrap_or(last)
}

/// Groups of more edges than this are drawn fainter (opacity × sqrt(this / edges)), so a bundle
/// of thousands of edges does not saturate to white.
pub const OPACITY_EDGES: f32 = 150.0;

/// One iteration's kernel and step (in cells) and smoothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Iteration {
    pub sigma: f32,
    pub step: f32,
    pub smoothing: f32,
}

fn iteration(sigma: f32) -> Iteration {
    Iteration {
        sigma,
        step: STEP_PER_SIGMA * sigma,
        smoothing: SMOOTHING,
    }
}

/// The iterations of a full recompute.
pub fn full_schedule() -> Vec<Iteration> {
    let (first, last) = FULL_SIGMA;
    let ratio = (last / first).powf(1.0 / (FULL_ITERATIONS as f32 - 1.0));
    (0..FULL_ITERATIONS)
        .map(|i| iteration(first * ratio.powi(i as i32)))
        .collect()
}

/// Bundling iterations a frame runs at most: a full recompute (16) spreads over several frames,
/// the curves settling as they go, so no frame stalls on it (a CPU Vulkan driver takes ~80 ms
/// per iteration for the demo's edges).
pub const ITERATIONS_PER_FRAME: usize = 2;

/// The iterations of an incremental update.
pub fn incremental_schedule() -> Vec<Iteration> {
    INCREMENTAL_SIGMAS.iter().map(|&s| iteration(s)).collect()
}

/// How the bundled edges look; cheap to change every frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BundleStyle {
    /// 0: straight lines … 1: fully bundled.
    pub strength: f32,
    /// Ribbon width in meters (the highlight is 2.5× as wide).
    pub width: f32,
    /// Edges under this fraction of their layer's largest |value| are hidden.
    pub threshold: f32,
    /// Multiplies every edge's opacity.
    pub opacity: f32,
    /// sRGB colors of positive and negative edges.
    pub positive: [f32; 3],
    pub negative: [f32; 3],
}

impl Default for BundleStyle {
    fn default() -> Self {
        BundleStyle {
            strength: 0.8,
            width: 0.002,
            threshold: 0.0,
            opacity: 1.0,
            positive: POSITIVE_COLOR,
            negative: NEGATIVE_COLOR,
        }
    }
}

/// `Edge` in shaders/bundle.glsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct EdgeInstance {
    /// Source end (xyz); w: the group index's bits.
    pub a: [f32; 4],
    /// Target end (xyz); w unused.
    pub b: [f32; 4],
}

impl EdgeInstance {
    /// The edge from `a` to `b` in group `group`.
    pub fn new(a: Vec3, b: Vec3, group: u32) -> EdgeInstance {
        EdgeInstance {
            a: a.extend(f32::from_bits(group)).to_array(),
            b: b.extend(0.0).to_array(),
        }
    }
}

/// The edges to bundle, as plain arrays: what the bundler needs of whatever holds them (the
/// scene's edges implement it in `crate::view::edges`). Groups are bundled apart (one per layer
/// pair); edge `i` has value `edge_values()[i]`.
pub trait EdgeSet {
    /// How many edges.
    fn edge_count(&self) -> usize;
    /// Every edge's ends and group.
    fn edge_instances(&self) -> Vec<EdgeInstance>;
    /// How many groups.
    fn group_count(&self) -> usize;
    /// One value per edge (its weight or importance).
    fn edge_values(&self) -> &[f32];
    /// Per group, the largest finite |value|.
    fn group_max_abs(&self) -> Vec<f32>;
}

/// `Group` in shaders/bundle.glsl: a layer pair's grid.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GroupFrame {
    /// The grid's corner (xyz) and cell size in meters (w).
    pub origin: [f32; 4],
    /// The grid's x axis (xyz, unit) and 1 / the group's largest |value| (w).
    pub e1: [f32; 4],
    /// The grid's y axis (xyz, unit) and the opacity of the group's strongest edge (w).
    pub e2: [f32; 4],
    /// First cell of the group's slices in the grids, G, unused, unused.
    pub grid: [u32; 4],
}

impl GroupFrame {
    pub fn origin(&self) -> Vec3 {
        Vec3::from_slice(&self.origin[..3])
    }
    pub fn cell(&self) -> f32 {
        self.origin[3]
    }
    pub fn e1(&self) -> Vec3 {
        Vec3::from_slice(&self.e1[..3])
    }
    pub fn e2(&self) -> Vec3 {
        Vec3::from_slice(&self.e2[..3])
    }
}

/// `Params` in shaders/bundle.glsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
struct Params {
    positive: [f32; 4],
    negative: [f32; 4],
    strength: f32,
    width: f32,
    threshold: f32,
    opacity: f32,
    edge_count: u32,
    highlight_count: u32,
    segments: u32,
    pad: u32,
}

/// The compute passes' push constants (`Pass` in the .comp shaders).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct Pass {
    edge_count: u32,
    cells: u32,
    sigma: f32,
    step_cells: f32,
    smoothing: f32,
}

/// Each group's grid: a plane perpendicular to the direction from its sources to its targets,
/// covering every endpoint's projection (and so every straight edge) with a margin, square cells.
/// `values` gives the groups' largest |value| (opacity and splat weights are relative to it).
pub fn group_frames(edges: &[EdgeInstance], groups: usize, max_abs: &[f32]) -> Vec<GroupFrame> {
    // Bounds, not sums: they do not depend on the order of the edges (nor does anything here).
    let empty = (Vec3::INFINITY, Vec3::NEG_INFINITY);
    let mut ends = vec![(empty, empty, 0usize); groups];
    for e in edges {
        let g = e.a[3].to_bits() as usize;
        if let Some((a, b, n)) = ends.get_mut(g) {
            let (pa, pb) = (Vec3::from_slice(&e.a[..3]), Vec3::from_slice(&e.b[..3]));
            *a = (a.0.min(pa), a.1.max(pa));
            *b = (b.0.min(pb), b.1.max(pb));
            *n += 1;
        }
    }
    let frames: Vec<(Vec3, Vec3, Vec3)> = ends
        .iter()
        .map(|&(a, b, n)| {
            if n == 0 {
                return (Vec3::ZERO, Vec3::X, Vec3::Y);
            }
            let (a, b) = ((a.0 + a.1) / 2.0, (b.0 + b.1) / 2.0);
            let axis = (b - a).try_normalize().unwrap_or(Vec3::NEG_Z);
            // e1 horizontal where it can be (the blocks stand upright), e2 then mostly up.
            let e1 = Vec3::Y.cross(axis).try_normalize().unwrap_or(Vec3::X);
            let e2 = axis.cross(e1);
            ((a + b) / 2.0, e1, e2)
        })
        .collect();
    let mut lo = vec![glam::Vec2::splat(f32::INFINITY); groups];
    let mut hi = vec![glam::Vec2::splat(f32::NEG_INFINITY); groups];
    for e in edges {
        let g = e.a[3].to_bits() as usize;
        let Some(&(c, e1, e2)) = frames.get(g) else { continue };
        for p in [&e.a, &e.b] {
            let rel = Vec3::from_slice(&p[..3]) - c;
            let uv = glam::Vec2::new(rel.dot(e1), rel.dot(e2));
            lo[g] = lo[g].min(uv);
            hi[g] = hi[g].max(uv);
        }
    }
    frames
        .iter()
        .enumerate()
        .map(|(g, &(c, e1, e2))| {
            let (lo, hi) = if lo[g].x <= hi[g].x {
                (lo[g], hi[g])
            } else {
                (glam::Vec2::ZERO, glam::Vec2::ZERO)
            };
            let extent = (hi - lo).max_element().max(1e-3) * (1.0 + 2.0 * GRID_MARGIN);
            let cell = extent / GRID as f32;
            let center = (lo + hi) / 2.0;
            let corner = c + e1 * (center.x - extent / 2.0) + e2 * (center.y - extent / 2.0);
            let n = ends[g].2.max(1) as f32;
            let max = max_abs.get(g).copied().unwrap_or(0.0);
            GroupFrame {
                origin: corner.extend(cell).to_array(),
                e1: e1.extend(inverse_max(max)).to_array(),
                e2: e2.extend((OPACITY_EDGES / n).sqrt().min(1.0)).to_array(),
                grid: [(g as u32) * INTERIOR * GRID * GRID, GRID, 0, 0],
            }
        })
        .collect()
}

/// 1 / a group's largest |value| (0 when it has none).
fn inverse_max(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() { 1.0 / max } else { 0.0 }
}

/// What the next frame (or [`Bundler`]'s explicit run) must do before drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pending {
    /// Copy the staged edges into their device buffer.
    pub edges: bool,
    /// Copy the staged groups and values.
    pub values: bool,
    pub work: Option<Work>,
    /// Write the drawn points again (the strength changed; bundling work writes them anyway).
    pub points: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// From straight lines, the whole schedule.
    Full,
    /// From the last result, the last few kernels.
    Incremental,
}

/// What [`Bundler::record_draw`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrawPart {
    /// The bundle and the highlight over it (in the scene pass).
    All,
    /// Only the highlight (the bundle goes through the low-resolution edge pass).
    Highlight,
}

/// Storage buffer bindings of the bundler's set.
const B_EDGES: u32 = 0;
const B_VALUES: u32 = 1;
const B_OFFSETS: u32 = 2;
const B_GROUPS: u32 = 3;
const B_SPLAT: u32 = 4;
const B_BLURRED: u32 = 5;
const B_DENSITY: u32 = 6;
const B_PARAMS: u32 = 7;
const B_HIGHLIGHT: u32 = 8;
const B_CURVES: u32 = 9;
const B_POINTS: u32 = 10;
const BINDINGS: u32 = 11;

/// The buffers, by binding.
#[derive(Default)]
struct Buffers {
    slots: [Option<Buffer>; BINDINGS as usize],
    /// Host-visible: the edges, groups and values waiting to be copied into their device buffers.
    staging: Option<Buffer>,
    /// The draw's indices (host-visible, u32): two triangles per segment of every edge, for
    /// `Bundler::indexed` edges at its level of detail. One draw, not instanced.
    indices: Option<Buffer>,
}

/// The edge bundler: compute pipelines, the draw pipelines and the buffers between them. A part
/// of the renderer: null/empty until [`Bundler::init`], destroyed by [`Bundler::destroy`].
#[derive(Default)]
pub(crate) struct Bundler {
    set_layout: vk::DescriptorSetLayout,
    compute_layout: vk::PipelineLayout,
    draw_layout: vk::PipelineLayout,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    splat: vk::Pipeline,
    blur_x: vk::Pipeline,
    blur_y: vk::Pipeline,
    advect: vk::Pipeline,
    curve: vk::Pipeline,
    /// The same shader writing the drawn points.
    points: vk::Pipeline,
    /// Per view count (1, 2): all edges (additive), the highlighted ones (opaque).
    draw: [vk::Pipeline; 2],
    highlight: [vk::Pipeline; 2],
    buffers: Buffers,
    edge_count: u32,
    group_count: u32,
    highlight_count: u32,
    /// Bytes of edges and of groups in the staging buffer (values follow them).
    staged: (u64, u64, u64),
    pending: Cell<Pending>,
    /// Iterations still to run (frames spread a recompute out: see [`ITERATIONS_PER_FRAME`]),
    /// and whether they are a full recompute's.
    rest: std::cell::RefCell<(Vec<Iteration>, bool)>,
    /// Largest storage buffer range: bounds how many edges can be bundled.
    max_range: u64,
    /// The draw's level of detail, set with the edges: [`walked_segments`] when the
    /// low-resolution edge pass draws them (`walked`), else [`drawn_segments`] of this budget.
    segments: u32,
    vertex_budget: u64,
    walked: bool,
    /// What [`Bundler::write_params`] last wrote, without the counts.
    params: Params,
    /// Edges and segments per edge the index buffer holds.
    indexed: (u32, u32),
}

impl Bundler {
    /// Most edges one bundle can hold on this device (the offsets buffer is the largest).
    pub fn max_edges(&self) -> usize {
        (self.max_range / (u64::from(INTERIOR) * 8)) as usize
    }

    pub fn edge_count(&self) -> u32 {
        self.edge_count
    }

    /// Segments drawn per edge now (see [`drawn_segments`]).
    pub fn drawn_segments(&self) -> u32 {
        self.segments
    }

    /// The vertex budget the next [`Bundler::set_edges`] picks the level of detail with.
    pub fn set_vertex_budget(&mut self, vertices: u64) {
        self.vertex_budget = vertices;
    }

    /// Whether the next edges given are drawn by the low-resolution edge pass (their level of
    /// detail follows [`walked_segments`]) or as ribbons ([`drawn_segments`]).
    pub fn set_walked(&mut self, walked: bool) {
        self.walked = walked;
    }

    fn slot_name(binding: u32) -> &'static str {
        [
            "bundle edges",
            "bundle values",
            "bundle offsets",
            "bundle groups",
            "bundle splat grid",
            "bundle blurred grid",
            "bundle density grid",
            "bundle params",
            "bundle highlight list",
            "bundle curves readback",
            "bundle drawn points",
        ][binding as usize]
    }

    /// The layout of the bundler's set (the low-resolution edge pass reads its buffers).
    pub fn set_layout(&self) -> vk::DescriptorSetLayout {
        self.set_layout
    }

    /// The bundler's set: the edges, values, groups, params and drawn points among others.
    pub fn set(&self) -> vk::DescriptorSet {
        self.set
    }

    /// Whether there are edges to draw.
    pub fn has_edges(&self) -> bool {
        self.edge_count > 0
    }

    /// Asks for `work` (a full recompute wins over an incremental update).
    pub fn request(&self, work: Work) {
        let mut p = self.pending.get();
        p.work = match (p.work, work) {
            (Some(Work::Full), _) | (_, Work::Full) => Some(Work::Full),
            _ => Some(Work::Incremental),
        };
        self.pending.set(p);
    }

    /// Takes what must be done before the next draw (the caller records it).
    pub fn take_pending(&self) -> Pending {
        self.pending.take()
    }

    /// Whether iterations of an earlier recompute or update are still to run.
    pub fn unfinished(&self) -> bool {
        !self.rest.borrow().0.is_empty()
    }

    fn buffer(&self, binding: u32) -> vk::Buffer {
        self.buffers.slots[binding as usize]
            .as_ref()
            .map_or(vk::Buffer::null(), |b| b.handle)
    }

    /// # Safety
    /// The GPU must be done with everything here; `device` and `allocator` are the ones used.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        let d = &device.device;
        // SAFETY: per the contract; null handles are ignored.
        unsafe {
            let Buffers {
                slots,
                staging,
                indices,
            } = &mut self.buffers;
            for b in slots.iter_mut().chain([staging, indices]) {
                if let Some(mut b) = b.take() {
                    b.destroy(device, allocator);
                }
            }
            for p in [
                self.splat,
                self.blur_x,
                self.blur_y,
                self.advect,
                self.curve,
                self.points,
            ]
            .iter()
            .chain(&self.draw)
            .chain(&self.highlight)
            {
                d.destroy_pipeline(*p, None);
            }
            d.destroy_descriptor_pool(self.pool, None);
            d.destroy_pipeline_layout(self.compute_layout, None);
            d.destroy_pipeline_layout(self.draw_layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
        }
        *self = Bundler::default();
    }
}
