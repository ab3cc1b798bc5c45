//! Cross-crate integration tests, built into one binary to save link time.

mod configs;
mod runtime;
mod toy;
mod trajectory;
