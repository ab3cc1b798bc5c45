//! Writes a recording (see [`crate::recording`] for the layout).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use mcap::records::{MessageHeader, Metadata};

use crate::codec::{encode, Encoding};
use crate::keys::KeySpace;
use crate::recording::header::{RecordingHeader, HEADER_RECORD, SUMMARY_RECORD};
use crate::robot::RobotSpec;
use crate::types::{Action, RobotState, PROTOCOL_VERSION};
use crate::{schema, MsgsError};

/// An MCAP writer for one robot's states and actions.
pub struct RecordingWriter<W: Write + Seek> {
    mcap: mcap::Writer<W>,
    encoding: Encoding,
    robot_id: String,
    robot: RobotSpec,
    state_channel: u16,
    action_channel: u16,
}

impl RecordingWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, header: &RecordingHeader) -> Result<Self, MsgsError> {
        let file = File::create(path).map_err(|source| MsgsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(BufWriter::with_capacity(1 << 20, file), header)
    }
}

impl<W: Write + Seek> RecordingWriter<W> {
    /// Starts a recording on `sink`: header metadata record and both channels.
    /// The header must describe the robot; every message written is checked
    /// against its sizes.
    pub fn new(sink: W, header: &RecordingHeader) -> Result<Self, MsgsError> {
        let robot = header.robot.clone().ok_or(MsgsError::BadMetadata {
            field: "robot_kind",
            value: "<missing>: a recording's header must describe its robot".into(),
        })?;
        robot.validate()?;
        let mut mcap = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .profile("")
            .library(concat!("ebm-msgs ", env!("CARGO_PKG_VERSION")))
            .create(sink)
            .map_err(MsgsError::McapWrite)?;
        mcap.write_metadata(&Metadata {
            name: HEADER_RECORD.to_owned(),
            metadata: header.to_metadata(),
        })
        .map_err(MsgsError::McapWrite)?;
        let keys = KeySpace::default();
        let (state_schema, action_schema) = match header.encoding {
            Encoding::Json => {
                let s = add_json_schema(&mut mcap, "ebm.RobotState", &schema::robot_state(&robot))?;
                let a = add_json_schema(&mut mcap, "ebm.Action", &schema::action(&robot))?;
                (s, a)
            }
            Encoding::Bincode => (0, 0),
        };
        let mut meta = BTreeMap::new();
        meta.insert("protocol_version".to_owned(), PROTOCOL_VERSION.to_string());
        let enc = header.encoding.mcap_name();
        let state_channel = mcap
            .add_channel(state_schema, &keys.state(&header.robot_id), enc, &meta)
            .map_err(MsgsError::McapWrite)?;
        let action_channel = mcap
            .add_channel(action_schema, &keys.action(&header.robot_id), enc, &meta)
            .map_err(MsgsError::McapWrite)?;
        Ok(Self {
            mcap,
            encoding: header.encoding,
            robot_id: header.robot_id.to_string(),
            robot,
            state_channel,
            action_channel,
        })
    }

    fn check_robot(&self, robot_id: &str) -> Result<(), MsgsError> {
        if robot_id == self.robot_id {
            Ok(())
        } else {
            Err(MsgsError::UnexpectedRobot {
                found: robot_id.to_owned(),
                expected: self.robot_id.clone(),
            })
        }
    }

    fn write(
        &mut self,
        channel: u16,
        seq: u64,
        stamp_ns: u64,
        data: &[u8],
    ) -> Result<(), MsgsError> {
        let header = MessageHeader {
            channel_id: channel,
            // MCAP's sequence is an optional 32-bit counter: keep the low bits.
            sequence: (seq & u64::from(u32::MAX)) as u32,
            log_time: stamp_ns,
            publish_time: stamp_ns,
        };
        self.mcap
            .write_to_known_channel(&header, data)
            .map_err(MsgsError::McapWrite)
    }

    /// Records a state (validated and encoded first); log time = `stamp_ns`.
    pub fn write_state(&mut self, state: &RobotState) -> Result<(), MsgsError> {
        self.check_robot(&state.robot_id)?;
        check_width("RobotState", "state", &state.state, self.robot.state_dim)?;
        if let Some(a) = &state.last_action {
            check_width("RobotState", "last_action", a, self.robot.action_dim)?;
        }
        let data = encode(state, self.encoding)?;
        self.write(self.state_channel, state.seq, state.stamp_ns, &data)
    }

    /// Records an action; log time = `stamp_ns`.
    pub fn write_action(&mut self, action: &Action) -> Result<(), MsgsError> {
        self.check_robot(&action.robot_id)?;
        check_width("Action", "action", &action.action, self.robot.action_dim)?;
        let data = encode(action, self.encoding)?;
        self.write(self.action_channel, action.seq, action.stamp_ns, &data)
    }

    /// Writes the summary metadata record (if any entries), the MCAP summary
    /// and footer, and returns the sink.
    pub fn finish(mut self, summary: BTreeMap<String, String>) -> Result<W, MsgsError> {
        if !summary.is_empty() {
            self.mcap
                .write_metadata(&Metadata {
                    name: SUMMARY_RECORD.to_owned(),
                    metadata: summary,
                })
                .map_err(MsgsError::McapWrite)?;
        }
        self.mcap.finish().map_err(MsgsError::McapWrite)?;
        let mut sink = self.mcap.into_inner();
        sink.flush().map_err(|e| MsgsError::McapWrite(e.into()))?;
        Ok(sink)
    }
}

fn check_width(
    kind: &'static str,
    field: &'static str,
    v: &[f32],
    expected: usize,
) -> Result<(), MsgsError> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(MsgsError::WrongDimension {
            kind,
            field,
            expected,
            found: v.len(),
        })
    }
}

fn add_json_schema<W: Write + Seek>(
    mcap: &mut mcap::Writer<W>,
    name: &str,
    schema: &serde_json::Value,
) -> Result<u16, MsgsError> {
    let data = schema.to_string();
    mcap.add_schema(name, "jsonschema", data.as_bytes())
        .map_err(MsgsError::McapWrite)
}
