//! Errors of the engine: each variant names what is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("invalid config: {0}")]
    InvalidConfig(String),

    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: String,
        got: String,
    },

    #[error("checkpoint {path}: {problem}")]
    Checkpoint { path: PathBuf, problem: String },

    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("manifest {path} is not valid")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "training diverged at step {step}: mean E+ = {e_pos}, mean E- = {e_neg}, loss = {loss} \
         (limit |E| <= {limit}); lower the learning rate or Langevin step size, or resume from the last checkpoint"
    )]
    Diverged {
        step: u64,
        e_pos: f64,
        e_neg: f64,
        loss: f64,
        limit: f64,
    },
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Self::InvalidConfig(msg.into())
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
