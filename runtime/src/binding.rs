//! A served model bound to the robots it serves: a robot-id pattern, the
//! forecast model, its OOD models and its denoiser settings, loaded from one
//! `[model]` / `[[models]]` entry of the config.

use candle_core::Device;
use ebm_msgs::RobotPattern;
use tracing::info;

use crate::config::{DenoiseConfig, RuntimeConfig, Serving, WarmStartConfig};
use crate::model::RobotModel;
use crate::ood::{load_ood_scorer, OodScorer};
use crate::RuntimeError;

/// A loaded model bound to the robots it serves.
pub struct Binding {
    pub robots: RobotPattern,
    pub model: RobotModel,
    pub ood: OodScorer,
    pub denoise: DenoiseConfig,
    pub warm: WarmStartConfig,
}

impl Binding {
    /// Loads one served model: its checkpoint (or the untrained stand-in
    /// where allowed) and its OOD models.
    pub fn load(s: &Serving, seed: u64, device: &Device) -> Result<Self, RuntimeError> {
        let model = RobotModel::from_config(&s.model, seed, device)
            .map_err(|e| RuntimeError::Model(format!("model for robots `{}`: {e}", s.robots)))?;
        let ood = load_ood_scorer(&s.ood_checkpoints, &model);
        info!(robots = %s.robots, model = %model.model_id, robot = %model.robot.kind,
              state_dim = model.state_dim(), ood = %ood.model_id(), "bound");
        Ok(Self {
            warm: s.warm,
            robots: s.robots.clone(),
            model,
            ood,
            denoise: s.denoise.clone(),
        })
    }

    /// Every model the config serves, in matching order.
    pub fn load_all(cfg: &RuntimeConfig, device: &Device) -> Result<Vec<Self>, RuntimeError> {
        cfg.serving()
            .iter()
            .map(|s| Self::load(s, cfg.seed, device))
            .collect()
    }

    /// `model` for every robot, scored by the config's default OOD models.
    pub fn everyone(cfg: &RuntimeConfig, model: RobotModel) -> Self {
        let ood = load_ood_scorer(&cfg.ood.checkpoints, &model);
        Self {
            robots: RobotPattern::any(),
            model,
            ood,
            denoise: cfg.denoise.clone(),
            warm: cfg.forecast.warm,
        }
    }
}
