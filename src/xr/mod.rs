//! OpenXR (XR_KHR_vulkan_enable2): the instance, system and Vulkan device made through the
//! runtime (runtime.rs), the session as a value the app polls ([`XrSession`]: its state
//! machine, the STAGE space, frames), the 2-layer swapchain the renderer's multiview pass fills
//! (swapchain.rs), and the controller actions (actions.rs; [`input::XrInput`] per frame).

mod actions;
pub mod bindings;
pub mod input;
mod runtime;
mod session;
mod swapchain;

pub use input::{Hand, HandInput, Pose, XrInput};
pub use session::{EndReason, FrameBegin, FrameStats, SessionEvent, SessionInfo, XrOptions, XrOutcome, XrSession};

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
