//! Streams a recording record by record: memory stays at one chunk however
//! large the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use mcap::records::Record;
use mcap::McapError;

use crate::codec::{decode, Encoding};
use crate::mcap_stream::McapStream;
use crate::types::{Action, RobotState};
use crate::MsgsError;

/// One thing read from a recording, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingEvent {
    /// A metadata record (the header, the summary, or anything else).
    Metadata {
        name: String,
        entries: BTreeMap<String, String>,
    },
    State(RobotState),
    Action(Action),
}

#[derive(Clone, Copy)]
enum ChannelKind {
    State(Encoding),
    Action(Encoding),
    /// A channel this crate does not read (another tool's topic).
    Other,
}

/// Iterator over the [`RecordingEvent`]s of an MCAP file.
pub struct RecordingReader<R: Read> {
    stream: McapStream<R>,
    channels: HashMap<u16, (String, ChannelKind)>,
    done: bool,
}

impl RecordingReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, MsgsError> {
        Ok(Self::from_stream(McapStream::open(path)?))
    }
}

impl<R: Read> RecordingReader<R> {
    pub fn new(source: R) -> Self {
        Self::from_stream(McapStream::new(source))
    }

    fn from_stream(stream: McapStream<R>) -> Self {
        Self {
            stream,
            channels: HashMap::new(),
            done: false,
        }
    }

    fn next_inner(&mut self) -> Result<Option<RecordingEvent>, MsgsError> {
        let Self {
            stream, channels, ..
        } = self;
        stream.next_with(|offset, record| {
            match record {
                Record::Channel(ch) => {
                    let kind = channel_kind(&ch.topic, &ch.message_encoding)?;
                    channels.insert(ch.id, (ch.topic, kind));
                }
                Record::Metadata(m) => {
                    return Ok(Some(RecordingEvent::Metadata {
                        name: m.name,
                        entries: m.metadata,
                    }))
                }
                Record::Message { header, data } => {
                    let Some((topic, kind)) = channels.get(&header.channel_id) else {
                        return Err(MsgsError::Corrupt {
                            offset,
                            source: McapError::UnknownChannel(header.sequence, header.channel_id),
                        });
                    };
                    let bad = |source| MsgsError::BadMessage {
                        topic: topic.clone(),
                        log_time: header.log_time,
                        source: Box::new(source),
                    };
                    match *kind {
                        ChannelKind::State(enc) => {
                            return decode(&data, enc)
                                .map(|s| Some(RecordingEvent::State(s)))
                                .map_err(bad)
                        }
                        ChannelKind::Action(enc) => {
                            return decode(&data, enc)
                                .map(|a| Some(RecordingEvent::Action(a)))
                                .map_err(bad)
                        }
                        ChannelKind::Other => {}
                    }
                }
                _ => {}
            }
            Ok(None)
        })
    }
}

fn channel_kind(topic: &str, message_encoding: &str) -> Result<ChannelKind, MsgsError> {
    let ours = |leaf| {
        topic.ends_with(leaf) && (message_encoding == "json" || message_encoding == "ebm-bincode2")
    };
    if ours("/state") {
        Ok(ChannelKind::State(Encoding::from_mcap_name(
            message_encoding,
        )?))
    } else if ours("/action") {
        Ok(ChannelKind::Action(Encoding::from_mcap_name(
            message_encoding,
        )?))
    } else {
        Ok(ChannelKind::Other)
    }
}

impl<R: Read> Iterator for RecordingReader<R> {
    type Item = Result<RecordingEvent, MsgsError>;

    /// Yields events until the end of the file or the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_inner().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
