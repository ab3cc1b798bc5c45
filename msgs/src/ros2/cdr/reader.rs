//! [`CdrReader`]: bounded reads of CDR values.

use super::{CdrError, CdrProblem, CDR_BE, CDR_LE, HEADER_BYTES, MAX_PADDING};

/// Reads CDR values in order from one payload.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    /// The bytes after the encapsulation header.
    body: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header of `payload`.
    pub fn new(payload: &'a [u8]) -> Result<Self, CdrError> {
        let Some((header, body)) = payload.split_first_chunk::<HEADER_BYTES>() else {
            return Err(CdrError::new(
                "<encapsulation header>",
                0,
                CdrProblem::Truncated {
                    needed: HEADER_BYTES,
                    left: payload.len(),
                },
            ));
        };
        let id = [header[0], header[1]];
        let big_endian = match id {
            CDR_LE => false,
            CDR_BE => true,
            _ => {
                return Err(CdrError::new(
                    "<encapsulation header>",
                    0,
                    CdrProblem::Encapsulation { id },
                ))
            }
        };
        Ok(Self {
            body,
            pos: 0,
            big_endian,
        })
    }

    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// Position in the payload, the header included.
    pub fn offset(&self) -> usize {
        HEADER_BYTES + self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn error(&self, field: &str, problem: CdrProblem) -> CdrError {
        CdrError::new(field, self.offset(), problem)
    }

    /// The next `N` bytes, aligned to `N`.
    fn take<const N: usize>(&mut self, field: &str) -> Result<[u8; N], CdrError> {
        let pad = (N - self.pos % N) % N;
        let left = self.remaining();
        let bytes = self
            .body
            .get(self.pos + pad..self.pos + pad + N)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or_else(|| {
                self.error(
                    field,
                    CdrProblem::Truncated {
                        needed: pad + N,
                        left,
                    },
                )
            })?;
        self.pos += pad + N;
        Ok(bytes)
    }

    pub fn read_u8(&mut self, field: &str) -> Result<u8, CdrError> {
        Ok(self.take::<1>(field)?[0])
    }

    pub fn read_bool(&mut self, field: &str) -> Result<bool, CdrError> {
        Ok(self.read_u8(field)? != 0)
    }

    pub fn read_u32(&mut self, field: &str) -> Result<u32, CdrError> {
        let b = self.take::<4>(field)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    pub fn read_i32(&mut self, field: &str) -> Result<i32, CdrError> {
        Ok(self.read_u32(field)? as i32)
    }

    pub fn read_f64(&mut self, field: &str) -> Result<f64, CdrError> {
        let b = self.take::<8>(field)?;
        Ok(if self.big_endian {
            f64::from_be_bytes(b)
        } else {
            f64::from_le_bytes(b)
        })
    }

    /// A sequence count or string length, checked against the bytes left at
    /// `min_elem_bytes` per element.
    pub fn read_count(&mut self, field: &str, min_elem_bytes: usize) -> Result<usize, CdrError> {
        let count = self.read_u32(field)?;
        let at = self.offset() - 4;
        let min_bytes = u64::from(count) * min_elem_bytes as u64;
        let left = self.remaining();
        if min_bytes > left as u64 {
            return Err(CdrError::new(
                field,
                at,
                CdrProblem::CountTooLarge {
                    count,
                    min_bytes,
                    left,
                },
            ));
        }
        Ok(count as usize)
    }

    pub fn read_string(&mut self, field: &str) -> Result<String, CdrError> {
        let len = self.read_count(field, 1)?;
        if len == 0 {
            return Ok(String::new());
        }
        let at = self.offset();
        let bytes = &self.body[self.pos..self.pos + len];
        self.pos += len;
        let (nul, text) = bytes.split_last().unwrap_or((&0, &[]));
        if *nul != 0 {
            return Err(CdrError::new(field, at, CdrProblem::MissingNul));
        }
        // A NUL inside would end the string for a C reader (and would not
        // encode back): refused.
        if text.contains(&0) {
            return Err(CdrError::new(field, at, CdrProblem::InteriorNul));
        }
        String::from_utf8(text.to_vec()).map_err(|_| CdrError::new(field, at, CdrProblem::NotUtf8))
    }

    /// A `float64[]`.
    pub fn read_f64_seq(&mut self, field: &str) -> Result<Vec<f64>, CdrError> {
        let n = self.read_count(field, 8)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.read_f64(field)?);
        }
        Ok(out)
    }

    /// A `string[]`.
    pub fn read_string_seq(&mut self, field: &str) -> Result<Vec<String>, CdrError> {
        self.read_seq(field, 4, |r| r.read_string(""))
    }

    /// A sequence of any element type read by `element` (at least
    /// `min_elem_bytes` encoded bytes each); errors of element `i` name
    /// `field[i]`.
    pub fn read_seq<T>(
        &mut self,
        field: &str,
        min_elem_bytes: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, CdrError>,
    ) -> Result<Vec<T>, CdrError> {
        let n = self.read_count(field, min_elem_bytes.max(1))?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(element(self).map_err(|e| e.within(&format!("{field}[{i}]")))?);
        }
        Ok(out)
    }

    /// A nested structure read by `read`; its errors name `field.<inner>`.
    pub fn read_struct<T>(
        &mut self,
        field: &str,
        read: impl FnOnce(&mut Self) -> Result<T, CdrError>,
    ) -> Result<T, CdrError> {
        read(self).map_err(|e| e.within(field))
    }

    /// Ends the message: at most 3 bytes of padding may be left.
    pub fn finish(self) -> Result<(), CdrError> {
        match self.remaining() {
            0..=MAX_PADDING => Ok(()),
            extra => Err(self.error("<end>", CdrProblem::TrailingBytes { extra })),
        }
    }
}
