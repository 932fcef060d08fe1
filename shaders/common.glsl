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

// A segment drawn as a ribbon facing the viewer: from a.xyz to b.xyz, a.w meters wide.
struct Line {
    vec4 a;
    vec4 b;
    vec4 color;           // sRGB
};
layout(std430, set = 0, binding = 3) readonly buffer Lines {
    Line lines[];
};

// One character quad of a label, sampling the glyph atlas.
struct Glyph {
    vec4 origin;          // world position of the bottom-left corner
    vec4 right;           // xyz: world vector along the quad's width; w: where its left edge
                          // goes, in widths along it, when seen from behind (mirrored)
    vec4 up;              // world vector along the quad's height
    vec4 uv;              // atlas rectangle: u0, v0 (top), u1, v1 (bottom)
    vec4 color;           // sRGB and opacity
};
layout(std430, set = 0, binding = 4) readonly buffer Glyphs {
    Glyph glyphs[];
};
layout(set = 0, binding = 5) uniform sampler2DArray glyph_atlas; // one layer

// The viewer's position: the world point clip_from_world sends to w = 0 on the view axis.
vec3 eye_position(mat4 clip_from_world) {
    vec4 e = inverse(clip_from_world) * vec4(0.0, 0.0, 1.0, 0.0);
    return e.xyz / e.w;
}
