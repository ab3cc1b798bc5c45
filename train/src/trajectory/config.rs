//! Config of a trajectory run (`configs/traj_*.toml`).

use std::path::PathBuf;

use ebm_core::rollout::RolloutConfig;
use ebm_core::{CoreError, MlpEnergyConfig, TrainerConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// The FC's context length (unset: `model.context_len`), chosen like
    /// the EBM's on the validation split.
    #[serde(default)]
    pub context_len: Option<usize>,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    /// Gaussian noise on the baseline's training contexts (normalised
    /// units): the FC's own level, chosen like the EBM's `context_noise` on
    /// the validation split (`traj tune`), from the same candidates.
    #[serde(default)]
    pub context_noise: f32,
}

/// `traj tune`: the settings tried for both models on a validation split
/// carved from the training split (the test split is never looked at).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    /// Share of the training split held out for validation.
    #[serde(default = "default_validation_share")]
    pub validation_share: f64,
    /// Validation trajectories rolled out (0: all of the validation split).
    #[serde(default)]
    pub validation_trajectories: usize,
    /// Context-noise levels tried, each for both models.
    pub context_noise: Vec<f32>,
    /// Context lengths tried, each for both models (empty: the config's
    /// `model.context_len` only).
    #[serde(default)]
    pub context_len: Vec<usize>,
}

fn default_validation_share() -> f64 {
    0.1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajEvalConfig {
    /// Test trajectories rolled out (0: all of the test split).
    pub test_trajectories: usize,
    /// The first predicted step of every trajectory, the `context_len`
    /// states before it the context (0: right after the first
    /// `context_len` states). Runs of different context lengths compare on
    /// the same steps when it is at least the longest.
    #[serde(default)]
    pub first_step: usize,
    /// The EBM's sampler. Its `langevin.clamp` box holds every predicted
    /// state of both models (the EBM's chains, the FC's and the noisy FC's
    /// predictions): the same help for each.
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
    /// Share of the fresh training chains that start at the true next state
    /// plus uniform noise of half-width `data_start_noise` instead of at the
    /// last state: chains begun near the answer learn to stay there, as warm
    /// starts in the daemon need (0: none; docs/runtime.md#warm-starts).
    #[serde(default)]
    pub data_start_share: f64,
    #[serde(default)]
    pub data_start_noise: f64,
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
    /// Condition on the action `a_t` (the recording's action size). Unset:
    /// conditional when `model.action_dim` is given and positive.
    #[serde(default)]
    pub conditional: Option<bool>,
    /// `model.state_dim` and `model.action_dim` come from the recording's
    /// robot ([`TrajectoryConfig::resolve_robot`]); a config may state them
    /// as a check.
    pub model: MlpEnergyConfig,
    pub trainer: TrainerConfig,
    pub baseline: BaselineConfig,
    pub eval: TrajEvalConfig,
    #[serde(default)]
    pub tune: Option<TuneConfig>,
    /// Set by `traj tune` (never read from a file): this run holds the
    /// validation split out of training and is scored on it.
    #[serde(skip)]
    pub validation_run: bool,
}

fn default_change_floor() -> f32 {
    0.01
}

impl TrajectoryConfig {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        crate::config_file::parse_toml(text, Self::validate)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        // The state size may be left to the recording.
        let mut model = self.model.clone();
        model.state_dim = model.state_dim.max(1);
        model.validate()?;
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
        let noise_ok = self.data_start_noise.is_finite() && self.data_start_noise >= 0.0;
        if !((0.0..=1.0).contains(&self.data_start_share) && noise_ok) {
            return Err(CoreError::InvalidConfig(
                "data_start_share must be in [0, 1] and data_start_noise finite and >= 0".into(),
            ));
        }
        if self.eval.rollout.horizon == 0 || self.eval.rollout.particles == 0 {
            return Err(CoreError::InvalidConfig(
                "eval.rollout needs horizon and particles >= 1".into(),
            ));
        }
        if let Some(t) = &self.tune {
            if !(t.validation_share > 0.0 && t.validation_share < 1.0) || t.context_noise.is_empty()
            {
                return Err(CoreError::InvalidConfig(
                    "tune needs 0 < validation_share < 1 and at least one context_noise level"
                        .into(),
                ));
            }
            if t.context_len.contains(&0) {
                return Err(CoreError::InvalidConfig(
                    "tune.context_len lengths must be at least 1".into(),
                ));
            }
            if t.context_noise
                .iter()
                .any(|v| !(v.is_finite() && *v >= 0.0))
            {
                return Err(CoreError::InvalidConfig(
                    "tune.context_noise levels must be finite and >= 0".into(),
                ));
            }
        }
        let level_ok = |v: f32| v.is_finite() && v >= 0.0;
        if !(level_ok(self.context_noise) && level_ok(self.baseline.context_noise)) {
            return Err(CoreError::InvalidConfig(
                "context_noise and baseline.context_noise must be finite and >= 0".into(),
            ));
        }
        if self.baseline.context_len == Some(0) {
            return Err(CoreError::InvalidConfig(
                "baseline.context_len must be at least 1".into(),
            ));
        }
        if self.baseline.batch_size == 0 || !(self.baseline.lr > 0.0) {
            return Err(CoreError::InvalidConfig(
                "baseline needs batch_size >= 1 and lr > 0".into(),
            ));
        }
        Ok(())
    }

    /// The FC baseline's context length.
    pub fn fc_context_len(&self) -> usize {
        self.baseline.context_len.unwrap_or(self.model.context_len)
    }

    /// The box every predicted state of either model is clamped to.
    pub fn rollout_clamp(&self) -> Option<[f64; 2]> {
        self.eval.rollout.langevin.clamp
    }

    /// True when the models take the action `a_t`.
    pub fn conditional(&self) -> bool {
        self.conditional.unwrap_or(self.model.action_dim > 0)
    }

    /// Takes the model's state and action sizes from the recording's robot;
    /// sizes the config states must agree with it.
    pub fn resolve_robot(&mut self, state_dim: usize, action_dim: usize) -> Result<(), CoreError> {
        let m = &mut self.model;
        if m.state_dim != 0 && m.state_dim != state_dim {
            return Err(CoreError::InvalidConfig(format!(
                "model.state_dim is {}, but the recording's robot has {state_dim}-float states (leave it out to take the recording's)",
                m.state_dim
            )));
        }
        let conditional = self.conditional.unwrap_or(m.action_dim > 0);
        if conditional {
            if action_dim == 0 {
                return Err(CoreError::InvalidConfig(
                    "the setting is action-conditional, but the recording has no actions".into(),
                ));
            }
            if m.action_dim != 0 && m.action_dim != action_dim {
                return Err(CoreError::InvalidConfig(format!(
                    "model.action_dim is {}, but the recording's robot has {action_dim}-float actions",
                    m.action_dim
                )));
            }
        }
        m.state_dim = state_dim;
        m.action_dim = if conditional { action_dim } else { 0 };
        self.conditional = Some(conditional);
        Ok(())
    }
}
