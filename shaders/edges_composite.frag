#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"
#include "edges_pass.glsl"

// The bundled edges' light, summed at low resolution (shaders/edges_raster.comp), added to one
// layer of the scene: each full-resolution pixel reads the low-resolution sums at its own centre,
// bilinearly, in the edges' colours.

layout(push_constant) uniform Composite {
    int layer;
} composite;

layout(location = 0) out vec4 out_color;

vec2 light_at(ivec2 p) {
    p = clamp(p, ivec2(0), frame.low - 1);
    uint index = low_index(uint(composite.layer), p) * 2u;
    return vec2(light[index], light[index + 1u]) / LIGHT_ONE;
}

void main() {
    vec2 low = gl_FragCoord.xy / float(frame.scale) - 0.5;
    ivec2 i = ivec2(floor(low));
    vec2 f = low - vec2(i);
    vec2 sum = mix(
        mix(light_at(i), light_at(i + ivec2(1, 0)), f.x),
        mix(light_at(i + ivec2(0, 1)), light_at(i + ivec2(1, 1)), f.x),
        f.y);
    // No blend where no edge passes (most of the image, on cards where blending is the cost).
    if (sum.x <= 0.0 && sum.y <= 0.0) {
        discard;
    }
    out_color = vec4(sum.x * params.positive.rgb + sum.y * params.negative.rgb, 0.0);
}
