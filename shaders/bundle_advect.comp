#version 450
#extension GL_GOOGLE_include_directive : require
#define WRITE_OFFSETS
#include "bundle.glsl"

// One invocation per edge: each interior point climbs its slice's density a step of
// `step_cells` cells along the gradient (normalized, so the step is the same in dense and sparse
// places), then the curve is smoothed: each point moves `smoothing` of the way to the mean of its
// neighbours (the endpoints stay where they are).

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 6) readonly buffer Density { float density[]; };

layout(push_constant) uniform Pass {
    uint edge_count;
    uint cells;
    float sigma;
    float step_cells;
    float smoothing;
} pass;

// The gradient (per cell) of the bilinear interpolation of slice `slice`'s density (first cell)
// at grid position `at` (cell centers at i + 0.5).
vec2 density_gradient(uint slice, uint side, vec2 at) {
    vec2 c = clamp(at - 0.5, vec2(0.0), vec2(float(side) - 1.0));
    uvec2 i0 = min(uvec2(floor(c)), uvec2(side - 2u));
    uvec2 i1 = i0 + 1u;
    vec2 f = c - vec2(i0);
    float d00 = density[slice + i0.y * side + i0.x];
    float d10 = density[slice + i0.y * side + i1.x];
    float d01 = density[slice + i1.y * side + i0.x];
    float d11 = density[slice + i1.y * side + i1.x];
    return vec2(mix(d10 - d00, d11 - d01, f.y), mix(d01 - d00, d11 - d10, f.x));
}

void main() {
    uint edge = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (edge >= pass.edge_count) {
        return;
    }
    Edge e = edges[edge];
    Group g = groups[edge_group(e)];
    uint side = g.grid.y;
    float cell = g.origin.w;
    vec2 p[SEGMENTS + 1u];
    p[0] = vec2(0.0);
    p[SEGMENTS] = vec2(0.0);
    for (uint k = 1u; k < SEGMENTS; k++) {
        vec2 o = offsets[edge * INTERIOR + k - 1u];
        vec3 rel = straight_point(e, k) - g.origin.xyz;
        vec2 at = (vec2(dot(rel, g.e1.xyz), dot(rel, g.e2.xyz)) + o) / cell;
        uint slice = g.grid.x + (k - 1u) * side * side;
        vec2 grad = density_gradient(slice, side, at);
        float len = length(grad);
        // Where the density is flat (no neighbours near) the step shrinks with the gradient.
        vec2 dir = grad / max(len, 1e-4);
        p[k] = o + dir * pass.step_cells * cell;
    }
    vec2 prev = p[0];
    for (uint k = 1u; k < SEGMENTS; k++) {
        vec2 here = p[k];
        vec2 smoothed = mix(here, 0.5 * (prev + p[k + 1u]), pass.smoothing);
        prev = here;
        offsets[edge * INTERIOR + k - 1u] = smoothed;
    }
}
