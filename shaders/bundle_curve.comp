#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// One invocation per curve point: the points the draw would use at params.strength, for readback.

layout(local_size_x = 256) in;

layout(std430, set = 0, binding = 9) writeonly buffer Curves { vec4 curves[]; };

layout(push_constant) uniform Pass {
    uint edge_count;
    uint cells;
    float sigma;
    float step_cells;
    float smoothing;
} pass;

void main() {
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= pass.edge_count * (SEGMENTS + 1u)) {
        return;
    }
    uint edge = id / (SEGMENTS + 1u);
    uint k = id % (SEGMENTS + 1u);
    curves[id] = vec4(curve_point(edge, k, params.strength), 1.0);
}
