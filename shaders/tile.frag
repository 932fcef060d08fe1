#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "colormap.glsl"

layout(location = 0) in vec2 in_uv;
layout(location = 1) flat in uint in_tile;
layout(location = 0) out vec4 out_color;

void main() {
    Tile t = tiles[in_tile];
    // Nearest lookup: each neuron is one crisp cell.
    uint x = min(uint(in_uv.x * float(t.w)), t.w - 1u);
    uint y = min(uint(in_uv.y * float(t.h)), t.h - 1u);
    uint i = t.offset + y * t.w + x;
    vec3 srgb;
    if (t.colormap == COLORMAP_SOLID) {
        srgb = unpack_srgb(t.offset);
    } else if (t.colormap == COLORMAP_RGB) {
        uint plane = t.h * t.w;
        srgb = clamp(vec3(activations.values[i], activations.values[i + plane],
                          activations.values[i + 2u * plane]) * t.scale, 0.0, 1.0);
    } else {
        srgb = colormap(t.colormap, activations.values[i], t.scale);
    }
    out_color = vec4(to_linear(srgb), 1.0);
}
