//! OpenXR (XR_KHR_vulkan_enable2): instance and system, the Vulkan device made through the
//! runtime, the session state machine, the STAGE space, the 2-layer swapchain the renderer's
//! multiview pass fills, and the controller actions ([`input::XrInput`] per frame).

pub mod bindings;
pub mod input;
mod session;

pub use input::{Hand, HandInput, Pose, XrInput};
pub use session::{EndReason, Feedback, FrameStats, XrEvent, XrOptions, XrOutcome, run_xr};

use crate::gfx::GfxError;

#[derive(Debug, thiserror::Error)]
pub enum XrError {
    #[error("no OpenXR loader (libopenxr_loader.so.1; Debian: libopenxr-loader1): {0}")]
    NoLoader(String),
    #[error(
        "no OpenXR runtime is active ({0}); start SteamVR or monado-service, or point XR_RUNTIME_JSON at a runtime's manifest"
    )]
    NoRuntime(String),
    #[error("the OpenXR runtime has no headset connected ({0})")]
    NoHeadset(String),
    #[error("the OpenXR runtime lacks {0}")]
    MissingFeature(String),
    #[error("OpenXR validation was requested but the XR_APILAYER_LUNARG_core_validation layer is not installed")]
    NoValidationLayer,
    #[error("OpenXR: {what}: {result}")]
    Xr {
        what: &'static str,
        result: openxr::sys::Result,
    },
    #[error("{file}: {problem}")]
    Bindings { file: String, problem: String },
    #[error(transparent)]
    Gfx(#[from] GfxError),
}

impl XrError {
    /// The machine has no XR (no loader, runtime or headset): fall back to another mode.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            XrError::NoLoader(_) | XrError::NoRuntime(_) | XrError::NoHeadset(_)
        )
    }
}

pub(crate) trait XrContext<T> {
    fn xr(self, what: &'static str) -> Result<T, XrError>;
}

impl<T> XrContext<T> for Result<T, openxr::sys::Result> {
    fn xr(self, what: &'static str) -> Result<T, XrError> {
        self.map_err(|result| XrError::Xr { what, result })
    }
}
