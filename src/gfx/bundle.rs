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

use std::cell::Cell;

use ash::vk;
use bytemuck::{Pod, Zeroable};
use glam::Vec3;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;

use super::colormap::{NEGATIVE_COLOR, POSITIVE_COLOR, srgb_to_linear};
use super::device::Device;
use super::pipeline::{Blend, SCENE_PASS, ShaderModules, compute_pipeline, graphics_pipeline, groups_for};
use super::resources::Buffer;
use super::{GfxError, Result, VkContext};

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

    /// Builds the layouts, pipelines and empty buffers.
    pub fn init(&mut self, device: &Device, allocator: &mut Allocator) -> Result<()> {
        let d = &device.device;
        // SAFETY: the physical device belongs to this instance.
        self.max_range = u64::from(unsafe {
            device
                .instance
                .get_physical_device_properties(device.physical)
                .limits
                .max_storage_buffer_range
        });
        // FRAGMENT: the edge pass's composite reads the params.
        let stages = vk::ShaderStageFlags::COMPUTE | vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
        let bindings: Vec<_> = (0..BINDINGS)
            .map(|b| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(stages)
            })
            .collect();
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: valid create infos on a live device (every call in this function).
        self.set_layout = unsafe { d.create_descriptor_set_layout(&info, None) }.vk("create bundle set layout")?;
        device.name_object(self.set_layout, "bundle set layout");
        let set_layouts = [self.set_layout];
        let layout = |stage: vk::ShaderStageFlags, push_bytes: u32, name: &str| -> Result<vk::PipelineLayout> {
            let push = [vk::PushConstantRange::default().stage_flags(stage).size(push_bytes)];
            let info = vk::PipelineLayoutCreateInfo::default()
                .set_layouts(&set_layouts)
                .push_constant_ranges(&push);
            // SAFETY: as above.
            let layout = unsafe { d.create_pipeline_layout(&info, None) }.vk("create bundle pipeline layout")?;
            device.name_object(layout, name);
            Ok(layout)
        };
        self.compute_layout = layout(
            vk::ShaderStageFlags::COMPUTE,
            size_of::<Pass>() as u32,
            "bundle compute layout",
        )?;
        // The same push constants as the scene's pipelines (clip_from_world[2]), so they stay
        // valid across the switch between the two layouts.
        self.draw_layout = layout(
            vk::ShaderStageFlags::VERTEX,
            super::pipeline::PUSH_CONSTANT_BYTES,
            "bundle draw layout",
        )?;
        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(BINDINGS)];
        let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
        // SAFETY: as above.
        self.pool = unsafe { d.create_descriptor_pool(&info, None) }.vk("create bundle descriptor pool")?;
        device.name_object(self.pool, "bundle descriptor pool");
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.pool)
            .set_layouts(&set_layouts);
        // SAFETY: as above.
        self.set = unsafe { d.allocate_descriptor_sets(&info) }.vk("allocate bundle descriptor set")?[0];
        device.name_object(self.set, "bundle descriptor set");
        self.build_pipelines(device)?;
        for b in 0..BINDINGS {
            self.ensure(device, allocator, b, 256)?;
        }
        self.segments = SEGMENTS;
        self.vertex_budget = VERTEX_BUDGET;
        self.write_params(&BundleStyle::default())
    }

    /// Makes the index buffer hold at least `edges` edges of `segments` segments. Only between
    /// frames: nothing may be in flight.
    fn ensure_indices(&mut self, device: &Device, allocator: &mut Allocator, edges: u32, segments: u32) -> Result<()> {
        if self.indexed.1 == segments && self.indexed.0 >= edges && self.buffers.indices.is_some() {
            return Ok(());
        }
        // Room to grow (a power of two), as for the other buffers.
        let edges = edges.max(1).next_power_of_two();
        let per_edge = vertices_per_edge(segments) as u32;
        let mut indices: Vec<u32> = Vec::with_capacity((u64::from(edges) * indices_per_edge(segments)) as usize);
        for e in 0..edges {
            for j in 0..segments {
                // Point j's corners are 2j (side −1) and 2j + 1 (side +1).
                let v = e * per_edge + 2 * j;
                indices.extend([v, v + 2, v + 3, v, v + 3, v + 1]);
            }
        }
        if let Some(mut old) = self.buffers.indices.take() {
            // SAFETY: nothing is in flight (the caller's contract).
            unsafe { old.destroy(device, allocator) };
        }
        self.indexed = (0, 0);
        let mut buffer = Buffer::new(
            device,
            allocator,
            "bundle ribbon indices",
            (indices.len() * 4) as u64,
            vk::BufferUsageFlags::INDEX_BUFFER,
            MemoryLocation::CpuToGpu,
        )?;
        let written = buffer.write(bytemuck::cast_slice(&indices));
        self.buffers.indices = Some(buffer);
        written?;
        self.indexed = (edges, segments);
        Ok(())
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

    fn build_pipelines(&mut self, device: &Device) -> Result<()> {
        let shaders = ShaderModules::new(
            device,
            [
                (
                    "bundle_splat.comp",
                    &include_bytes!("../../shaders/bundle_splat.comp.spv")[..],
                ),
                (
                    "bundle_blur.comp",
                    &include_bytes!("../../shaders/bundle_blur.comp.spv")[..],
                ),
                (
                    "bundle_advect.comp",
                    &include_bytes!("../../shaders/bundle_advect.comp.spv")[..],
                ),
                (
                    "bundle_curve.comp",
                    &include_bytes!("../../shaders/bundle_curve.comp.spv")[..],
                ),
                ("bundle.vert", &include_bytes!("../../shaders/bundle.vert.spv")[..]),
                ("bundle.frag", &include_bytes!("../../shaders/bundle.frag.spv")[..]),
            ],
        )?;
        let modules = shaders.modules;
        let layout = self.compute_layout;
        self.splat = compute_pipeline(device, layout, modules[0], &[], "bundle splat")?;
        // SIDE (u32) and ALONG_Y (a 32-bit bool).
        let spec = |along_y: u32| [GRID, along_y];
        self.blur_x = compute_pipeline(device, layout, modules[1], &spec(0), "bundle blur x")?;
        self.blur_y = compute_pipeline(device, layout, modules[1], &spec(1), "bundle blur y")?;
        self.advect = compute_pipeline(device, layout, modules[2], &[], "bundle advect")?;
        // DRAW (a 32-bit bool).
        self.curve = compute_pipeline(device, layout, modules[3], &[0], "bundle curves")?;
        self.points = compute_pipeline(device, layout, modules[3], &[1], "bundle drawn points")?;
        for views in 1..=2u32 {
            let i = views as usize - 1;
            let shaders = [modules[4], modules[5]];
            self.draw[i] = self.graphics(device, shaders, views, false)?;
            self.highlight[i] = self.graphics(device, shaders, views, true)?;
        }
        Ok(())
    }

    fn graphics(
        &self,
        device: &Device,
        [vert, frag]: [vk::ShaderModule; 2],
        views: u32,
        highlight: bool,
    ) -> Result<vk::Pipeline> {
        // HIGHLIGHT (a 32-bit bool).
        let entries = [vk::SpecializationMapEntry::default().constant_id(0).offset(0).size(4)];
        let data: [u8; 4] = bytemuck::cast(u32::from(highlight));
        let specialization = vk::SpecializationInfo::default().map_entries(&entries).data(&data);
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(vert)
                .name(c"main")
                .specialization_info(&specialization),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(frag)
                .name(c"main"),
        ];
        // Both are tested against the scene's depth; only the (opaque) highlight writes it.
        let (blend, what) = if highlight {
            (Blend::Opaque, "highlighted edges")
        } else {
            (Blend::Additive, "bundled edges")
        };
        graphics_pipeline(device, self.draw_layout, &stages, (SCENE_PASS, views), blend, what)
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

    /// Makes binding `binding`'s buffer at least `bytes` long (a new one, bound to the set, when
    /// it is shorter). Only between frames: nothing may be in flight.
    fn ensure(&mut self, device: &Device, allocator: &mut Allocator, binding: u32, bytes: u64) -> Result<()> {
        if bytes > self.max_range {
            return Err(GfxError::Invalid(format!(
                "{} would need {bytes} bytes; this device's storage buffers hold at most {}",
                Self::slot_name(binding),
                self.max_range
            )));
        }
        let slot = &mut self.buffers.slots[binding as usize];
        if slot.as_ref().is_some_and(|b| b.size >= bytes) {
            return Ok(());
        }
        let size = bytes.next_power_of_two().max(256).min(self.max_range.max(256));
        let (location, usage) = match binding {
            // Written by the host between frames.
            B_PARAMS | B_HIGHLIGHT => (MemoryLocation::CpuToGpu, vk::BufferUsageFlags::empty()),
            // Written by the curve pass, or a copy of the drawn points (for tests and tools).
            B_CURVES => (MemoryLocation::GpuToCpu, vk::BufferUsageFlags::TRANSFER_DST),
            // Read back by a copy (see Bundler::record_drawn_readback).
            B_POINTS => (MemoryLocation::GpuOnly, vk::BufferUsageFlags::TRANSFER_SRC),
            // Filled by copies from the staging buffer, or cleared by fills, and the shaders.
            _ => (MemoryLocation::GpuOnly, vk::BufferUsageFlags::TRANSFER_DST),
        };
        let buffer = Buffer::new(
            device,
            allocator,
            Self::slot_name(binding),
            size,
            vk::BufferUsageFlags::STORAGE_BUFFER | usage,
            location,
        )?;
        let infos = [vk::DescriptorBufferInfo::default()
            .buffer(buffer.handle)
            .range(vk::WHOLE_SIZE)];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(self.set)
            .dst_binding(binding)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&infos);
        // SAFETY: nothing is in flight (the caller's contract), so neither the set nor the old
        // buffer is in use.
        unsafe {
            device.device.update_descriptor_sets(&[write], &[]);
            if let Some(mut old) = slot.take() {
                old.destroy(device, allocator);
            }
        }
        *slot = Some(buffer);
        Ok(())
    }

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
    fn stage(&mut self, device: &Device, allocator: &mut Allocator, parts: &[&[u8]]) -> Result<()> {
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
    fn upload_params(&mut self) -> Result<()> {
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

    /// Records `pending`: the staged copies, then the bundling work, with barriers so the draw's
    /// vertex shader (and a later compute pass) sees the result. With `timestamps`, writes query
    /// 0 before and query 1 after.
    ///
    /// # Safety
    /// `cb` is recording outside a render pass on this bundler's device; the buffers are not
    /// changed until it has executed.
    /// At most `budget` iterations run (`None`: all); the rest wait for the next call.
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
    unsafe fn dispatch_curve_points(
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

    unsafe fn record_points(&self, device: &Device, cb: vk::CommandBuffer) {
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

    fn read_curves(&self, points: u32) -> Result<Vec<Vec<Vec3>>> {
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
