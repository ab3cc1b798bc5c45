//! Reading the TOML configs in `configs/`: parse strictly, then validate.

use std::path::Path;

use anyhow::Context;
use ebm_core::CoreError;
use serde::de::DeserializeOwned;

/// Parses `text` as `T` (unknown keys are errors where `T` denies them) and
/// runs `validate` on the result.
pub fn parse_toml<T: DeserializeOwned>(
    text: &str,
    validate: impl FnOnce(&T) -> Result<(), CoreError>,
) -> Result<T, CoreError> {
    let cfg: T = toml::from_str(text).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Reads the TOML file `path` as `T` and runs `validate` on it; errors name
/// the file.
pub fn load_toml<T: DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> anyhow::Result<()>,
) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: T = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    validate(&cfg).with_context(|| format!("config {}", path.display()))?;
    Ok(cfg)
}
