#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// One invocation per curve point: the points at params.strength, `pass.segments` segments per
// edge (every SEGMENTS / segments-th point). DRAW: into the buffer the draw reads (after bundling
// or a change of strength, so the vertex shader only reads its point and neighbours); otherwise
// into the host-visible readback (all SEGMENTS + 1 points).

layout(constant_id = 0) const bool DRAW = false;

layout(local_size_x = 256) in;

layout(std430, set = 0, binding = 9) writeonly buffer Curves { vec4 curves[]; };
layout(std430, set = 0, binding = 10) writeonly buffer Drawn { vec4 drawn[]; };

layout(push_constant) uniform Pass {
    uint edge_count;
    uint segments;        // (the bundling passes' cells)
    float sigma;
    float step_cells;
    float smoothing;
} pass;

void main() {
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint points = pass.segments + 1u;
    if (id >= pass.edge_count * points) {
        return;
    }
    uint edge = id / points;
    uint k = (id % points) * (SEGMENTS / pass.segments);
    vec4 p = vec4(curve_point(edge, k, params.strength), 1.0);
    if (DRAW) {
        drawn[id] = p;
    } else {
        curves[id] = p;
    }
}
