//! Errors of the model pipeline. Every variant names the file and, where one is involved, the layer
//! or tensor, so a user can find the mistake without a debugger. Messages are always one line:
//! names and text taken from user files go through [`OneLine`], which escapes control characters.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("{}: cannot read: {source}", OneLine(file.display()))]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: malformed JSON: {source}", OneLine(file.display()))]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {}", OneLine(file.display()), OneLine(msg))]
    Format { file: PathBuf, msg: String },
    #[error("{}: layer `{}`: {}", OneLine(file.display()), OneLine(layer), OneLine(msg))]
    Layer { file: PathBuf, layer: String, msg: String },
    #[error(
        "{}: tensor `{}` (layer `{}`): {}",
        OneLine(file.display()),
        OneLine(tensor),
        OneLine(layer),
        OneLine(msg)
    )]
    Tensor {
        file: PathBuf,
        layer: String,
        tensor: String,
        msg: String,
    },
    #[error("{}: corrupt safetensors file: {}", OneLine(file.display()), OneLine(msg))]
    Safetensors { file: PathBuf, msg: String },
    #[error("{}: input: {}", OneLine(file.display()), OneLine(msg))]
    Input { file: PathBuf, msg: String },
    // candle appends a backtrace on further lines when RUST_BACKTRACE is set: keep the first line.
    #[error("layer `{}`: computation failed: {}", OneLine(layer), OneLine(source.to_string().lines().next().unwrap_or("")))]
    Compute {
        layer: String,
        #[source]
        source: candle_core::Error,
    },
    #[error("{}", OneLine(.0))]
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

/// Displays a value with control characters (newlines, tabs, escapes) escaped, so text from a user's
/// file (a layer name with a newline in it, say) cannot break the one-line error contract.
pub struct OneLine<T>(pub T);

impl<T: fmt::Display> fmt::Display for OneLine<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escape<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escape<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    if c.is_control() {
                        write!(self.0, "{}", c.escape_default())?;
                    } else {
                        fmt::Write::write_char(self.0, c)?;
                    }
                }
                Ok(())
            }
        }
        fmt::Write::write_fmt(&mut Escape(f), format_args!("{}", self.0))
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
