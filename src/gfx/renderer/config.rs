//! How to set up a [`Renderer`](super::Renderer): [`RendererConfig`] (read from the environment once, in main: `cli::Env`).

/// How to set up the renderer.
#[derive(Debug, Clone, Default)]
pub struct RendererConfig {
    /// Enable VK_LAYER_KHRONOS_validation and record its warnings and errors
    /// ([`super::Renderer::validation_log`]).
    pub validation: bool,
    /// Draw the bundled edges at 1 / this resolution (1: in the scene pass; see
    /// [`crate::gfx::edge_pass`]); `None`: chosen by the number of edges ([`super::auto_edge_scale`]).
    pub edge_scale: Option<u32>,
}
