#version 450
#extension GL_GOOGLE_include_directive : require
#define WRITE_NEAR
#include "edges_pass.glsl"

// The depth the walk tests the edges against, at low resolution: for each pixel the nearest scene
// depth over the full-resolution pixels it covers, so an edge is hidden wherever any of them hides
// it (conservative at block borders, and a small buffer the walk reads from cache instead of the
// full-resolution depth).

layout(local_size_x = 8, local_size_y = 8) in;

layout(set = 1, binding = 0) uniform sampler2DArray scene_depth;

void main() {
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    uint view = gl_GlobalInvocationID.z;
    if (any(greaterThanEqual(p, frame.low))) {
        return;
    }
    ivec2 first = p * frame.scale;
    ivec2 last = min(first + frame.scale, frame.full) - 1;
    float nearest = 1.0;
    for (int y = first.y; y <= last.y; y++) {
        for (int x = first.x; x <= last.x; x++) {
            nearest = min(nearest, texelFetch(scene_depth, ivec3(x, y, int(view)), 0).r);
        }
    }
    near[low_index(view, p)] = nearest;
}
