#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "colormap.glsl"

// 36 vertices (6 faces × 2 triangles) of the unit cube, generated from gl_VertexIndex.
const vec3 CORNERS[8] = vec3[](
    vec3(-0.5, -0.5, -0.5), vec3(0.5, -0.5, -0.5), vec3(0.5, 0.5, -0.5), vec3(-0.5, 0.5, -0.5),
    vec3(-0.5, -0.5, 0.5), vec3(0.5, -0.5, 0.5), vec3(0.5, 0.5, 0.5), vec3(-0.5, 0.5, 0.5));
// Faces in the order +Z, -Z, +X, -X, +Y, -Y.
const uint INDICES[36] = uint[](
    4u, 5u, 6u, 4u, 6u, 7u,
    1u, 0u, 3u, 1u, 3u, 2u,
    5u, 1u, 2u, 5u, 2u, 6u,
    0u, 4u, 7u, 0u, 7u, 3u,
    7u, 6u, 2u, 7u, 2u, 3u,
    0u, 1u, 5u, 0u, 5u, 4u);
// A fixed per-face brightness so cubes read as solids; the +Z face (toward the viewer) is exact.
const float SHADE[6] = float[](1.0, 0.6, 0.8, 0.8, 0.9, 0.7);

layout(location = 0) flat out vec3 out_color;

void main() {
    Cube c = cubes[gl_InstanceIndex];
    vec3 corner = CORNERS[INDICES[gl_VertexIndex]];
    vec3 srgb = c.colormap == COLORMAP_SOLID ? unpack_srgb(c.value)
                                             : colormap(c.colormap, activations.values[c.value], c.scale);
    out_color = to_linear(srgb) * SHADE[gl_VertexIndex / 6];
    vec3 world = c.center_size.xyz + corner * c.center_size.w;
    gl_Position = views.clip_from_world[gl_ViewIndex] * vec4(world, 1.0);
}
