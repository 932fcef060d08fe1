#version 450
#extension GL_EXT_multiview : require
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"

// Bundled edges as camera-facing ribbons, from the points bundle_curve.comp wrote (params.segments
// segments per edge, at the current strength), in one indexed draw: the vertex index (the index
// buffer makes two triangles per segment) picks the edge (or, for the highlight, the entry of the
// highlight list), its point and the side. Each point's two corners, either side of it across the
// curve's tangent there and the line of sight, are shaded once and shared by the segments either
// side.

layout(constant_id = 0) const bool HIGHLIGHT = false;

layout(push_constant) uniform Views {
    mat4 clip_from_world[2];
} views;

layout(std430, set = 0, binding = 8) readonly buffer Highlight { uint highlighted[]; };
// edge * (params.segments + 1) + j: written by bundle_curve.comp (DRAW).
layout(std430, set = 0, binding = 10) readonly buffer Points { vec4 points[]; };

layout(location = 0) out vec4 out_color;

void main() {
    uint segments = params.segments;
    uint per_edge = 2u * (segments + 1u);
    // 2 vertices per point (from the index buffer): side −1, then +1.
    uint v = uint(gl_VertexIndex);
    uint slot = v / per_edge;
    uint j = (v % per_edge) / 2u;
    float side = (v & 1u) == 0u ? -1.0 : 1.0;
    uint edge = HIGHLIGHT ? highlighted[slot] : slot;
    Group g = groups[edge_group(edges[edge])];
    float v_edge = values[edge];
    float share = clamp(abs(v_edge) * g.e1.w, 0.0, 1.0);
    bool hidden = isnan(share) || share < params.threshold;
    uint base = edge * (segments + 1u);
    vec3 at = points[base + j].xyz;
    vec3 tangent = points[base + min(j + 1u, segments)].xyz - points[base + (j == 0u ? 0u : j - 1u)].xyz;
    mat4 clip_from_world = views.clip_from_world[gl_ViewIndex];
    vec3 across = cross(tangent, at - eye_position(clip_from_world));
    float len = length(across);
    across = len > 1e-12 ? across / len : vec3(0.0, 1.0, 0.0);
    vec3 rgb = (v_edge < 0.0 ? params.negative : params.positive).rgb;
    float width = params.width * (HIGHLIGHT ? 2.5 : 1.0);
    // Premultiplied for additive blending; the highlight is opaque.
    float alpha = HIGHLIGHT ? 1.0 : clamp(share * g.e2.w * params.opacity, 0.0, 1.0);
    // Hidden: every vertex at one point outside the view, so nothing is drawn.
    out_color = hidden ? vec4(0.0) : vec4(rgb * alpha, alpha);
    gl_Position = hidden ? vec4(2.0, 2.0, 2.0, 1.0) : clip_from_world * vec4(at + across * (0.5 * width * side), 1.0);
}
