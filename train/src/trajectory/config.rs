//! Config of a trajectory run (`configs/traj_*.toml`).

use std::path::PathBuf;

use ebm_core::rollout::RolloutConfig;
use ebm_core::{CoreError, MlpEnergyConfig, TrainerConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    /// Gaussian noise on the baseline's training contexts (its own setting:
    /// noise that helps the EBM makes the FC baseline worse).
    #[serde(default)]
    pub context_noise: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajEvalConfig {
    /// Test trajectories rolled out (0: all of the test split).
    pub test_trajectories: usize,
    pub rollout: RolloutConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryConfig {
    /// The MCAP recording, relative to the config file's folder.
    pub recording: PathBuf,
    /// Use at most this many training trajectories (0: all).
    #[serde(default)]
    pub train_trajectories: usize,
    /// Training steps of Algorithm 1.
    pub steps: u64,
    /// Half-width of the uniform noise around the last state where fresh
    /// training chains start (rollouts use `eval.rollout.init_noise`).
    pub start_noise: f64,
    /// Sample the scaled change of state (`model.delta_scale` fitted on the
    /// training split) rather than the next state itself.
    #[serde(default)]
    pub predict_change: bool,
    /// Gaussian noise on the EBM's training contexts (normalised units): the
    /// model learns to pull slightly-off contexts back, which keeps long
    /// rollouts from its own predictions on the data.
    #[serde(default)]
    pub context_noise: f32,
    /// With `predict_change`: sample the scaled residual of a linear
    /// prediction of the change (ridge regression on the training
    /// transitions, this ridge on the normalised inputs' covariance), scaled
    /// by the residual's spread. Unset: the change itself.
    #[serde(default)]
    pub linear_prior_ridge: Option<f64>,
    /// Floor of the fitted change scales (normalised units).
    #[serde(default = "default_change_floor")]
    pub change_scale_floor: f32,
    pub model: MlpEnergyConfig,
    pub trainer: TrainerConfig,
    pub baseline: BaselineConfig,
    pub eval: TrajEvalConfig,
}

fn default_change_floor() -> f32 {
    0.01
}

impl TrajectoryConfig {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        crate::config_file::parse_toml(text, Self::validate)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        self.model.validate()?;
        self.trainer.validate()?;
        self.eval.rollout.langevin.validate()?;
        if self.model.context_len == 0 {
            return Err(CoreError::InvalidConfig(
                "model.context_len must be at least 1".into(),
            ));
        }
        if let Some(ridge) = self.linear_prior_ridge {
            if !(self.predict_change && ridge.is_finite() && ridge >= 0.0) {
                return Err(CoreError::InvalidConfig(
                    "linear_prior_ridge needs predict_change = true and a finite ridge >= 0".into(),
                ));
            }
        }
        if self.eval.rollout.horizon == 0 || self.eval.rollout.particles == 0 {
            return Err(CoreError::InvalidConfig(
                "eval.rollout needs horizon and particles >= 1".into(),
            ));
        }
        if self.baseline.batch_size == 0 || !(self.baseline.lr > 0.0) {
            return Err(CoreError::InvalidConfig(
                "baseline needs batch_size >= 1 and lr > 0".into(),
            ));
        }
        Ok(())
    }

    /// True when the models take the action `a_t`.
    pub fn conditional(&self) -> bool {
        self.model.action_dim > 0
    }
}
