//! `traj calibrate`: recomputes the OOD statistics an inference export
//! stores ([`super::ood_stats`]) on a recording's training split, keeping
//! the export's weights, normalisation and model config: for an export made
//! before a statistic existed, or to calibrate a served model on other
//! nominal data. The export is rewritten atomically.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_core::checkpoint;
use ebm_core::{EnergyModel, MlpEnergy};
use ebm_msgs::recording;
use ndarray::Axis;

use super::config::TrajectoryConfig;
use super::data::{normalize, TransitionData};
use super::ood_stats::OodStatistics;
use super::split::splits;

#[derive(Debug, Clone)]
pub struct CalibrationSummary {
    pub train_trajectories: usize,
    pub median_energy: f32,
    /// Whether the export now stores the Stein window test.
    pub stein: bool,
}

/// Recalibrates the export in `model_dir` on `cfg`'s recording (relative
/// paths from `base`), its training split and `train_trajectories`.
pub fn calibrate_export(
    cfg: &TrajectoryConfig,
    base: &Path,
    model_dir: &Path,
    device: &Device,
) -> Result<CalibrationSummary> {
    let loaded = checkpoint::load(model_dir, device)
        .with_context(|| format!("loading the export {}", model_dir.display()))?;
    let (model, _) = loaded.model::<MlpEnergy>(device)?;
    let model = model.frozen();
    let mc = model.config();
    let norm = loaded
        .manifest
        .normalization
        .clone()
        .context("the export has no normalisation statistics")?;
    let path = base.join(&cfg.recording);
    let ds = recording::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let (d, a) = (ds.states.len_of(Axis(2)), ds.actions.len_of(Axis(2)));
    anyhow::ensure!(
        d == mc.state_dim && norm.mean.len() == d + a,
        "the recording has {d}-float states and {a}-float actions; the export models {} and normalises {} values",
        mc.state_dim,
        norm.mean.len()
    );
    let (ns, na) = norm.split(d);
    let train_ids = splits(&ds, cfg).fit;
    let data = TransitionData {
        states: normalize(&ds.states, &ns),
        actions: (mc.action_dim > 0).then(|| normalize(&ds.actions, &na)),
        ids: train_ids,
        context_len: mc.context_len,
        start_noise: cfg.start_noise,
        data_start_share: cfg.data_start_share,
        data_start_noise: cfg.data_start_noise,
        delta_scale: (!mc.delta_scale.is_empty()).then(|| mc.delta_scale.clone()),
        prior: mc.prior.clone(),
        context_noise: 0.0,
    };
    let stats = OodStatistics::compute(&model, &data, cfg.trainer.seed, device)?;
    let mut manifest = loaded.manifest.clone();
    stats.record(&mut manifest);
    checkpoint::save(model_dir, manifest, &loaded.files)?;
    Ok(CalibrationSummary {
        train_trajectories: data.ids.len(),
        median_energy: stats.energy[50],
        stein: stats.stein.is_some(),
    })
}
