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
    vec3 world = g.origin.xyz + g.right.xyz * corner.x + g.up.xyz * corner.y;
    gl_Position = views.clip_from_world[gl_ViewIndex] * vec4(world, 1.0);
}
