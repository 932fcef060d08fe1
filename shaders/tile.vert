#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Two triangles of the unit quad, generated from gl_VertexIndex: no vertex buffer.
const vec2 CORNERS[6] = vec2[](
    vec2(-0.5, -0.5), vec2(0.5, -0.5), vec2(0.5, 0.5),
    vec2(-0.5, -0.5), vec2(0.5, 0.5), vec2(-0.5, 0.5));

layout(location = 0) out vec2 out_uv;
layout(location = 1) flat out uint out_tile;

void main() {
    vec2 corner = CORNERS[gl_VertexIndex];
    // Row 0 of the map is at the top of the tile.
    out_uv = vec2(corner.x + 0.5, 0.5 - corner.y);
    out_tile = gl_InstanceIndex;
    gl_Position = views.clip_from_world[gl_ViewIndex] * tiles[gl_InstanceIndex].world_from_tile
        * vec4(corner, 0.0, 1.0);
}
