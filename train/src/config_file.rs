//! Reading the TOML configs in `configs/`: parse strictly, then validate.

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
