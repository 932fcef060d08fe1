#version 450

// One triangle covering the viewport (vertices 0, 1, 2), for the low-resolution edge pass's depth
// and composite steps (src/gfx/edge_pass.rs). Those draw one layer at a time, without multiview:
// lavapipe (Mesa 22.3) draws every view of a multiview full-screen triangle into the first layer.

void main() {
    vec2 p = vec2((gl_VertexIndex << 1) & 2, gl_VertexIndex & 2);
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
