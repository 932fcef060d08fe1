#version 450
#extension GL_GOOGLE_include_directive : require
#include "edges_pass.glsl"

// The composite's geometry (src/gfx/edge_pass.rs): one quad per tile of the low-resolution light
// (instance = tile, 6 vertices), in full-resolution pixels, for one layer at a time (no multiview:
// lavapipe draws every view of such a draw into the first layer). A tile is drawn when it or a
// neighbour is lit (its pixels near the border read the neighbour's light when filtering);
// others collapse to a point and draw nothing.

layout(push_constant) uniform Composite {
    int layer;
} composite;

const vec2 CORNERS[6] = vec2[](
    vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(1.0, 1.0),
    vec2(0.0, 0.0), vec2(1.0, 1.0), vec2(0.0, 1.0));

bool lit_at(ivec2 t) {
    if (any(lessThan(t, ivec2(0))) || any(greaterThanEqual(t, frame.tiles))) {
        return false;
    }
    return lit[(composite.layer * frame.tiles.y + t.y) * frame.tiles.x + t.x] != 0u;
}

void main() {
    int instance = gl_InstanceIndex;
    ivec2 t = ivec2(instance % frame.tiles.x, instance / frame.tiles.x);
    bool near_light = false;
    for (int dy = -1; dy <= 1; dy++) {
        for (int dx = -1; dx <= 1; dx++) {
            near_light = near_light || lit_at(t + ivec2(dx, dy));
        }
    }
    vec2 tile_pixels = vec2(TILE * frame.scale);
    vec2 corner = min((vec2(t) + CORNERS[gl_VertexIndex % 6]) * tile_pixels, vec2(frame.full));
    vec2 ndc = corner / vec2(frame.full) * 2.0 - 1.0;
    gl_Position = near_light ? vec4(ndc, 0.0, 1.0) : vec4(2.0, 2.0, 2.0, 1.0);
}
