//! `ebm-train traj train` and `traj eval`: the paper's trajectory experiment.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_core::checkpoint::{self, Manifest, Normalization};
use ebm_core::rollout::RolloutConfig;
use ebm_core::{FcBaselineConfig, MlpEnergy, Trainer};
use ebm_msgs::recording;
use serde::Serialize;

use super::baseline::{residual_spread, save_baseline, train_baseline};
use super::config::TrajectoryConfig;
use super::data::{fit_delta_scale, fit_normalization, fit_prior, normalize, TransitionData};
use super::ood_stats::OodStatistics;
use super::split::splits;

#[derive(Debug, Clone, Serialize)]
pub struct TrajTrainSummary {
    pub train_trajectories: usize,
    pub ebm_seconds: f64,
    pub fc_seconds: f64,
    pub fc_final_mse: f64,
}

/// Trains the EBM (into `<run>/ebm`) and the FC baseline (into `<run>/fc`).
pub fn train_trajectory(
    cfg: &TrajectoryConfig,
    base: &Path,
    run: &Path,
    device: &Device,
) -> Result<TrajTrainSummary> {
    let path = base.join(&cfg.recording);
    let ds = recording::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let mut cfg = cfg.clone();
    cfg.resolve_robot(ds.robot.state_dim, ds.robot.action_dim)
        .with_context(|| format!("the robot of {}", path.display()))?;
    let cfg = &cfg;
    let train_ids = splits(&ds, cfg).fit;
    let d = ds.robot.state_dim;
    let ns = fit_normalization(&ds.states, &train_ids);
    let na = fit_normalization(&ds.actions, &train_ids);
    let norm = Normalization {
        mean: ns.mean.iter().chain(&na.mean).copied().collect(),
        std: ns.std.iter().chain(&na.std).copied().collect(),
    };
    let states = normalize(&ds.states, &ns);
    let mut model_cfg = cfg.model.clone();
    if cfg.predict_change {
        model_cfg.delta_scale = fit_delta_scale(&states, &train_ids, cfg.change_scale_floor);
    }
    let mut data = TransitionData {
        states,
        actions: cfg.conditional().then(|| normalize(&ds.actions, &na)),
        ids: train_ids.clone(),
        context_len: cfg.model.context_len,
        start_noise: cfg.start_noise,
        data_start_share: cfg.data_start_share,
        data_start_noise: cfg.data_start_noise,
        delta_scale: None,
        prior: None,
        context_noise: cfg.context_noise,
    };
    if let Some(ridge) = cfg.linear_prior_ridge {
        let (prior, scale) = fit_prior(&data, ridge, cfg.change_scale_floor)?;
        tracing::info!(?scale, "fitted the linear prior; residual spreads");
        model_cfg.delta_scale = scale;
        model_cfg.prior = Some(prior);
    }
    data.delta_scale = cfg.predict_change.then(|| model_cfg.delta_scale.clone());
    data.prior = model_cfg.prior.clone();
    tracing::info!(
        trajectories = train_ids.len(),
        robot = %ds.robot.kind,
        state_dim = d,
        action_dim = cfg.model.action_dim,
        "training the trajectory EBM"
    );
    let t0 = Instant::now();
    let mut trainer = Trainer::<MlpEnergy>::new(
        model_cfg,
        cfg.trainer.clone(),
        d,
        data_cond_dim(cfg),
        device,
    )?;
    trainer.set_normalization(Some(norm.clone()));
    trainer.train(&data, cfg.steps, Some(&run.join("ebm")), |s| {
        if s.step % 500 == 0 {
            tracing::info!(
                step = s.step,
                loss = s.loss,
                e_pos = s.e_pos,
                e_neg = s.e_neg,
                "trajectory EBM"
            );
        }
    })?;
    let ebm_seconds = t0.elapsed().as_secs_f64();
    let facts = ExportFacts {
        train_trajectories: train_ids.len(),
        rollout: &cfg.eval.rollout,
        recording: &cfg.recording,
        robot: &ds.robot,
    };
    export_model(&trainer, &data, &norm, &facts, &run.join("model"), device)?;
    let fc_cfg = FcBaselineConfig {
        state_dim: d,
        context_len: cfg.fc_context_len(),
        action_dim: cfg.model.action_dim,
        hidden: cfg.model.hidden.clone(),
        activation: cfg.model.activation,
        spectral_norm: true,
        residual: true,
    };
    // The baseline predicts next states themselves, from its own context
    // length, with its own context noise.
    data.context_len = cfg.fc_context_len();
    data.delta_scale = None;
    data.prior = None;
    data.context_noise = cfg.baseline.context_noise;
    let t1 = Instant::now();
    let (fc, params, fc_final_mse) =
        train_baseline(&fc_cfg, &cfg.baseline, &data, cfg.trainer.seed, device)?;
    let spread = residual_spread(&fc, &data, RESIDUAL_SAMPLES, cfg.trainer.seed, device)?;
    save_baseline(
        &run.join("fc"),
        &fc_cfg,
        &params,
        &norm,
        cfg.baseline.steps,
        &spread,
        data.context_noise,
    )?;
    Ok(TrajTrainSummary {
        train_trajectories: train_ids.len(),
        ebm_seconds,
        fc_seconds: t1.elapsed().as_secs_f64(),
        fc_final_mse,
    })
}

/// Transitions the noisy baseline's residual spread is measured on.
const RESIDUAL_SAMPLES: usize = 20_000;

/// Writes the trained EBM as an inference export (weights, normalisation and
/// the percentiles of its energy on training transitions, for OOD scores):
/// what the runtime loads.
struct ExportFacts<'a> {
    train_trajectories: usize,
    rollout: &'a RolloutConfig,
    recording: &'a Path,
    robot: &'a ebm_msgs::RobotSpec,
}

fn export_model(
    trainer: &Trainer<MlpEnergy>,
    data: &TransitionData,
    norm: &Normalization,
    facts: &ExportFacts,
    dir: &Path,
    device: &Device,
) -> Result<()> {
    let model = ebm_core::EnergyModel::frozen(trainer.model());
    let stats = OodStatistics::compute(&model, data, trainer.config().seed, device)?;
    let mut m = Manifest::new::<MlpEnergy>(model.config(), trainer.step_count())?;
    m.normalization = Some(norm.clone());
    m.robot = Some(super::robot_for_manifest(facts.robot));
    stats.record(&mut m);
    m.extra
        .insert("train_trajectories".into(), facts.train_trajectories.into());
    m.extra
        .insert("context_noise".into(), f64::from(data.context_noise).into());
    // The sampler settings the model was trained and evaluated with: the
    // runtime's defaults for this model.
    m.extra
        .insert("rollout".into(), serde_json::to_value(facts.rollout)?);
    m.extra.insert(
        "recording".into(),
        facts.recording.display().to_string().into(),
    );
    checkpoint::save_model(dir, m, trainer.params())?;
    tracing::info!(dir = %dir.display(), median_energy = stats.energy[50], "exported the model");
    Ok(())
}

fn data_cond_dim(cfg: &TrajectoryConfig) -> usize {
    cfg.model.cond_dim()
}
