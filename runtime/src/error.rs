//! The crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime config does not parse: {0}")]
    ConfigParse(#[source] toml::de::Error),
    #[error("invalid runtime config: `{field}` must be {rule}")]
    InvalidConfig {
        field: &'static str,
        rule: &'static str,
    },
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] ebm_core::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Msgs(#[from] ebm_msgs::MsgsError),
    #[error("zenoh: {context}")]
    Zenoh {
        context: &'static str,
        #[source]
        source: zenoh::Error,
    },
    #[error("zenoh config file {path} cannot be used: {source}")]
    ZenohConfigFile {
        path: PathBuf,
        #[source]
        source: zenoh::Error,
    },
    #[error("model: {0}")]
    Model(String),
    #[error("the inference thread has stopped")]
    EngineStopped,
    #[error("could not start the inference thread")]
    Thread(#[source] std::io::Error),
}

/// A refused input's error reply, for `<prefix>/<robot>/error`, in the
/// encoding it goes out in.
pub(crate) type StateError = (ebm_msgs::RobotId, ebm_msgs::Encoding, ebm_msgs::ErrorReply);

impl RuntimeError {
    pub fn zenoh(context: &'static str) -> impl FnOnce(zenoh::Error) -> Self {
        move |source| Self::Zenoh { context, source }
    }
}
