// Declarations shared by every netwalk shader: the per-view camera and the scene buffers.
// The Rust side (src/gfx/draw.rs, src/gfx/renderer.rs) defines the same layouts.

// One clip_from_world per view: gl_ViewIndex picks it, so one pipeline layout and shader serve
// mono (view mask 0b1) and stereo (view mask 0b11) rendering.
layout(push_constant) uniform Views {
    mat4 clip_from_world[2];
} views;

// Every shown value of every layer, uploaded once per input (not per frame).
layout(std430, set = 0, binding = 0) readonly buffer Activations {
    float values[];
} activations;

struct Tile {
    mat4 world_from_tile; // the unit quad -0.5..0.5 (facing +Z) to world
    uint offset;          // first value of the H×W map in `activations`
    uint h;
    uint w;
    uint colormap;
    float scale;          // 1 / max |value| of the layer
    uint pad0;
    uint pad1;
    uint pad2;
};
layout(std430, set = 0, binding = 1) readonly buffer Tiles {
    Tile tiles[];
};

struct Cube {
    vec4 center_size;     // xyz: world center, w: edge length
    uint value;           // index into `activations`
    uint colormap;
    float scale;
    uint pad;
};
layout(std430, set = 0, binding = 2) readonly buffer Cubes {
    Cube cubes[];
};
