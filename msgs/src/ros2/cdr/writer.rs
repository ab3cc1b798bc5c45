//! [`CdrWriter`]: little-endian CDR with its encapsulation header.

use super::{CdrError, CdrProblem, CDR_LE, HEADER_BYTES};

/// Writes CDR values (little endian) after the encapsulation header.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CdrWriter {
    /// A payload holding the little-endian header `00 01 00 00`.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&CDR_LE);
        buf.extend_from_slice(&[0, 0]);
        Self { buf }
    }

    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        let pos = self.buf.len() - HEADER_BYTES;
        let pad = (N - pos % N) % N;
        self.buf.resize(self.buf.len() + pad, 0);
        self.buf.extend_from_slice(&bytes);
    }

    pub fn write_u8(&mut self, v: u8) {
        self.put([v]);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.put([u8::from(v)]);
    }

    pub fn write_u32(&mut self, v: u32) {
        self.put(v.to_le_bytes());
    }

    pub fn write_i32(&mut self, v: i32) {
        self.put(v.to_le_bytes());
    }

    pub fn write_f64(&mut self, v: f64) {
        self.put(v.to_le_bytes());
    }

    /// A sequence count or string length.
    pub fn write_count(&mut self, field: &str, len: usize) -> Result<(), CdrError> {
        let n = u32::try_from(len)
            .map_err(|_| CdrError::new(field, self.buf.len(), CdrProblem::TooLong { len }))?;
        self.write_u32(n);
        Ok(())
    }

    pub fn write_string(&mut self, field: &str, s: &str) -> Result<(), CdrError> {
        if s.as_bytes().contains(&0) {
            return Err(CdrError::new(
                field,
                self.buf.len(),
                CdrProblem::InteriorNul,
            ));
        }
        self.write_count(field, s.len() + 1)?;
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    pub fn write_f64_seq(&mut self, field: &str, v: &[f64]) -> Result<(), CdrError> {
        self.write_count(field, v.len())?;
        v.iter().for_each(|x| self.write_f64(*x));
        Ok(())
    }

    pub fn write_string_seq(&mut self, field: &str, v: &[String]) -> Result<(), CdrError> {
        self.write_seq(field, v, |w, s| w.write_string("", s))
    }

    /// A sequence of any element type written by `element`.
    pub fn write_seq<T>(
        &mut self,
        field: &str,
        items: &[T],
        mut element: impl FnMut(&mut Self, &T) -> Result<(), CdrError>,
    ) -> Result<(), CdrError> {
        self.write_count(field, items.len())?;
        for (i, item) in items.iter().enumerate() {
            element(self, item).map_err(|e| e.within(&format!("{field}[{i}]")))?;
        }
        Ok(())
    }

    /// The payload, header included.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
