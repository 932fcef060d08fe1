#version 450
#extension GL_GOOGLE_include_directive : require

// One invocation per grid cell: a Gaussian of `sigma` cells along x (reading the splatted
// integer sums) or y (reading the x pass), within the cell's slice. Every group has G×G slices,
// so a cell's slice is cell / (G * G); G is a specialization constant.

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint SIDE = 64u;
layout(constant_id = 1) const bool ALONG_Y = false;

layout(std430, set = 0, binding = 4) readonly buffer Splat { uint splat[]; };
layout(std430, set = 0, binding = 5) buffer Blurred { float blurred_x[]; };
layout(std430, set = 0, binding = 6) buffer Density { float density[]; };

layout(push_constant) uniform Pass {
    uint edge_count;
    uint cells;
    float sigma;
    float step_cells;
    float smoothing;
} pass;

void main() {
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= pass.cells) {
        return;
    }
    uint within = id % (SIDE * SIDE);
    uint base = id - within;
    int x = int(within % SIDE);
    int y = int(within / SIDE);
    int radius = int(ceil(3.0 * pass.sigma));
    float inv = 1.0 / (2.0 * pass.sigma * pass.sigma);
    float sum = 0.0;
    float norm = 0.0;
    for (int d = -radius; d <= radius; d++) {
        float w = exp(-float(d * d) * inv);
        norm += w;
        int at = (ALONG_Y ? y : x) + d;
        if (at < 0 || at >= int(SIDE)) {
            continue;
        }
        uint cell = ALONG_Y ? base + uint(at) * SIDE + uint(x) : base + uint(y) * SIDE + uint(at);
        sum += w * (ALONG_Y ? blurred_x[cell] : float(splat[cell]) / 1024.0);
    }
    if (ALONG_Y) {
        density[id] = sum / norm;
    } else {
        blurred_x[id] = sum / norm;
    }
}
