// Declarations shared by the edge-bundling shaders (bundle_*.comp, bundle.vert); src/gfx/bundle.rs
// defines the same layouts and constants.
//
// An edge is a curve of SEGMENTS segments from a to b. Point k (t = k / SEGMENTS) is the straight
// line's point plus an offset in its group's plane (e1, e2); the endpoints (k = 0 and SEGMENTS)
// have none, so they never move. The offsets are what bundling computes; the curve drawn is the
// straight line plus `strength` times the offset, so strength can change every frame for free.
//
// Bundling is kernel density estimation edge bundling (KDEEB, Hurter et al. 2012) done per slice:
// the interior points of every edge of a group at the same k splat their weight into that slice's
// G×G density grid (integer atomics, so sums do not depend on the order edges are processed in),
// the grid is blurred with a Gaussian of sigma cells, and each point climbs the density's gradient
// a fixed step, then each curve is smoothed.

#define SEGMENTS 16u
#define INTERIOR 15u      // SEGMENTS - 1 points per edge move
#define SPLAT_ONE 1024.0  // fixed-point scale of a point's density weight (1 = the layer's strongest edge)

struct Edge {
    vec4 a;               // xyz: source end (stage meters); w: group index (uint bits)
    vec4 b;               // xyz: target end
};

struct Group {
    vec4 origin;          // xyz: the grid's corner (cell 0, 0 starts here); w: cell size (m)
    vec4 e1;              // xyz: the grid's x axis (unit); w: 1 / the group's largest |value|
    vec4 e2;              // xyz: the grid's y axis (unit); w: opacity of the group's strongest edge
    uvec4 grid;           // x: first cell of the group's slices in the grids; y: G
};

layout(std430, set = 0, binding = 0) readonly buffer Edges { Edge edges[]; };
layout(std430, set = 0, binding = 1) readonly buffer Values { float values[]; };
// edge * INTERIOR + k - 1; only the advection writes them (it defines WRITE_OFFSETS).
#ifdef WRITE_OFFSETS
layout(std430, set = 0, binding = 2) buffer Offsets { vec2 offsets[]; };
#else
layout(std430, set = 0, binding = 2) readonly buffer Offsets { vec2 offsets[]; };
#endif
layout(std430, set = 0, binding = 3) readonly buffer Groups { Group groups[]; };

// What the draw and the curve passes read (host-written between frames).
layout(std430, set = 0, binding = 7) readonly buffer Params {
    vec4 positive;        // linear color of positive edges
    vec4 negative;        // linear color of negative edges
    float strength;       // 0 straight .. 1 fully bundled
    float width;          // ribbon width (m)
    float threshold;      // edges under this fraction of their group's largest |value| are hidden
    float opacity;        // multiplies every edge's opacity
    uint edge_count;      // edges drawn
    uint highlight_count; // entries of the highlight list drawn
    uint segments;        // segments drawn per edge (a divisor of SEGMENTS: the level of detail)
    uint pad;
} params;

uint edge_group(Edge e) {
    return floatBitsToUint(e.a.w);
}

vec3 straight_point(Edge e, uint k) {
    return mix(e.a.xyz, e.b.xyz, float(k) / float(SEGMENTS));
}

vec2 point_offset(uint edge, uint k) {
    return (k == 0u || k >= SEGMENTS) ? vec2(0.0) : offsets[edge * INTERIOR + k - 1u];
}

// Point k of edge `edge` at bundling strength s.
vec3 curve_point(uint edge, uint k, float s) {
    Edge e = edges[edge];
    Group g = groups[edge_group(e)];
    vec2 o = point_offset(edge, k) * s;
    return straight_point(e, k) + o.x * g.e1.xyz + o.y * g.e2.xyz;
}

// The viewer's position: the point clip_from_world sends to x = y = w = 0 (rows 0, 1 and 3 of
// the matrix give three planes through it). Cheaper per vertex than common.glsl's inverse()
// (bundle.vert and edges_raster.comp use it).
vec3 eye_position(mat4 m) {
    vec4 r0 = vec4(m[0][0], m[1][0], m[2][0], m[3][0]);
    vec4 r1 = vec4(m[0][1], m[1][1], m[2][1], m[3][1]);
    vec4 r3 = vec4(m[0][3], m[1][3], m[2][3], m[3][3]);
    vec3 c01 = cross(r0.xyz, r1.xyz);
    vec3 c13 = cross(r1.xyz, r3.xyz);
    vec3 c30 = cross(r3.xyz, r0.xyz);
    return -(r0.w * c13 + r1.w * c30 + r3.w * c01) / dot(r0.xyz, c13);
}
