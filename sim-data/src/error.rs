//! The crate's error type.

/// What can go wrong configuring, simulating, recording or replaying.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator config: `{field}` must be {rule}")]
    InvalidConfig {
        field: &'static str,
        rule: &'static str,
    },
    #[error("could not parse the simulator config")]
    ConfigParse(#[source] toml::de::Error),
    #[error("could not serialise the simulator config")]
    ConfigSerialize(#[source] toml::ser::Error),
    #[error(
        "trajectory {trajectory}: all {attempts} attempts dropped the cube or went non-finite"
    )]
    GaveUp { trajectory: u64, attempts: u32 },
    #[error("zenoh: {context}")]
    Zenoh {
        context: &'static str,
        #[source]
        source: zenoh::Error,
    },
    #[error("no subscriber matched `{key}` within {waited_ms} ms")]
    NoSubscriber { key: String, waited_ms: u64 },
    #[error("the recording reader thread failed")]
    ReaderThread(#[source] tokio::task::JoinError),
    #[error("could not write {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write the PNG {path}")]
    Png {
        path: std::path::PathBuf,
        #[source]
        source: png::EncodingError,
    },
    #[error(transparent)]
    Msgs(#[from] ebm_msgs::MsgsError),
}
