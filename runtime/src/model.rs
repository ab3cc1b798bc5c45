//! The served model: a trajectory `MlpEnergy` with the robot it was trained
//! for (sizes and dimension names from its manifest), its normalisation and
//! training-energy percentiles, loaded from a checkpoint (or, when allowed,
//! a seeded untrained stand-in), and the conversions between wire units and
//! the model's normalised units. Any robot: every size comes from the model.

use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint::{self, Normalization, OodCalibration, WindowPercentiles};
use ebm_core::stats::stein::SteinWindow;
use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
use ebm_msgs::RobotSpec;
use tracing::warn;

use crate::config::ModelConfig;
use crate::ood_score::OodScorer;
use crate::RuntimeError;

/// A model ready to serve.
#[derive(Clone)]
pub struct ModelBundle {
    /// Frozen: sampling builds no parameter gradients.
    pub model: MlpEnergy,
    pub model_id: String,
    /// The robot the model was trained for: what its robots must send.
    pub robot: RobotSpec,
    /// Sorted energies at the 0th..100th percentile of training transitions.
    pub percentiles: Option<Vec<f32>>,
    /// The same for mean energies over windows of consecutive transitions.
    pub window_percentiles: Option<WindowPercentiles>,
    /// The Stein window test fitted on training windows.
    pub stein_window: Option<SteinWindow>,
    /// Problems a user should see (untrained model, missing statistics).
    pub warnings: Vec<String>,
    pub device: Device,
    state_mean: Vec<f32>,
    state_std: Vec<f32>,
    action_mean: Vec<f32>,
    action_std: Vec<f32>,
}

impl ModelBundle {
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
        let mut bundle = Self::assemble(
            model.frozen(),
            model_id,
            norm.as_ref(),
            percentiles,
            warnings,
            device,
        )?;
        bundle.robot = robot;
        bundle.window_percentiles = windows;
        bundle.stein_window = stein;
        Ok(bundle)
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
        let ones = |n| vec![1.0f32; n];
        let zeros = |n| vec![0.0f32; n];
        let (mut sm, mut ss, mut am, mut asd) = (zeros(sd), ones(sd), zeros(ad), ones(ad));
        if let Some(n) = norm {
            if n.mean.len() != n.std.len() || n.mean.len() < sd {
                return Err(RuntimeError::Model(format!(
                    "normalisation has {} means and {} stds, expected {sd} (+ the actions)",
                    n.mean.len(),
                    n.std.len()
                )));
            }
            sm.copy_from_slice(&n.mean[..sd]);
            ss.copy_from_slice(&n.std[..sd]);
            if n.mean.len() >= sd + ad {
                am.copy_from_slice(&n.mean[sd..sd + ad]);
                asd.copy_from_slice(&n.std[sd..sd + ad]);
            } else if ad > 0 {
                warnings.push(
                    "no action normalisation in the checkpoint; actions are used as they come"
                        .into(),
                );
            }
            // A constant dimension has std 0; dividing by it would give inf.
            for s in ss.iter_mut().chain(asd.iter_mut()) {
                if !(s.is_finite() && *s > 1e-8) {
                    *s = 1.0;
                }
            }
        }
        Ok(Self {
            robot: RobotSpec::unnamed("unknown", sd, ad),
            model,
            model_id,
            percentiles,
            window_percentiles: None,
            stein_window: None,
            warnings,
            device: device.clone(),
            state_mean: sm,
            state_std: ss,
            action_mean: am,
            action_std: asd,
        })
    }

    pub fn context_len(&self) -> usize {
        self.model.config().context_len
    }

    pub fn conditional(&self) -> bool {
        self.model.config().action_dim > 0
    }

    /// Floats in one state of the served robot.
    pub fn state_dim(&self) -> usize {
        self.model.config().state_dim
    }

    /// Floats in the action the model is conditioned on (0: unconditional).
    pub fn action_dim(&self) -> usize {
        self.model.config().action_dim
    }

    /// Width of the conditioning: `k * state_dim (+ action_dim)`.
    pub fn cond_dim(&self) -> usize {
        self.model.config().cond_dim()
    }

    pub fn normalize_state(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.state_mean.iter().zip(&self.state_std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    pub fn denormalize_state(&self, z: &[f32]) -> Vec<f32> {
        z.iter()
            .zip(self.state_mean.iter().zip(self.state_std.iter()).cycle())
            .map(|(v, (m, s))| v * s + m)
            .collect()
    }

    /// A normalised action; `None` (unknown) is the training mean, zero.
    pub fn normalize_action(&self, a: Option<&[f32]>) -> Vec<f32> {
        match a {
            Some(a) => a
                .iter()
                .zip(self.action_mean.iter().zip(&self.action_std))
                .map(|(v, (m, s))| (v - m) / s)
                .collect(),
            None => vec![0.0; self.action_dim()],
        }
    }

    /// The check of states against the training range (see [`StateRange`]).
    pub fn state_range(&self, max_sigma: f64) -> StateRange {
        StateRange {
            mean: self.state_mean.clone(),
            std: self.state_std.clone(),
            max_sigma: max_sigma as f32,
        }
    }

    /// Percentile (0-100) of `energy` among training transitions, linearly
    /// interpolated between the stored percentiles; `None` without them.
    pub fn percentile(&self, energy: f32) -> Option<f32> {
        self.percentiles
            .as_deref()
            .map(|p| ebm_core::stats::metrics::percentile_in(p, energy))
    }
}

/// Whether a state lies in a model's trained range: within `max_sigma`
/// training standard deviations of the training mean in every dimension.
#[derive(Debug, Clone)]
pub struct StateRange {
    mean: Vec<f32>,
    std: Vec<f32>,
    max_sigma: f32,
}

impl StateRange {
    /// `None` when `x` is in range, else why not (the first offending dimension).
    pub fn check(&self, x: &[f32]) -> Option<String> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .enumerate()
            .find_map(|(i, (v, (m, s)))| {
                let z = (v - m) / s;
                (!(z.abs() <= self.max_sigma)).then(|| {
                    format!(
                        "state[{i}] = {v} is {} training standard deviations from the training mean (limit {}): outside the model's range",
                        if z.is_finite() { format!("{:.3e}", z.abs()) } else { "infinitely many".into() },
                        self.max_sigma
                    )
                })
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

/// The OOD scorer of `checkpoints` (those that do not load, or model
/// another robot than `bundle`, are skipped with a warning), or of the
/// forecast model when none is left.
pub fn load_ood_scorer(checkpoints: &[std::path::PathBuf], bundle: &ModelBundle) -> OodScorer {
    let mut experts = Vec::new();
    let mut skipped = Vec::new();
    let mut action = bundle.conditional().then(|| bundle.action_dim());
    for dir in checkpoints {
        match ModelBundle::load(dir, &bundle.device) {
            Ok(b) if b.state_dim() != bundle.state_dim() => skipped.push(format!(
                "OOD model {} not used: it models {}-float states, the forecast model {}",
                dir.display(),
                b.state_dim(),
                bundle.state_dim()
            )),
            // Every model of a robot that takes actions takes the same size.
            Ok(b) if b.conditional() && action.is_some_and(|a| a != b.action_dim()) => {
                skipped.push(format!(
                    "OOD model {} not used: it takes {}-float actions, another model of the robot {}",
                    dir.display(),
                    b.action_dim(),
                    action.unwrap_or(0)
                ))
            }
            Ok(b) => {
                if b.conditional() {
                    action = Some(b.action_dim());
                }
                tracing::info!(model = %b.model_id, context = b.context_len(), "OOD scores from a separate model");
                experts.push(b);
            }
            Err(e) => skipped.push(format!("OOD model {} not loaded: {e}", dir.display())),
        }
    }
    if experts.is_empty() {
        experts.push(bundle.clone());
    }
    for w in &skipped {
        tracing::warn!("{w}");
    }
    OodScorer::new(experts).with_warnings(skipped)
}

/// Conditioning row `[context states, action?]` in `b`'s normalisation.
pub fn conds_for(b: &ModelBundle, states: &[Vec<f32>], action: Option<&[f32]>) -> Vec<f32> {
    let mut row: Vec<f32> = states.iter().flat_map(|s| b.normalize_state(s)).collect();
    if b.conditional() {
        row.extend(b.normalize_action(action));
    }
    row
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

    #[test]
    fn state_range_names_the_first_dimension_outside_it() {
        let mut b = ModelBundle::untrained(0, 3, vec![8], &Device::Cpu).unwrap();
        b.state_mean = vec![0.0, 1.0, 2.0];
        b.state_std = vec![1.0, 0.5, 2.0];
        let r = b.state_range(10.0);
        assert_eq!(r.check(&[9.9, 5.9, -17.9]), None);
        let why = r.check(&[0.0, 6.1, 1e20]).unwrap();
        assert!(why.starts_with("state[1] = 6.1 is 1.020e1"), "{why}");
        assert!(r
            .check(&[0.0, 1.0, f32::INFINITY])
            .unwrap()
            .contains("infinitely many"));
        assert!(r
            .check(&[f32::MAX, 1.0, 2.0])
            .unwrap()
            .starts_with("state[0]"));
    }

    #[test]
    fn normalisation_round_trips_and_survives_zero_std() {
        const DIM: usize = 6;
        let mut mean = vec![1.0f32; DIM + 2];
        let mut std = vec![2.0f32; DIM + 2];
        mean[0] = 3.0;
        std[1] = 0.0;
        let norm = Normalization { mean, std };
        let dev = Device::Cpu;
        let base = ModelBundle::untrained(0, DIM, vec![8], &dev).unwrap();
        let b =
            ModelBundle::assemble(base.model, "t".into(), Some(&norm), None, vec![], &dev).unwrap();
        let x: Vec<f32> = (0..DIM).map(|i| i as f32).collect();
        let z = b.normalize_state(&x);
        assert_eq!(z[0], -1.5);
        assert_eq!(z[1], 0.0); // std 0 replaced by 1
        let back = b.denormalize_state(&z);
        assert_eq!(back, x);
        // Unconditional: no action in the conditioning.
        assert_eq!(b.normalize_action(None), Vec::<f32>::new());
        assert_eq!(b.robot, RobotSpec::unnamed("unknown", DIM, 0));
    }
}
