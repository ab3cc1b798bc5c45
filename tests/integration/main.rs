//! Cross-crate integration tests, built into one binary to save link time.

mod configs;
mod models;
mod runtime;
mod runtime_load;
mod toy;
mod trajectory;
