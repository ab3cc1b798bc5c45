//! A recording re-written in another message encoding (JSON to bincode for
//! loading speed, bincode to JSON for Foxglove), every message, its
//! sequence number and time stamp, the header and the summary kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::MsgsError;
use crate::recording::header::{RecordingHeader, HEADER_RECORD, SUMMARY_RECORD};
use crate::recording::reader::{RecordingEvent, RecordingReader};
use crate::recording::writer::RecordingWriter;
use crate::Encoding;

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub states: u64,
    pub actions: u64,
}

/// Writes `input` to `output` with messages in `encoding`; `output` appears
/// only complete (written beside it, then renamed).
pub fn convert(input: &Path, output: &Path, encoding: Encoding) -> Result<Converted, MsgsError> {
    let mut events = RecordingReader::open(input)?;
    let mut header = match events.next().transpose()? {
        Some(RecordingEvent::Metadata { name, entries }) if name == HEADER_RECORD => {
            RecordingHeader::from_metadata(&entries)?
        }
        _ => return Err(MsgsError::MissingHeader(HEADER_RECORD)),
    };
    header.encoding = encoding;
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut w = RecordingWriter::create(&tmp, &header)?;
        let mut n = Converted {
            states: 0,
            actions: 0,
        };
        let mut summary = BTreeMap::new();
        for event in events {
            match event? {
                RecordingEvent::State(s) => {
                    w.write_state(&s)?;
                    n.states += 1;
                }
                RecordingEvent::Action(a) => {
                    w.write_action(&a)?;
                    n.actions += 1;
                }
                RecordingEvent::Metadata { name, entries } if name == SUMMARY_RECORD => {
                    summary = entries;
                }
                RecordingEvent::Metadata { .. } => {}
            }
        }
        w.finish(summary)?;
        std::fs::rename(&tmp, output).map_err(|source| MsgsError::Io {
            path: output.to_owned(),
            source,
        })?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
