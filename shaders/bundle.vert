#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// Bundled edges as camera-facing ribbons: instance = edge (or, for the highlight, an entry of the
// highlight list), vertices 6 per segment. The ribbon turns with the curve's tangent at each
// point, so consecutive segments share their corners.

layout(constant_id = 0) const bool HIGHLIGHT = false;

layout(push_constant) uniform Views {
    mat4 clip_from_world[2];
} views;

layout(std430, set = 0, binding = 8) readonly buffer Highlight { uint highlighted[]; };

layout(location = 0) out vec4 out_color;

const vec2 CORNERS[6] = vec2[](
    vec2(0.0, -1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
    vec2(0.0, -1.0), vec2(1.0, 1.0), vec2(0.0, 1.0));

vec3 eye_position(mat4 clip_from_world) {
    vec4 e = inverse(clip_from_world) * vec4(0.0, 0.0, 1.0, 0.0);
    return e.xyz / e.w;
}

void main() {
    uint edge = HIGHLIGHT ? highlighted[gl_InstanceIndex] : uint(gl_InstanceIndex);
    uint segment = uint(gl_VertexIndex) / 6u;
    vec2 corner = CORNERS[uint(gl_VertexIndex) % 6u];
    Edge e = edges[edge];
    Group g = groups[edge_group(e)];
    float v = values[edge];
    float share = clamp(abs(v) * g.e1.w, 0.0, 1.0);
    if (isnan(share) || share < params.threshold) {
        // Hidden: every vertex at one point outside the view, so nothing is drawn.
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        out_color = vec4(0.0);
        return;
    }
    uint k = segment + uint(corner.x);
    float s = params.strength;
    vec3 at = curve_point(edge, k, s);
    vec3 tangent = curve_point(edge, min(k + 1u, SEGMENTS), s) - curve_point(edge, k == 0u ? 0u : k - 1u, s);
    mat4 clip_from_world = views.clip_from_world[gl_ViewIndex];
    vec3 across = cross(tangent, at - eye_position(clip_from_world));
    float len = length(across);
    across = len > 1e-12 ? across / len : vec3(0.0, 1.0, 0.0);
    vec3 rgb = (v < 0.0 ? params.negative : params.positive).rgb;
    float width = params.width * (HIGHLIGHT ? 2.5 : 1.0);
    // Premultiplied for additive blending; the highlight is opaque.
    float alpha = HIGHLIGHT ? 1.0 : clamp(share * g.e2.w * params.opacity, 0.0, 1.0);
    out_color = vec4(rgb * alpha, alpha);
    gl_Position = clip_from_world * vec4(at + across * (0.5 * width * corner.y), 1.0);
}
