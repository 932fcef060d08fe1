#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "colormap.glsl"

// A ribbon of two triangles per segment: x runs from a (0) to b (1), y across (-1..1).
const vec2 CORNERS[6] = vec2[](
    vec2(0.0, -1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
    vec2(0.0, -1.0), vec2(1.0, 1.0), vec2(0.0, 1.0));

layout(location = 0) flat out vec3 out_color;

void main() {
    Line l = lines[gl_InstanceIndex];
    vec2 corner = CORNERS[gl_VertexIndex];
    mat4 clip_from_world = views.clip_from_world[gl_ViewIndex];
    vec3 along = l.b.xyz - l.a.xyz;
    vec3 at = l.a.xyz + along * corner.x;
    // Across the segment and the line of sight, so the ribbon faces this eye.
    vec3 across = cross(along, at - eye_position(clip_from_world));
    float len = length(across);
    across = len > 1e-12 ? across / len : vec3(0.0, 1.0, 0.0);
    out_color = to_linear(l.color.rgb);
    gl_Position = clip_from_world * vec4(at + across * (0.5 * l.a.w * corner.y), 1.0);
}
