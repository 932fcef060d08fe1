#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// One invocation per interior point: adds its weight, bilinearly, into its slice's grid.

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
    // Cell centers are at i + 0.5.
    vec2 c = clamp(at - 0.5, vec2(0.0), vec2(float(side) - 1.001));
    uvec2 i0 = uvec2(floor(c));
    vec2 f = c - vec2(i0);
    uvec2 i1 = min(i0 + 1u, uvec2(side - 1u));
    uint slice = g.grid.x + (k - 1u) * side * side;
    uint w00 = uint(weight * (1.0 - f.x) * (1.0 - f.y) + 0.5);
    uint w10 = uint(weight * f.x * (1.0 - f.y) + 0.5);
    uint w01 = uint(weight * (1.0 - f.x) * f.y + 0.5);
    uint w11 = uint(weight * f.x * f.y + 0.5);
    atomicAdd(splat[slice + i0.y * side + i0.x], w00);
    atomicAdd(splat[slice + i0.y * side + i1.x], w10);
    atomicAdd(splat[slice + i1.y * side + i0.x], w01);
    atomicAdd(splat[slice + i1.y * side + i1.x], w11);
}
