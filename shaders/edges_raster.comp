#version 450
#extension GL_GOOGLE_include_directive : require
#include "bundle.glsl"
#define WRITE_LIGHT
#include "edges_pass.glsl"

// The bundled edges' light at low resolution, in a compute shader: on GPUs with little raster
// hardware (the H100/H200) drawing a million thin ribbons as triangles costs what the triangles
// cost, whatever the resolution (docs/performance.md). One invocation per drawn segment and view:
// the segment is clipped to the near plane, projected, and walked one pixel at a time along its
// longer screen axis; each step adds the ribbon's light over that step (opacity × its extent
// across the step) to the two pixels across it nearest the line, split by distance (so the sum is
// the same wherever the line falls between pixel centres, and nothing flickers as it moves), or,
// for ribbons wider than a pixel, to each pixel it covers by how much; only where the scene's
// nearest depth (edges_depth.comp) is farther than the line's: at each pixel a wide ribbon
// covers, at the nearer of the two a thin one lights.

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 10) readonly buffer Points { vec4 points[]; };

// Longest walk per segment, in low-resolution pixels (a segment across the whole view is shorter).
const int MAX_STEPS = 8192;
// Widest ribbon drawn, in low-resolution pixels either side of its centre line.
const float MAX_HALF = 32.0;

// Clip-space point to low-resolution pixel coordinates (x, y) and depth (z).
vec3 to_pixels(vec4 c) {
    vec3 ndc = c.xyz / c.w;
    return vec3((ndc.xy * 0.5 + 0.5) * vec2(frame.full) / float(frame.scale), ndc.z);
}

// A hash of three numbers to [0, 1): the dither of the fixed-point rounding (so amounts smaller
// than a unit still add up on average instead of rounding to nothing).
float dither(uint a, uint b, uint c) {
    uint h = a * 747796405u + b * 2891336453u + c * 277803737u;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return float(h >> 8) / 16777216.0;
}

// Adds `amount` (at most 1: a pixel fully covered by an opaque edge) at `p`. The sums cannot
// wrap: a group's opacities add up to at most sqrt(OPACITY_EDGES × edges) (src/gfx/bundle.rs),
// 72k for the most edges a device holds, far below 2^32 / LIGHT_ONE.
// Whether the scene's nearest depth at `p` (edges_depth.comp) is nearer than the line's `z`.
bool hidden(uint view, ivec2 p, float z) {
    p = clamp(p, ivec2(0), frame.low - 1);
    return z >= near[low_index(view, p)];
}

void deposit(uint view, ivec2 p, uint channel, float amount, float noise) {
    if (amount <= 0.0 || any(lessThan(p, ivec2(0))) || any(greaterThanEqual(p, frame.low))) {
        return;
    }
    uint fixed_amount = uint(min(amount, 1.0) * LIGHT_ONE + noise);
    if (fixed_amount == 0u) {
        return;
    }
    uint index = low_index(view, p) * 2u + channel;
    atomicAdd(light[index], fixed_amount);
}

void main() {
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint view = gl_GlobalInvocationID.z;
    uint segments = params.segments;
    if (id >= params.edge_count * segments || view >= uint(frame.views)) {
        return;
    }
    // Segment-major: neighbouring invocations take the same segment of neighbouring edges (of
    // one layer pair, so mostly of one bundle), which the H200 walks faster than whole edges.
    uint edge = id % params.edge_count;
    uint j = id / params.edge_count;
    Group g = groups[edge_group(edges[edge])];
    float v_edge = values[edge];
    float share = clamp(abs(v_edge) * g.e1.w, 0.0, 1.0);
    if (isnan(share) || share < params.threshold) {
        return;
    }
    float alpha = clamp(share * g.e2.w * params.opacity, 0.0, 1.0);
    uint channel = v_edge < 0.0 ? 1u : 0u;
    uint base = edge * (segments + 1u);
    vec3 a = points[base + j].xyz;
    vec3 b = points[base + j + 1u].xyz;
    mat4 m = frame.clip_from_world[view];
    vec4 ca = m * vec4(a, 1.0);
    vec4 cb = m * vec4(b, 1.0);
    // Clipped to the near plane (z = 0 in Vulkan's clip space); [ta, tb] the part kept.
    if (ca.z < 0.0 && cb.z < 0.0) {
        return;
    }
    float ta = 0.0;
    float tb = 1.0;
    if (ca.z < 0.0) {
        ta = ca.z / (ca.z - cb.z);
        ca = mix(ca, cb, ta);
    } else if (cb.z < 0.0) {
        float t = cb.z / (cb.z - ca.z);
        tb = 1.0 - t;
        cb = mix(cb, ca, t);
    }
    if (ca.w <= 0.0 || cb.w <= 0.0) {
        return;
    }
    vec3 pa = to_pixels(ca);
    vec3 pb = to_pixels(cb);
    // The ribbon's width in low-resolution pixels, at the middle of the part kept (it faces the
    // viewer: across both the segment and the line of sight).
    vec3 mid = mix(a, b, 0.5 * (ta + tb));
    vec3 across = cross(b - a, mid - eye_position(m));
    float len = length(across);
    if (len <= 1e-12) {
        return;
    }
    vec4 cm = m * vec4(mid, 1.0);
    vec4 cs = m * vec4(mid + across / len * params.width, 1.0);
    if (cm.w <= 0.0 || cs.w <= 0.0) {
        return;
    }
    float width = length(to_pixels(cs).xy - to_pixels(cm).xy);

    vec2 d = pb.xy - pa.xy;
    bool along_x = abs(d.x) >= abs(d.y);
    // Major axis u, minor axis v.
    float u0 = along_x ? pa.x : pa.y;
    float u1 = along_x ? pb.x : pb.y;
    float v0 = along_x ? pa.y : pa.x;
    float v1 = along_x ? pb.y : pb.x;
    if (abs(u1 - u0) < 1e-6) {
        return;
    }
    float slope = (v1 - v0) / (u1 - u0);
    // Half the ribbon's extent across v in one column (a ribbon this close to the eye, wider
    // than MAX_HALF, loses the rest of its light).
    float half_v = min(0.5 * width * sqrt(1.0 + slope * slope), MAX_HALF);
    float size_u = float(along_x ? frame.low.x : frame.low.y);
    float size_v = float(along_x ? frame.low.y : frame.low.x);
    // Pixel centres k + 0.5 in [min, max): segments sharing an end do not both take it.
    float lo = max(min(u0, u1), 0.0);
    float hi = min(max(u0, u1), size_u);
    int first = int(ceil(lo - 0.5));
    int last_step = min(int(ceil(hi - 0.5)) - 1, first + MAX_STEPS - 1);
    for (int k = first; k <= last_step; k++) {
        float u = float(k) + 0.5;
        float v = v0 + slope * (u - u0);
        if (v < -half_v - 1.0 || v > size_v + half_v + 1.0) {
            continue;
        }
        float z = mix(pa.z, pb.z, (u - u0) / (u1 - u0));
        float noise = dither(id, uint(k), view);
        if (half_v <= 0.5) {
            // Narrower than a pixel: the column's light (opacity × its extent across v) split
            // between the two pixel centres nearest the line by distance.
            float amount = alpha * 2.0 * half_v;
            float below = floor(v - 0.5);
            float f = (v - 0.5) - below;
            int w0 = int(below);
            ivec2 p0 = along_x ? ivec2(k, w0) : ivec2(w0, k);
            ivec2 p1 = along_x ? ivec2(k, w0 + 1) : ivec2(w0 + 1, k);
            // Hidden or not as the pixel nearest the line is (one test a step: they are the most
            // of the walk's reads).
            if (hidden(view, f < 0.5 ? p0 : p1, z)) {
                continue;
            }
            deposit(view, p0, channel, amount * (1.0 - f), noise);
            deposit(view, p1, channel, amount * f, noise);
        } else {
            // Wider: each pixel the part of it the ribbon covers.
            int w_first = int(floor(v - half_v));
            int w_last = int(floor(v + half_v));
            for (int w = w_first; w <= w_last; w++) {
                float cover = min(float(w + 1), v + half_v) - max(float(w), v - half_v);
                ivec2 p = along_x ? ivec2(k, w) : ivec2(w, k);
                if (!hidden(view, p, z)) {
                    deposit(view, p, channel, alpha * cover, noise);
                }
            }
        }
    }
}
