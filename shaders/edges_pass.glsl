// Declarations shared by the low-resolution edge pass's shaders (src/gfx/edge_pass.rs defines
// the same layout). Set 0 is the bundler's (shaders/bundle.glsl); set 1 the pass's own.
//
// The light is summed in fixed point, two channels per low-resolution pixel (positive and
// negative edges' coverage × opacity, LIGHT_ONE = 1), so sums do not depend on the order edges
// are drawn in. Low-resolution pixel (x, y) covers the full-resolution pixels
// [x * scale, x * scale + scale) × [y * scale, y * scale + scale), clipped to the full size.

#define LIGHT_ONE 4096.0
// Side of a tile in low-resolution pixels: the composite draws only tiles with light in or
// next to them (edges_lit.comp marks them).
#define TILE 16

// (view * low.y + y) * low.x + x, then 2 channels: positive, negative. Written only by the
// raster step (it defines WRITE_LIGHT; fragment shaders may not write storage buffers here).
#ifdef WRITE_LIGHT
layout(std430, set = 1, binding = 1) buffer Light { uint light[]; };
#else
layout(std430, set = 1, binding = 1) readonly buffer Light { uint light[]; };
#endif
// (view * tiles.y + y) * tiles.x + x: 1 where the tile has light (written by edges_lit.comp,
// which defines WRITE_TILES).
#ifdef WRITE_TILES
layout(std430, set = 1, binding = 3) writeonly buffer Tiles { uint lit[]; };
#else
layout(std430, set = 1, binding = 3) readonly buffer Tiles { uint lit[]; };
#endif

// (view * low.y + y) * low.x + x: the nearest scene depth over the full-resolution pixels each
// low-resolution pixel covers (written by edges_depth.comp, which defines WRITE_NEAR).
#ifdef WRITE_NEAR
layout(std430, set = 1, binding = 4) writeonly buffer Near { float near[]; };
#else
layout(std430, set = 1, binding = 4) readonly buffer Near { float near[]; };
#endif

layout(std430, set = 1, binding = 2) readonly buffer Frame {
    mat4 clip_from_world[2];
    ivec2 low;            // the low-resolution size
    ivec2 full;           // the scene's size
    int scale;
    int views;
    ivec2 tiles;          // tiles across and down (of TILE × TILE low-resolution pixels)
} frame;

// Low-resolution pixel `p` of `view`, as an index into `near` (× 2 into `light`).
uint low_index(uint view, ivec2 p) {
    return (view * uint(frame.low.y) + uint(p.y)) * uint(frame.low.x) + uint(p.x);
}
