#version 450
#extension GL_GOOGLE_include_directive : require
#define WRITE_TILES
#include "edges_pass.glsl"

// Marks the tiles of the low-resolution light that have any (one workgroup per tile and view,
// one invocation per pixel), so the composite draws only those and their neighbours. Separate
// from the walk: marking there, every edge through a bundle would store to the same few words.

layout(local_size_x = TILE, local_size_y = TILE) in;

shared uint any_light;

void main() {
    uint view = gl_WorkGroupID.z;
    ivec2 tile = ivec2(gl_WorkGroupID.xy);
    if (gl_LocalInvocationIndex == 0u) {
        any_light = 0u;
    }
    barrier();
    ivec2 p = tile * TILE + ivec2(gl_LocalInvocationID.xy);
    if (all(lessThan(p, frame.low))) {
        uint index = low_index(view, p) * 2u;
        if ((light[index] | light[index + 1u]) != 0u) {
            atomicOr(any_light, 1u);
        }
    }
    barrier();
    if (gl_LocalInvocationIndex == 0u) {
        lit[(view * uint(frame.tiles.y) + uint(tile.y)) * uint(frame.tiles.x) + uint(tile.x)] = any_light;
    }
}
