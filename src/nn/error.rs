//! Errors of the model pipeline. Every variant names the file and, where one is involved, the layer
//! or tensor, so a user can find the mistake without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: malformed JSON: {source}", file.display())]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {msg}", file.display())]
    Format { file: PathBuf, msg: String },
    #[error("{}: layer `{layer}`: {msg}", file.display())]
    Layer {
        file: PathBuf,
        layer: String,
        msg: String,
    },
    #[error("{}: tensor `{tensor}` (layer `{layer}`): {msg}", file.display())]
    Tensor {
        file: PathBuf,
        layer: String,
        tensor: String,
        msg: String,
    },
    #[error("{}: corrupt safetensors file: {msg}", file.display())]
    Safetensors { file: PathBuf, msg: String },
    #[error("{}: input: {msg}", file.display())]
    Input { file: PathBuf, msg: String },
    #[error("layer `{layer}`: computation failed: {source}")]
    Compute {
        layer: String,
        #[source]
        source: candle_core::Error,
    },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = NnError> = std::result::Result<T, E>;

impl NnError {
    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NnError::Io {
            file: file.into(),
            source,
        }
    }
    pub fn format(file: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        NnError::Format {
            file: file.into(),
            msg: msg.into(),
        }
    }
    pub fn layer(file: impl Into<PathBuf>, layer: &str, msg: impl Into<String>) -> Self {
        NnError::Layer {
            file: file.into(),
            layer: layer.to_owned(),
            msg: msg.into(),
        }
    }
    pub fn input(file: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        NnError::Input {
            file: file.into(),
            msg: msg.into(),
        }
    }
}

/// Attach the layer name to a candle failure inside the forward pass.
pub(crate) trait ComputeContext<T> {
    fn in_layer(self, layer: &str) -> Result<T>;
}

impl<T> ComputeContext<T> for candle_core::Result<T> {
    fn in_layer(self, layer: &str) -> Result<T> {
        self.map_err(|source| NnError::Compute {
            layer: layer.to_owned(),
            source,
        })
    }
}
