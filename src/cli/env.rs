//! The environment variables netwalk reads, read once (in main) and passed down from there.
//!
//! (NETWALK_CACHE, XDG_CACHE_HOME and HOME, where the demo is cached, are read by
//! [`crate::nn::demo`]; NETWALK_LOG by main's logger.)

use std::path::PathBuf;

use crate::gfx::RendererConfig;

#[derive(Debug, Clone, Default)]
pub struct Env {
    /// NETWALK_VALIDATION=1: the Vulkan (and in XR the OpenXR) validation layers.
    pub validation: bool,
    /// NETWALK_EDGE_SCALE as given (parsed by [`Env::renderer_config`], which warns when bad).
    pub edge_scale: Option<String>,
    /// NETWALK_XR_CONFIG: the default of `--xr-config`.
    pub xr_config: Option<PathBuf>,
    /// WAYLAND_DISPLAY, else DISPLAY, when one is set and not empty: where windows open.
    pub display: Option<String>,
}

impl Env {
    pub fn read() -> Env {
        let non_empty = |v: &str| {
            std::env::var_os(v)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string_lossy().into_owned())
        };
        Env {
            validation: std::env::var("NETWALK_VALIDATION").is_ok_and(|v| v == "1"),
            edge_scale: std::env::var("NETWALK_EDGE_SCALE").ok(),
            xr_config: std::env::var_os("NETWALK_XR_CONFIG").map(PathBuf::from),
            display: non_empty("WAYLAND_DISPLAY").or_else(|| non_empty("DISPLAY")),
        }
    }

    /// Validation from NETWALK_VALIDATION; the edges' resolution scale from NETWALK_EDGE_SCALE
    /// (1 to [`crate::gfx::edge_pass::MAX_SCALE`]) when it is a whole number, else (with a
    /// warning) chosen by the number of edges.
    pub fn renderer_config(&self) -> RendererConfig {
        RendererConfig {
            validation: self.validation,
            edge_scale: self.edge_scale.as_ref().and_then(|v| match v.trim().parse() {
                Ok(scale) => Some(scale),
                Err(_) => {
                    tracing::warn!(value = %v, "NETWALK_EDGE_SCALE is not a whole number (1 to 8): the scale is chosen by the number of edges");
                    None
                }
            }),
        }
    }
}
