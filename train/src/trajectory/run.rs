//! `ebm-train traj train` and `traj eval`: the paper's trajectory experiment.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::checkpoint::{self, Manifest, Normalization};
use ebm_core::frechet::{frechet_distance, GaussianFit};
use ebm_core::rollout::{rollout, RolloutConfig};
use ebm_core::{FcBaselineConfig, MlpEnergy, Rng, Trainer};
use ebm_msgs::recording::{self, Dataset};
use ndarray::{s, Array3, Axis};
use serde::Serialize;

use super::baseline::{load_baseline, rollout_baseline, save_baseline, train_baseline};
use super::config::TrajectoryConfig;
use super::data::{fit_delta_scale, fit_normalization, fit_prior, normalize, TransitionData};
use super::ood_stats::OodStatistics;
use super::report::{markdown_table, rollout_figure};
use crate::figure::line_chart;

pub(super) fn ids(v: &[u64], limit: usize) -> Vec<usize> {
    let n = if limit == 0 {
        v.len()
    } else {
        limit.min(v.len())
    };
    v[..n].iter().map(|&i| i as usize).collect()
}

pub(super) fn split_norm(n: &Normalization, d: usize) -> (Normalization, Normalization) {
    let part = |r: std::ops::Range<usize>| Normalization {
        mean: n.mean[r.clone()].to_vec(),
        std: n.std[r].to_vec(),
    };
    (part(0..d), part(d..n.mean.len()))
}

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
    let train_ids = ids(ds.train_ids(), cfg.train_trajectories);
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
        context_len: cfg.model.context_len,
        action_dim: cfg.model.action_dim,
        hidden: cfg.model.hidden.clone(),
        activation: cfg.model.activation,
        spectral_norm: true,
        residual: true,
    };
    // The baseline predicts next states themselves, with its own context noise.
    data.delta_scale = None;
    data.prior = None;
    data.context_noise = cfg.baseline.context_noise;
    let t1 = Instant::now();
    let (_, params, fc_final_mse) =
        train_baseline(&fc_cfg, &cfg.baseline, &data, cfg.trainer.seed, device)?;
    save_baseline(&run.join("fc"), &fc_cfg, &params, &norm, cfg.baseline.steps)?;
    Ok(TrajTrainSummary {
        train_trajectories: train_ids.len(),
        ebm_seconds,
        fc_seconds: t1.elapsed().as_secs_f64(),
        fc_final_mse,
    })
}

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

/// Offline evaluation of one setting.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TrajEvalReport {
    pub test_trajectories: usize,
    pub particles: usize,
    pub horizon: usize,
    /// Frechet distance per predicted step, in normalised units.
    pub fd_ebm: Vec<f64>,
    pub fd_fc: Vec<f64>,
    pub avg_fd_ebm: f64,
    pub avg_fd_fc: f64,
    /// `avg_fd_ebm / avg_fd_fc` (the paper: 0.18 unconditional, 0.45 conditional).
    pub ratio: f64,
    /// Mean squared error of the particle mean (EBM) or prediction (FC) per step.
    pub mse_ebm: Vec<f64>,
    pub mse_fc: Vec<f64>,
    pub seconds: f64,
}

fn window(
    a: &Array3<f32>,
    ids: &[usize],
    from: usize,
    len: usize,
    device: &Device,
) -> Result<Tensor> {
    let d = a.len_of(Axis(2));
    let mut v: Vec<f32> = Vec::with_capacity(ids.len() * len * d);
    for &i in ids {
        v.extend(a.slice(s![i, from..from + len, ..]).iter());
    }
    Ok(Tensor::from_vec(v, (ids.len(), len, d), device)?)
}

fn per_step(pred: &[Vec<Vec<f32>>], truth: &[Vec<Vec<f32>>], d: usize) -> (Vec<f64>, Vec<f64>) {
    // pred[h] = rows of predicted states at step h, truth[h] = true rows.
    let mut fd = Vec::new();
    let mut mse = Vec::new();
    for (p, t) in pred.iter().zip(truth) {
        let gp = GaussianFit::of_rows(p.iter().map(Vec::as_slice), d);
        let gt = GaussianFit::of_rows(t.iter().map(Vec::as_slice), d);
        fd.push(match (gp, gt) {
            (Some(a), Some(b)) => frechet_distance(&a, &b),
            _ => f64::NAN,
        });
        let per = p.len() / t.len().max(1);
        let mut err = 0.0;
        for (j, tr) in t.iter().enumerate() {
            for k in 0..d {
                let m: f64 =
                    (0..per).map(|q| f64::from(p[j * per + q][k])).sum::<f64>() / per as f64;
                err += (m - f64::from(tr[k])).powi(2);
            }
        }
        mse.push(err / (t.len() * d).max(1) as f64);
    }
    (fd, mse)
}

/// State dimensions drawn in the rollout figure: the six that move most
/// along the shown trajectory (any robot: the object and the busiest joints).
fn figure_dims(truth: &[Vec<f32>]) -> Vec<usize> {
    let d = truth.first().map_or(0, Vec::len);
    let range = |j: usize| {
        let (lo, hi) = truth.iter().fold((f32::MAX, f32::MIN), |(lo, hi), r| {
            (lo.min(r[j]), hi.max(r[j]))
        });
        hi - lo
    };
    let mut dims: Vec<usize> = (0..d).collect();
    dims.sort_by(|&a, &b| range(b).total_cmp(&range(a)));
    dims.truncate(6);
    dims.sort_unstable();
    dims
}

/// Rolls out the EBM and the FC baseline of `run` on the test split and scores
/// both against the truth; writes `report.json` and `fd.png` into `out`.
pub fn evaluate(
    cfg: &TrajectoryConfig,
    base: &Path,
    run: &Path,
    out: &Path,
    device: &Device,
) -> Result<TrajEvalReport> {
    let t0 = Instant::now();
    let ds: Dataset = recording::load(&base.join(&cfg.recording))?;
    let loaded = checkpoint::load_latest(&run.join("ebm"), device)?
        .context("no EBM checkpoint in the run")?;
    let (ebm, _) = loaded.model::<MlpEnergy>(device)?;
    let ebm = ebm_core::EnergyModel::frozen(&ebm);
    let norm = loaded
        .manifest
        .normalization
        .clone()
        .context("EBM checkpoint lacks normalisation")?;
    let fc = load_baseline(&run.join("fc"), device)?;
    let d = ds.robot.state_dim;
    anyhow::ensure!(
        d == ebm.config().state_dim,
        "the recording has {d}-float states, the EBM models {}",
        ebm.config().state_dim
    );
    let conditional = ebm.config().action_dim > 0;
    let (ns, na) = split_norm(&norm, d);
    let (states, actions) = (normalize(&ds.states, &ns), normalize(&ds.actions, &na));
    let test = ids(ds.test_ids(), cfg.eval.test_trajectories);
    let (k, h, p) = (
        cfg.model.context_len,
        cfg.eval.rollout.horizon,
        cfg.eval.rollout.particles,
    );
    anyhow::ensure!(
        states.len_of(Axis(1)) >= k + h,
        "trajectories are shorter than context + horizon ({})",
        k + h
    );
    let context = window(&states, &test, 0, k, device)?;
    let truth = window(&states, &test, k, h, device)?;
    let acts = if conditional {
        Some(window(&actions, &test, k - 1, h, device)?)
    } else {
        None
    };
    let mut rng = Rng::derived(cfg.trainer.seed, "trajectory-eval");
    let r = rollout(&ebm, &context, acts.as_ref(), &cfg.eval.rollout, &mut rng)?;
    let fc_pred = rollout_baseline(&fc, &context, acts.as_ref(), h)?;
    // Regroup as rows per step.
    let by_step = |t: &Tensor| -> Result<Vec<Vec<Vec<f32>>>> {
        // t: [B, P, H, D] -> per h: [B * P] rows.
        let (b, pp, hh, dd) = t.dims4()?;
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        Ok((0..hh)
            .map(|step| {
                (0..b * pp)
                    .map(|row| v[(row * hh + step) * dd..(row * hh + step + 1) * dd].to_vec())
                    .collect()
            })
            .collect())
    };
    let truth_rows = by_step(&truth.unsqueeze(1)?)?;
    let (fd_ebm, mse_ebm) = per_step(&by_step(&r.states)?, &truth_rows, d);
    let (fd_fc, mse_fc) = per_step(&by_step(&fc_pred.unsqueeze(1)?)?, &truth_rows, d);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = TrajEvalReport {
        test_trajectories: test.len(),
        particles: p,
        horizon: h,
        avg_fd_ebm: mean(&fd_ebm),
        avg_fd_fc: mean(&fd_fc),
        ratio: mean(&fd_ebm) / mean(&fd_fc),
        fd_ebm,
        fd_fc,
        mse_ebm,
        mse_fc,
        seconds: t0.elapsed().as_secs_f64(),
    };
    line_chart(
        &[
            (&report.fd_ebm, [31, 119, 180]),
            (&report.fd_fc, [214, 39, 40]),
        ],
        640,
        360,
    )
    .save_png(&out.join("fd.png"))?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let title = if conditional {
        "Action-conditional trajectory EBM vs FC baseline"
    } else {
        "Unconditional trajectory EBM vs FC baseline"
    };
    std::fs::write(out.join("report.md"), markdown_table(&report, title))?;
    // Figure 12: the first test trajectory, its particles and the FC rollout.
    let first = test[0];
    let truth: Vec<Vec<f32>> = (k - 1..k + h)
        .map(|t| states.slice(s![first, t, ..]).to_vec())
        .collect();
    let fc0: Vec<Vec<f32>> = fc_pred.get(0)?.to_vec2()?;
    let particles: Vec<Vec<Vec<f32>>> = r.states.get(0)?.to_vec3()?;
    rollout_figure(
        &truth,
        &fc0,
        &particles,
        &figure_dims(&truth),
        &out.join("rollouts.png"),
    )?;
    Ok(report)
}
