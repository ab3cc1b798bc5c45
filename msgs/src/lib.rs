//! `ebm-msgs`: the wire and recording formats of igebm-rs.
//!
//! This crate is the single owner of message types (robot state, forecast,
//! OOD score, denoised state, forecast request, error reply), their codec
//! (bincode 2, strict, and JSON for non-Rust clients) and the Zenoh key
//! expressions. It is filled by the runtime and simulator issues; until then it
//! holds no code.
