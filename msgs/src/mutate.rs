//! Payload mutations for robustness tests: bit flips, interesting bytes,
//! insertions, deletions, truncation, splices of another payload,
//! duplicated chunks, random bytes and (JSON) hostile tokens. Used by the
//! codec's property test, the daemon's ingest fuzz test and `ebm-tools soak`.

/// A reproducible stream of mutations (xorshift64*).
#[derive(Debug, Clone)]
pub struct Mutator(u64);

impl Mutator {
    /// A stream from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (0 for `n` 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One to four mutations of `bytes` (`other`: another valid payload,
    /// for splicing; `json`: also hostile JSON tokens).
    pub fn mutate(&mut self, bytes: &[u8], other: &[u8], json: bool) -> Vec<u8> {
        mutate(self, bytes, other, json)
    }
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xfa, 0xfb, 0xfc, 0xfd, 0xff, b'"'];
const JSON_TOKENS: [&str; 12] = [
    "1e40",
    "-1e400",
    "NaN",
    "null",
    "-0",
    "18446744073709551616",
    "[]",
    "{}",
    "\"\"",
    "true",
    "\"\\ud800\"",
    "0.0000001",
];

fn mutate(rng: &mut Mutator, bytes: &[u8], other: &[u8], json: bool) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let at = rng.below(b.len() + 1);
        match rng.below(if json { 9 } else { 8 }) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => b.insert(at, rng.next_u64() as u8),
            3 if at < b.len() => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            4 => b.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(32)).min(other.len());
                b.splice(at..at, other[from..end].iter().copied());
            }
            6 if at < b.len() => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
            7 => {
                let n = rng.below(64);
                b = (0..n).map(|_| rng.next_u64() as u8).collect();
            }
            _ if json => {
                // Replace a run of digits (or any byte) by a hostile token.
                let start = b[at.min(b.len())..]
                    .iter()
                    .position(|c| c.is_ascii_digit())
                    .map_or(at, |p| at + p);
                let end = b[start.min(b.len())..]
                    .iter()
                    .position(|c| !c.is_ascii_digit() && *c != b'.' && *c != b'-')
                    .map_or(b.len(), |p| start + p);
                let tok = JSON_TOKENS[rng.below(JSON_TOKENS.len())].as_bytes();
                b.splice(start.min(end)..end, tok.iter().copied());
            }
            _ => {}
        }
    }
    b
}
