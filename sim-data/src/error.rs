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
    #[error("could not write {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not draw the figure {path}: {reason}")]
    Figure {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("invalid import option `{option}`: must be {rule}")]
    InvalidImport {
        option: &'static str,
        rule: &'static str,
    },
    #[error("{path}: {why}")]
    BagFiles {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("topic `{topic}` is not in the bag; its topics: {present}")]
    TopicMissing { topic: String, present: String },
    #[error(
        "topic `{topic}` has type `{type_name}`, which cannot be {role} (supported: {supported})"
    )]
    UnsupportedType {
        topic: String,
        type_name: String,
        role: &'static str,
        supported: &'static str,
    },
    #[error("joint `{joint}` is missing from {topic} message {index} (its joints: {present}); if several publishers share the topic, each naming some joints, name them all with --joints and add --merge-publishers")]
    JointMissing {
        topic: String,
        joint: String,
        index: u64,
        present: String,
    },
    #[error("{topic}: no message names joint(s) {joints} (with --merge-publishers every joint of --joints must appear)")]
    JointNeverSeen { topic: String, joints: String },
    #[error("the action topic {topic} commands none of the joints asked for (it has: {present})")]
    NoActionJoints { topic: String, present: String },
    #[error("{topic} message {index}: `{field}` has {found} entries, expected {expected}")]
    FieldLength {
        topic: String,
        index: u64,
        field: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{topic} message {index} could not be decoded")]
    RosDecode {
        topic: String,
        index: u64,
        #[source]
        source: ebm_msgs::MsgsError,
    },
    #[error("no episode of 2 or more steps at {rate_hz} Hz: {samples} usable state messages in {spans} spans without a long gap, the longest {longest} steps (a lower --rate-hz, a larger --max-gap-periods or a smaller --steps may help)")]
    NoEpisodes {
        samples: usize,
        spans: usize,
        longest: u64,
        rate_hz: f64,
    },
    #[error(transparent)]
    Msgs(#[from] ebm_msgs::MsgsError),
}
