#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(location = 0) in vec2 in_uv;
layout(location = 1) flat in vec4 in_color;
layout(location = 0) out vec4 out_color;

void main() {
    float coverage = texture(glyph_atlas, vec3(in_uv, 0.0)).r;
    // Fully transparent texels would still write depth-tested color; drop them.
    if (coverage < 0.02) {
        discard;
    }
    out_color = vec4(in_color.rgb, in_color.a * coverage);
}
