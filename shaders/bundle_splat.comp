#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// One invocation per interior point: adds its weight into its cell of its slice's grid.

layout(local_size_x = 256) in;

layout(std430, set = 0, binding = 4) buffer Splat { uint splat[]; };

layout(push_constant) uniform Pass {
    uint edge_count;
    uint cells;
    float sigma;
    float step_cells;
    float smoothing;
} pass;

void main() {
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= pass.edge_count * INTERIOR) {
        return;
    }
    uint edge = id / INTERIOR;
    uint k = id % INTERIOR + 1u;
    Edge e = edges[edge];
    Group g = groups[edge_group(e)];
    float v = values[edge];
    // Weight in fixed point: 1..SPLAT_ONE, every point counts a little (NaN weights count as 1).
    float m = clamp(abs(v) * g.e1.w, 0.0, 1.0);
    float weight = 1.0 + (SPLAT_ONE - 1.0) * (isnan(m) ? 0.0 : m);
    uint side = g.grid.y;
    vec3 rel = straight_point(e, k) - g.origin.xyz;
    vec2 at = (vec2(dot(rel, g.e1.xyz), dot(rel, g.e2.xyz)) + offsets[edge * INTERIOR + k - 1u]) / g.origin.w;
    // Into the nearest cell: the blur that follows (sigma >= 1 cell) smooths the rounding away,
    // and one atomic per point instead of four keeps the pass cheap where points pile up.
    uvec2 cell = uvec2(clamp(floor(at), vec2(0.0), vec2(float(side) - 1.0)));
    uint slice = g.grid.x + (k - 1u) * side * side;
    atomicAdd(splat[slice + cell.y * side + cell.x], uint(weight + 0.5));
}
