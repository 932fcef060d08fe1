#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// Bundled edges as camera-facing ribbons: instance = edge (or, for the highlight, an entry of the
// highlight list), one triangle strip of two vertices per curve point (either side of it, across
// the curve's tangent there and the line of sight).

layout(constant_id = 0) const bool HIGHLIGHT = false;

layout(push_constant) uniform Views {
    mat4 clip_from_world[2];
} views;

layout(std430, set = 0, binding = 8) readonly buffer Highlight { uint highlighted[]; };

layout(location = 0) out vec4 out_color;

// The viewer's position: the point clip_from_world sends to x = y = w = 0 (rows 0, 1 and 3 of
// the matrix give three planes through it). Cheaper per vertex than common.glsl's inverse().
vec3 eye_position(mat4 m) {
    vec4 r0 = vec4(m[0][0], m[1][0], m[2][0], m[3][0]);
    vec4 r1 = vec4(m[0][1], m[1][1], m[2][1], m[3][1]);
    vec4 r3 = vec4(m[0][3], m[1][3], m[2][3], m[3][3]);
    vec3 c01 = cross(r0.xyz, r1.xyz);
    vec3 c13 = cross(r1.xyz, r3.xyz);
    vec3 c30 = cross(r3.xyz, r0.xyz);
    return -(r0.w * c13 + r1.w * c30 + r3.w * c01) / dot(r0.xyz, c13);
}

void main() {
    uint edge = HIGHLIGHT ? highlighted[gl_InstanceIndex] : uint(gl_InstanceIndex);
    uint k = uint(gl_VertexIndex) / 2u;
    float side = (gl_VertexIndex % 2 == 0) ? -1.0 : 1.0;
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
    gl_Position = clip_from_world * vec4(at + across * (0.5 * width * side), 1.0);
}
