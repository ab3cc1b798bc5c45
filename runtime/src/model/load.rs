//! Loading a [`RobotModel`]: a trajectory checkpoint of any robot (sizes
//! and dimension names from its manifest, checked against the model), its
//! normalisation and OOD calibration, or, where allowed, a seeded untrained
//! stand-in.

use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint::{self, Normalization, OodCalibration, WindowPercentiles};
use ebm_core::stats::stein::SteinWindow;
use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
use ebm_msgs::RobotSpec;
use tracing::warn;

use super::{RobotModel, Units};
use crate::config::ModelConfig;
use crate::RuntimeError;

impl RobotModel {
    /// Loads and checks a trajectory checkpoint of any robot.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, RuntimeError> {
        let loaded = checkpoint::load(dir, device)?;
        let (model, _) = loaded.model::<MlpEnergy>(device)?;
        let cfg = model.config();
        if cfg.context_len == 0 {
            return Err(RuntimeError::Model(format!(
                "{}: an unconditional energy (context_len 0) cannot forecast",
                dir.display()
            )));
        }
        let normalised = loaded.manifest.normalization.as_ref().map(|n| n.mean.len());
        let robot = robot_of(loaded.manifest.robot.as_ref(), cfg, normalised, dir)?;
        let mut warnings = Vec::new();
        let (percentiles, windows, stein) =
            ood_calibration(loaded.manifest.ood.as_ref(), cfg.state_dim, &mut warnings);
        let norm = loaded.manifest.normalization.clone();
        if norm.is_none() {
            warnings.push(
                "the checkpoint has no normalisation statistics; states are used as they come"
                    .into(),
            );
        }
        let model_id = format!("{}@{}", model_name(dir), loaded.manifest.step);
        let mut served = Self::assemble(
            model.frozen(),
            model_id,
            norm.as_ref(),
            percentiles,
            warnings,
            device,
        )?;
        served.robot = robot;
        served.window_percentiles = windows;
        served.stein_window = stein;
        Ok(served)
    }

    /// A seeded untrained model of `state_dim`-float states with identity
    /// normalisation (k = 1, unconditional).
    pub fn untrained(
        seed: u64,
        state_dim: usize,
        hidden: Vec<usize>,
        device: &Device,
    ) -> Result<Self, RuntimeError> {
        let mut cfg = MlpEnergyConfig::new(state_dim);
        cfg.context_len = 1;
        cfg.hidden = hidden;
        let model = MlpEnergy::init(&cfg, &ParamStore::new(seed, device))?;
        Self::assemble(
            model.frozen(),
            format!("untrained-seed{seed}"),
            None,
            None,
            vec!["serving an UNTRAINED model: forecasts and OOD scores are meaningless".into()],
            device,
        )
    }

    /// The configured checkpoint, or the untrained stand-in (with a warning)
    /// when it is missing and that is allowed (`untrained_state_dim`, 0: not allowed).
    pub fn from_config(
        cfg: &ModelConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, RuntimeError> {
        let dir = &cfg.checkpoint;
        if dir.join(checkpoint::MANIFEST).is_file() || cfg.untrained_state_dim == 0 {
            return Self::load(dir, device);
        }
        warn!(
            checkpoint = %dir.display(),
            "no checkpoint there: serving an untrained model (forecasts and OOD scores are meaningless); train one with `ebm-train traj train`"
        );
        let mut b = Self::untrained(seed, cfg.untrained_state_dim, vec![128, 128, 128], device)?;
        b.warnings
            .insert(0, format!("checkpoint {} not found", dir.display()));
        Ok(b)
    }

    fn assemble(
        model: MlpEnergy,
        model_id: String,
        norm: Option<&Normalization>,
        percentiles: Option<Vec<f32>>,
        mut warnings: Vec<String>,
        device: &Device,
    ) -> Result<Self, RuntimeError> {
        let (sd, ad) = (model.config().state_dim, model.config().action_dim);
        let units = match norm {
            Some(n) => Units::from_normalization(n, sd, ad, &mut warnings)?,
            None => Units::identity(sd, ad),
        };
        Ok(Self {
            robot: RobotSpec::unnamed("unknown", sd, ad),
            model,
            model_id,
            percentiles,
            window_percentiles: None,
            stein_window: None,
            warnings,
            device: device.clone(),
            units,
        })
    }
}

/// The robot of an export: its manifest's description, checked against the
/// model's sizes; sizes only (kind `unknown`) for an export without one, the
/// action size from its normalisation (states and actions) where it has one.
fn robot_of(
    spec: Option<&checkpoint::RobotSpec>,
    cfg: &MlpEnergyConfig,
    normalised: Option<usize>,
    dir: &Path,
) -> Result<RobotSpec, RuntimeError> {
    let Some(r) = spec else {
        let actions = normalised.map_or(0, |n| n.saturating_sub(cfg.state_dim));
        return Ok(RobotSpec::unnamed(
            "unknown",
            cfg.state_dim,
            actions.max(cfg.action_dim),
        ));
    };
    let robot = RobotSpec {
        kind: r.kind.clone(),
        state_dim: r.state_dim,
        action_dim: r.action_dim,
        state_names: r.state_names.clone(),
        state_units: r.state_units.clone(),
        action_names: r.action_names.clone(),
        action_units: r.action_units.clone(),
    };
    let bad = |why: String| RuntimeError::Model(format!("{}: {why}", dir.display()));
    robot
        .validate()
        .map_err(|e| bad(format!("its robot description is invalid: {e}")))?;
    if robot.state_dim != cfg.state_dim
        || !(cfg.action_dim == 0 || cfg.action_dim == robot.action_dim)
    {
        return Err(bad(format!(
            "its robot has {}-float states and {}-float actions, but the model takes {} and {}",
            robot.state_dim, robot.action_dim, cfg.state_dim, cfg.action_dim
        )));
    }
    Ok(robot)
}

/// The usable parts of an export's OOD calibration; a warning for each part
/// that is missing or malformed.
fn ood_calibration(
    calib: Option<&OodCalibration>,
    state_dim: usize,
    warnings: &mut Vec<String>,
) -> (
    Option<Vec<f32>>,
    Option<WindowPercentiles>,
    Option<SteinWindow>,
) {
    let Some(c) = calib else {
        warnings.push("the checkpoint has no training energy percentiles; OOD percentiles are calibrated online".into());
        return (None, None, None);
    };
    let table = |p: &[f32]| p.len() == 101 && p.iter().all(|x| x.is_finite());
    let sorted = |p: &[f32]| {
        let mut p = p.to_vec();
        p.sort_by(f32::total_cmp);
        p
    };
    let percentiles = if table(&c.energy_percentiles) {
        Some(sorted(&c.energy_percentiles))
    } else {
        warnings.push("the energy percentiles in the checkpoint are not 101 finite numbers; OOD percentiles are calibrated online".into());
        None
    };
    let windows = c.window_energy_percentiles.as_ref().and_then(|w| {
        if w.window > 0 && table(&w.percentiles) {
            Some(WindowPercentiles {
                window: w.window,
                percentiles: sorted(&w.percentiles),
            })
        } else {
            warnings.push("the window energy percentiles in the checkpoint are not a window and 101 finite numbers; windowed OOD scores have no percentile".into());
            None
        }
    });
    let stein = c.stein_window.as_ref().and_then(|t| match t.check(state_dim) {
        Ok(()) => Some(t.clone()),
        Err(e) => {
            warnings.push(format!("the Stein window test in the checkpoint is unusable ({e}); windowed OOD scores fall back to the mean energy"));
            None
        }
    });
    (percentiles, windows, stein)
}

/// A readable name for a checkpoint directory: its own name, or for a
/// training run's `<run>/ebm/step-N` the run's name.
fn model_name(dir: &Path) -> String {
    let names: Vec<String> = dir
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    names
        .iter()
        .find(|n| !n.starts_with("step-") && n.as_str() != "ebm" && n.as_str() != "latest")
        .cloned()
        .unwrap_or_else(|| "model".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_skip_step_directories() {
        assert_eq!(
            model_name(Path::new("configs/models/traj_uncond")),
            "traj_uncond"
        );
        assert_eq!(
            model_name(Path::new("/w/exp/uncond/ebm/step-00006000")),
            "uncond"
        );
    }
}
