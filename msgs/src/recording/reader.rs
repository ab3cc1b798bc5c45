//! Streams a recording record by record: memory stays at one chunk however
//! large the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use mcap::records::Record;
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use mcap::McapError;

use crate::codec::{decode, Encoding};
use crate::types::{Action, RobotState};
use crate::MsgsError;

/// Largest record accepted outside chunks (metadata with a paper-scale split
/// is about 1 MB) and largest chunk, compressed or not.
const RECORD_LIMIT: usize = 256 << 20;

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
    source: R,
    reader: LinearReader,
    channels: HashMap<u16, (String, ChannelKind)>,
    offset: u64,
    done: bool,
}

impl RecordingReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, MsgsError> {
        let file = File::open(path).map_err(|source| MsgsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::new(BufReader::with_capacity(1 << 20, file)))
    }
}

impl<R: Read> RecordingReader<R> {
    pub fn new(source: R) -> Self {
        let options = LinearReaderOptions::default()
            .with_validate_chunk_crcs(true)
            .with_validate_data_section_crc(true)
            .with_record_length_limit(RECORD_LIMIT);
        Self {
            source,
            reader: LinearReader::new_with_options(options),
            channels: HashMap::new(),
            offset: 0,
            done: false,
        }
    }

    fn mcap_error(&self, source: McapError) -> MsgsError {
        match source {
            McapError::UnexpectedEof => MsgsError::Truncated {
                offset: self.offset,
            },
            source => MsgsError::Corrupt {
                offset: self.offset,
                source,
            },
        }
    }

    fn next_inner(&mut self) -> Result<Option<RecordingEvent>, MsgsError> {
        loop {
            let event = match self.reader.next_event() {
                None => return Ok(None),
                Some(Ok(event)) => event,
                Some(Err(e)) => return Err(self.mcap_error(e)),
            };
            let (opcode, data) = match event {
                LinearReadEvent::ReadRequest(need) => {
                    let buf = self.reader.insert(need);
                    let read = loop {
                        match self.source.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            Err(e) => {
                                return Err(MsgsError::Corrupt {
                                    offset: self.offset,
                                    source: e.into(),
                                })
                            }
                        }
                    };
                    self.offset += read as u64;
                    self.reader.notify_read(read);
                    continue;
                }
                LinearReadEvent::Record { opcode, data } => (opcode, data),
            };
            let offset = self.offset;
            let record = mcap::parse_record(opcode, data)
                .map_err(|source| MsgsError::Corrupt { offset, source })?;
            match record {
                Record::Channel(ch) => {
                    let kind = channel_kind(&ch.topic, &ch.message_encoding)?;
                    self.channels.insert(ch.id, (ch.topic, kind));
                }
                Record::Metadata(m) => {
                    return Ok(Some(RecordingEvent::Metadata {
                        name: m.name,
                        entries: m.metadata,
                    }))
                }
                Record::Message { header, data } => {
                    let Some((topic, kind)) = self.channels.get(&header.channel_id) else {
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
        }
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
