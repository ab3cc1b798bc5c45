//! An MCAP file read record by record, as the recording reader and the
//! ROS 2 bag reader both read theirs: memory stays at one chunk however
//! large the file; chunk and data-section CRCs are checked; a file cut short
//! is [`MsgsError::Truncated`] after its last complete record, other damage
//! [`MsgsError::Corrupt`] with the byte offset.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use mcap::records::Record;
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use mcap::McapError;

use crate::MsgsError;

/// Largest record accepted outside chunks (a recording's metadata with a
/// paper-scale split is about 1 MB) and largest chunk, compressed or not.
const RECORD_LIMIT: usize = 256 << 20;

pub(crate) struct McapStream<R: Read> {
    source: R,
    reader: LinearReader,
    offset: u64,
}

impl McapStream<BufReader<File>> {
    pub(crate) fn open(path: &Path) -> Result<Self, MsgsError> {
        let file = File::open(path).map_err(|source| MsgsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::new(BufReader::with_capacity(1 << 20, file)))
    }
}

impl<R: Read> McapStream<R> {
    pub(crate) fn new(source: R) -> Self {
        let options = LinearReaderOptions::default()
            .with_validate_chunk_crcs(true)
            .with_validate_data_section_crc(true)
            .with_record_length_limit(RECORD_LIMIT);
        Self {
            source,
            reader: LinearReader::new_with_options(options),
            offset: 0,
        }
    }

    /// Bytes of the file read so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Hands records (with the offset read so far) to `take` until it
    /// returns something; `None` at the end of the file.
    pub(crate) fn next_with<T>(
        &mut self,
        mut take: impl FnMut(u64, Record<'_>) -> Result<Option<T>, MsgsError>,
    ) -> Result<Option<T>, MsgsError> {
        loop {
            let event = match self.reader.next_event() {
                None => return Ok(None),
                Some(Ok(event)) => event,
                Some(Err(McapError::UnexpectedEof)) => {
                    return Err(MsgsError::Truncated {
                        offset: self.offset,
                    })
                }
                Some(Err(source)) => {
                    return Err(MsgsError::Corrupt {
                        offset: self.offset,
                        source,
                    })
                }
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
            if let Some(out) = take(offset, record)? {
                return Ok(Some(out));
            }
        }
    }
}
