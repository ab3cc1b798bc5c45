//! The served model: a trajectory `MlpEnergy` with its normalisation and
//! training-energy percentiles, loaded from a checkpoint (or, when allowed,
//! a seeded untrained stand-in), and the conversions between wire units and
//! the model's normalised units.

use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint::{
    self, Normalization, WindowPercentiles, ENERGY_PERCENTILES, STEIN_WINDOW,
    WINDOW_ENERGY_PERCENTILES,
};
use ebm_core::stein::SteinWindow;
use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
use ebm_msgs::{ACTION_DIM, STATE_DIM};
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
    /// Loads and checks a trajectory checkpoint (31-float states, no action
    /// or a 20-float action in the conditioning).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, RuntimeError> {
        let loaded = checkpoint::load(dir, device)?;
        let (model, _) = loaded.model::<MlpEnergy>(device)?;
        let cfg = model.config();
        if cfg.state_dim != STATE_DIM || !(cfg.action_dim == 0 || cfg.action_dim == ACTION_DIM) {
            return Err(RuntimeError::Model(format!(
                "{} models states of {} and actions of {}; the runtime serves {STATE_DIM} and 0 or {ACTION_DIM}",
                dir.display(),
                cfg.state_dim,
                cfg.action_dim
            )));
        }
        if cfg.context_len == 0 {
            return Err(RuntimeError::Model(format!(
                "{}: an unconditional energy (context_len 0) cannot forecast",
                dir.display()
            )));
        }
        let mut warnings = Vec::new();
        let percentiles = match loaded.manifest.extra.get(ENERGY_PERCENTILES) {
            Some(v) => match serde_json::from_value::<Vec<f32>>(v.clone()) {
                Ok(p) if p.len() == 101 && p.iter().all(|x| x.is_finite()) => {
                    let mut p = p;
                    p.sort_by(f32::total_cmp);
                    Some(p)
                }
                _ => {
                    warnings.push(format!("{ENERGY_PERCENTILES} in the checkpoint is not 101 finite numbers; OOD percentiles are calibrated online"));
                    None
                }
            },
            None => {
                warnings.push("the checkpoint has no training energy percentiles; OOD percentiles are calibrated online".into());
                None
            }
        };
        let windows = loaded
            .manifest
            .extra
            .get(WINDOW_ENERGY_PERCENTILES)
            .and_then(|v| match serde_json::from_value::<WindowPercentiles>(v.clone()) {
                Ok(mut w)
                    if w.window > 0
                        && w.percentiles.len() == 101
                        && w.percentiles.iter().all(|x| x.is_finite()) =>
                {
                    w.percentiles.sort_by(f32::total_cmp);
                    Some(w)
                }
                _ => {
                    warnings.push(format!("{WINDOW_ENERGY_PERCENTILES} in the checkpoint is not a window and 101 finite numbers; windowed OOD scores have no percentile"));
                    None
                }
            });
        let stein = loaded.manifest.extra.get(STEIN_WINDOW).and_then(|v| {
            let t = serde_json::from_value::<SteinWindow>(v.clone()).map_err(|e| e.to_string());
            match t.and_then(|t| t.check(cfg.state_dim).map(|()| t)) {
                Ok(t) => Some(t),
                Err(e) => {
                    warnings.push(format!("{STEIN_WINDOW} in the checkpoint is unusable ({e}); windowed OOD scores fall back to the mean energy"));
                    None
                }
            }
        });
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
        bundle.window_percentiles = windows;
        bundle.stein_window = stein;
        Ok(bundle)
    }

    /// A seeded untrained model with identity normalisation (k = 1, unconditional).
    pub fn untrained(seed: u64, hidden: Vec<usize>, device: &Device) -> Result<Self, RuntimeError> {
        let mut cfg = MlpEnergyConfig::new(STATE_DIM);
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
    /// when it is missing and that is allowed.
    pub fn from_config(
        cfg: &ModelConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, RuntimeError> {
        let dir = &cfg.checkpoint;
        if dir.join(checkpoint::MANIFEST).is_file() || !cfg.allow_untrained {
            return Self::load(dir, device);
        }
        warn!(
            checkpoint = %dir.display(),
            "no checkpoint there: serving an untrained model (forecasts and OOD scores are meaningless); train one with `ebm-train traj train`"
        );
        let mut b = Self::untrained(seed, vec![128, 128, 128], device)?;
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
        let ones = |n| vec![1.0f32; n];
        let zeros = |n| vec![0.0f32; n];
        let (mut sm, mut ss, mut am, mut asd) = (
            zeros(STATE_DIM),
            ones(STATE_DIM),
            zeros(ACTION_DIM),
            ones(ACTION_DIM),
        );
        if let Some(n) = norm {
            if n.mean.len() != n.std.len() || n.mean.len() < STATE_DIM {
                return Err(RuntimeError::Model(format!(
                    "normalisation has {} means and {} stds, expected {STATE_DIM} (+ {ACTION_DIM})",
                    n.mean.len(),
                    n.std.len()
                )));
            }
            sm.copy_from_slice(&n.mean[..STATE_DIM]);
            ss.copy_from_slice(&n.std[..STATE_DIM]);
            if n.mean.len() >= STATE_DIM + ACTION_DIM {
                am.copy_from_slice(&n.mean[STATE_DIM..STATE_DIM + ACTION_DIM]);
                asd.copy_from_slice(&n.std[STATE_DIM..STATE_DIM + ACTION_DIM]);
            } else if model.config().action_dim > 0 {
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

    /// Width of the conditioning: `k * 31 (+ 20)`.
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
            None => vec![0.0; ACTION_DIM],
        }
    }

    /// Percentile (0-100) of `energy` among training transitions, linearly
    /// interpolated between the stored percentiles; `None` without them.
    pub fn percentile(&self, energy: f32) -> Option<f32> {
        self.percentiles
            .as_deref()
            .map(|p| ebm_core::metrics::percentile_in(p, energy))
    }
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

/// The OOD scorer of the config's `[ood] checkpoints` (those that do not
/// load are skipped with a warning), or of the forecast model when none is
/// left.
pub fn load_ood_scorer(cfg: &crate::config::RuntimeConfig, bundle: &ModelBundle) -> OodScorer {
    let mut experts = Vec::new();
    for dir in &cfg.ood.checkpoints {
        match ModelBundle::load(dir, &bundle.device) {
            Ok(b) => {
                tracing::info!(model = %b.model_id, context = b.context_len(), "OOD scores from a separate model");
                experts.push(b);
            }
            Err(e) => {
                tracing::warn!(checkpoint = %dir.display(), "OOD model not loaded ({e}); skipped")
            }
        }
    }
    if experts.is_empty() {
        experts.push(bundle.clone());
    }
    OodScorer::new(experts)
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
    fn normalisation_round_trips_and_survives_zero_std() {
        let mut mean = vec![1.0f32; STATE_DIM + ACTION_DIM];
        let mut std = vec![2.0f32; STATE_DIM + ACTION_DIM];
        mean[0] = 3.0;
        std[1] = 0.0;
        let norm = Normalization { mean, std };
        let dev = Device::Cpu;
        let base = ModelBundle::untrained(0, vec![8], &dev).unwrap();
        let b =
            ModelBundle::assemble(base.model, "t".into(), Some(&norm), None, vec![], &dev).unwrap();
        let x: Vec<f32> = (0..STATE_DIM).map(|i| i as f32).collect();
        let z = b.normalize_state(&x);
        assert_eq!(z[0], -1.5);
        assert_eq!(z[1], 0.0); // std 0 replaced by 1
        let back = b.denormalize_state(&z);
        assert_eq!(back, x);
        assert_eq!(b.normalize_action(None), vec![0.0; ACTION_DIM]);
        assert_eq!(b.normalize_action(Some(&[3.0; ACTION_DIM]))[0], 1.0);
    }
}
