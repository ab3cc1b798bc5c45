//! Streams the messages of a rosbag2 MCAP file (what `ros2 bag record`
//! writes since Iron: schema encoding `ros2msg` or `ros2idl`, message
//! encoding `cdr`), record by record: memory stays at one chunk however
//! large the bag. Payloads are handed out raw, with their channel's topic
//! and ROS type name, for [`super::decode_cdr`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use mcap::records::Record;
use mcap::McapError;

use crate::mcap_stream::McapStream;
use crate::MsgsError;

/// A topic of the bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagChannel {
    pub topic: String,
    /// The ROS type name of its schema (`sensor_msgs/msg/JointState`), or
    /// empty for a channel without a schema.
    pub type_name: String,
    /// `cdr` for ROS 2 messages.
    pub message_encoding: String,
}

/// One message of the bag, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagMessage {
    /// The MCAP channel id (a key of [`BagReader::channels`]).
    pub channel: u16,
    /// When the recorder received it, ns.
    pub log_time_ns: u64,
    /// The CDR payload, encapsulation header first.
    pub data: Vec<u8>,
}

/// Reads a bag's messages in file order.
pub struct BagReader<R: Read> {
    stream: McapStream<R>,
    schemas: BTreeMap<u16, String>,
    channels: BTreeMap<u16, BagChannel>,
}

impl BagReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, MsgsError> {
        Ok(Self::from_stream(McapStream::open(path)?))
    }
}

impl<R: Read> BagReader<R> {
    pub fn new(source: R) -> Self {
        Self::from_stream(McapStream::new(source))
    }

    fn from_stream(stream: McapStream<R>) -> Self {
        Self {
            stream,
            schemas: BTreeMap::new(),
            channels: BTreeMap::new(),
        }
    }

    /// The channels seen so far (all of them once [`Self::next_message`]
    /// has returned `None`), by id.
    pub fn channels(&self) -> &BTreeMap<u16, BagChannel> {
        &self.channels
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.stream.offset()
    }

    /// The next message, `None` at the end of the file; a file cut short
    /// gives [`MsgsError::Truncated`] after its last complete chunk (the
    /// messages before it have been returned).
    pub fn next_message(&mut self) -> Result<Option<BagMessage>, MsgsError> {
        let Self {
            stream,
            schemas,
            channels,
        } = self;
        stream.next_with(|offset, record| {
            match record {
                Record::Schema { header, .. } => {
                    schemas.insert(header.id, header.name);
                }
                Record::Channel(ch) => {
                    let type_name = schemas.get(&ch.schema_id).cloned().unwrap_or_default();
                    channels.insert(
                        ch.id,
                        BagChannel {
                            topic: ch.topic,
                            type_name,
                            message_encoding: ch.message_encoding,
                        },
                    );
                }
                Record::Message { header, data } => {
                    if !channels.contains_key(&header.channel_id) {
                        return Err(MsgsError::Corrupt {
                            offset,
                            source: McapError::UnknownChannel(header.sequence, header.channel_id),
                        });
                    }
                    return Ok(Some(BagMessage {
                        channel: header.channel_id,
                        log_time_ns: header.log_time,
                        data: data.into_owned(),
                    }));
                }
                _ => {}
            }
            Ok(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Cursor;
    use std::path::PathBuf;

    use super::*;
    use crate::ros2::{decode_cdr, JointState, Ros2Message};

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ros2")
            .join(name)
    }

    /// Messages per topic, the log times of the `/joint_states` messages that
    /// decode, and the error that ended the reading.
    fn read_all<R: Read>(
        r: &mut BagReader<R>,
    ) -> (BTreeMap<String, u64>, Vec<u64>, Option<MsgsError>) {
        let (mut counts, mut js_logs) = (BTreeMap::new(), Vec::new());
        loop {
            match r.next_message() {
                Ok(Some(m)) => {
                    let ch = &r.channels()[&m.channel];
                    *counts.entry(ch.topic.clone()).or_insert(0) += 1;
                    if ch.topic == "/joint_states" {
                        assert_eq!(ch.type_name, JointState::TYPE_NAME);
                        if decode_cdr::<JointState>(&m.data).is_ok() {
                            js_logs.push(m.log_time_ns);
                        }
                    }
                }
                Ok(None) => return (counts, js_logs, None),
                Err(e) => return (counts, js_logs, Some(e)),
            }
        }
    }

    #[test]
    fn reads_the_rosbags_bag() {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("arm_demo.json")).unwrap()).unwrap();
        let mut r = BagReader::open(&fixture("arm_demo.mcap")).unwrap();
        let (counts, logs, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        let topics = doc["topics"].as_object().unwrap();
        assert_eq!(counts.len(), topics.len());
        for (topic, t) in topics {
            assert_eq!(counts[topic], t["count"].as_u64().unwrap(), "{topic}");
            let ch = r.channels().values().find(|c| &c.topic == topic).unwrap();
            assert_eq!(
                (ch.type_name.as_str(), ch.message_encoding.as_str()),
                (t["type"].as_str().unwrap(), "cdr")
            );
        }
        let start = doc["bag_start_ns"].as_u64().unwrap();
        let expected: Vec<u64> = doc["topics"]["/joint_states"]["log_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| start + v.as_u64().unwrap())
            .collect();
        assert_eq!(logs, expected);
    }

    #[test]
    fn a_cut_bag_returns_its_complete_chunks_then_says_truncated() {
        let bytes = std::fs::read(fixture("arm_demo.mcap")).unwrap();
        let mut whole = BagReader::new(Cursor::new(&bytes));
        let total = read_all(&mut whole).1.len();
        let mut r = BagReader::new(Cursor::new(&bytes[..bytes.len() / 2]));
        let (_, logs, err) = read_all(&mut r);
        assert!(matches!(err, Some(MsgsError::Truncated { .. })), "{err:?}");
        assert!(
            logs.len() > total / 4 && logs.len() < total,
            "{} of {total}",
            logs.len()
        );
        assert!(r.bytes_read() <= bytes.len() as u64 / 2);

        // A flipped byte in a compressed chunk (rosbags writes no chunk
        // CRCs): an error or undecodable payloads, never a panic.
        let mut garbage = bytes.clone();
        garbage[bytes.len() / 3] ^= 0xff;
        let (counts, logs, err) = read_all(&mut BagReader::new(Cursor::new(&garbage)));
        assert!(err.is_some() || logs.len() < counts["/joint_states"] as usize);
    }

    /// Bags whose chunks are compressed with zstd or lz4 (rosbag2's storage
    /// presets; the fixture's chunks are uncompressed) read the same
    /// messages: the fixture rewritten by the `mcap` crate's writer.
    #[test]
    fn compressed_chunks_read_the_same_messages() {
        let bytes = std::fs::read(fixture("arm_demo.mcap")).unwrap();
        let plain = read_all(&mut BagReader::new(Cursor::new(&bytes)));
        for compression in [mcap::Compression::Lz4, mcap::Compression::Zstd] {
            let mut out = Cursor::new(Vec::new());
            let mut w = mcap::WriteOptions::new()
                .compression(Some(compression))
                .profile("ros2")
                .create(&mut out)
                .unwrap();
            for m in mcap::MessageStream::new(&bytes).unwrap() {
                w.write(&m.unwrap()).unwrap();
            }
            w.finish().unwrap();
            drop(w);
            let packed = out.into_inner();
            let got = read_all(&mut BagReader::new(Cursor::new(&packed)));
            assert!(got.2.is_none(), "{compression:?}: {:?}", got.2);
            assert_eq!(
                (got.0, got.1),
                (plain.0.clone(), plain.1.clone()),
                "{compression:?}"
            );
        }
    }
}
