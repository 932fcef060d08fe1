//! How to set up a [`Renderer`](super::Renderer): [`RendererConfig`], and reading it from the environment.

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

impl RendererConfig {
    /// Validation on when the environment has `NETWALK_VALIDATION=1`; the edges' resolution
    /// scale from `NETWALK_EDGE_SCALE` (1 to [`crate::gfx::edge_pass::MAX_SCALE`]) when set.
    pub fn from_env() -> RendererConfig {
        RendererConfig {
            validation: std::env::var("NETWALK_VALIDATION").is_ok_and(|v| v == "1"),
            edge_scale: std::env::var("NETWALK_EDGE_SCALE").ok().and_then(|v| match v.trim().parse() {
                Ok(scale) => Some(scale),
                Err(_) => {
                    tracing::warn!(value = %v, "NETWALK_EDGE_SCALE is not a whole number (1 to 8): the scale is chosen by the number of edges");
                    None
                }
            }),
        }
    }
}
