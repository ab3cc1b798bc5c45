//! The toy run's config (`configs/toy.toml`).

use ebm_core::{CoreError, LangevinConfig, MlpEnergyConfig, TrainerConfig};
use serde::Deserialize;

/// The built-in default: the repository's `configs/toy.toml`.
pub const DEFAULT_TOY_TOML: &str = include_str!("../../../configs/toy.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToyConfig {
    pub steps: u64,
    pub data: RingConfig,
    pub model: MlpEnergyConfig,
    pub trainer: TrainerConfig,
    pub eval: EvalConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingConfig {
    pub modes: usize,
    pub radius: f64,
    pub sigma: f64,
    pub subset_a: Vec<usize>,
    pub subset_b: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub samples: usize,
    pub langevin: LangevinConfig,
}

impl ToyConfig {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        crate::config_file::parse_toml(text, Self::validate)
    }

    pub fn default_config() -> Result<Self, CoreError> {
        Self::parse(DEFAULT_TOY_TOML)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        let d = &self.data;
        if d.modes < 2 || !(d.radius > 0.0) || !(d.sigma > 0.0) {
            return Err(CoreError::InvalidConfig(
                "data: need modes >= 2, radius > 0, sigma > 0".into(),
            ));
        }
        for (name, s) in [("subset_a", &d.subset_a), ("subset_b", &d.subset_b)] {
            if s.is_empty() || s.iter().any(|&m| m >= d.modes) {
                return Err(CoreError::InvalidConfig(format!(
                    "data.{name} must list modes below {}",
                    d.modes
                )));
            }
        }
        if self.model.state_dim != 2 || self.model.cond_dim() != 0 {
            return Err(CoreError::InvalidConfig(
                "model: the toy is unconditional 2-D (state_dim = 2)".into(),
            ));
        }
        if self.eval.samples == 0 {
            return Err(CoreError::InvalidConfig(
                "eval.samples must be positive".into(),
            ));
        }
        self.model.validate()?;
        self.trainer.validate()?;
        self.eval.langevin.validate()
    }

    /// Modes in both subsets.
    pub fn intersection(&self) -> Vec<usize> {
        self.data
            .subset_a
            .iter()
            .copied()
            .filter(|m| self.data.subset_b.contains(m))
            .collect()
    }
}
