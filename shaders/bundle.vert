#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// Bundled edges as camera-facing ribbons: instance = edge (or, for the highlight, an entry of the
// highlight list), two triangles per segment, each point's corners either side of it, across the
// curve's tangent there and the line of sight (so consecutive segments share their corners).

layout(constant_id = 0) const bool HIGHLIGHT = false;

layout(push_constant) uniform Views {
    mat4 clip_from_world[2];
} views;

layout(std430, set = 0, binding = 8) readonly buffer Highlight { uint highlighted[]; };

layout(location = 0) out vec4 out_color;

// Two triangles per segment: x 0 at its start point, 1 at its end; y across (-1, 1).
const vec2 CORNERS[6] = vec2[](
    vec2(0.0, -1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
    vec2(0.0, -1.0), vec2(1.0, 1.0), vec2(0.0, 1.0));

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
    vec2 corner = CORNERS[uint(gl_VertexIndex) % 6u];
    uint k = uint(gl_VertexIndex) / 6u + uint(corner.x);
    float side = corner.y;
    Edge e = edges[edge];
    Group g = groups[edge_group(e)];
    float v = values[edge];
    float share = clamp(abs(v) * g.e1.w, 0.0, 1.0);
    bool hidden = isnan(share) || share < params.threshold;
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
    // Hidden: every vertex at one point outside the view, so nothing is drawn. (Selected, not
    // branched: each output is written once, which lavapipe needs to lower multiview.)
    out_color = hidden ? vec4(0.0) : vec4(rgb * alpha, alpha);
    gl_Position = hidden ? vec4(2.0, 2.0, 2.0, 1.0) : clip_from_world * vec4(at + across * (0.5 * width * side), 1.0);
}
