#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "colormap.glsl"

// The quad's corners as (along right, along up).
const vec2 CORNERS[6] = vec2[](
    vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(1.0, 1.0),
    vec2(0.0, 0.0), vec2(1.0, 1.0), vec2(0.0, 1.0));

layout(location = 0) out vec2 out_uv;
layout(location = 1) flat out vec4 out_color;

void main() {
    Glyph g = glyphs[gl_InstanceIndex];
    vec2 corner = CORNERS[gl_VertexIndex];
    // The atlas's rows run top to bottom.
    out_uv = vec2(mix(g.uv.x, g.uv.z, corner.x), mix(g.uv.w, g.uv.y, corner.y));
    out_color = vec4(to_linear(g.color.rgb), g.color.a);
    // From behind the label's plane the glyph is mirrored about the line's centre (right.w says
    // where its left edge goes), so text reads left to right from either side.
    vec3 eye = eye_position(views.clip_from_world[gl_ViewIndex]);
    bool behind = dot(cross(g.right.xyz, g.up.xyz), eye - g.origin.xyz) < 0.0;
    vec3 origin = behind ? g.origin.xyz + g.right.xyz * g.right.w : g.origin.xyz;
    vec3 right = behind ? -g.right.xyz : g.right.xyz;
    vec3 world = origin + right * corner.x + g.up.xyz * corner.y;
    gl_Position = views.clip_from_world[gl_ViewIndex] * vec4(world, 1.0);
}
