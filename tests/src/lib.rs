//! Cross-crate integration tests live in `integration/`.
