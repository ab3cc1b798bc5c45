//! `ebm-train traj eval`: the EBM, the FC baseline and the noisy FC rolled
//! out from the same starts with the same help, scored per predicted step by
//! Frechet distance and particle-mean error.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::checkpoint;
use ebm_core::rollout::rollout;
use ebm_core::stats::forecast_error::StepErrors;
use ebm_core::{FcBaseline, MlpEnergy, Rng};
use ebm_msgs::recording::{self, Dataset};
use ndarray::{s, Array3, Axis};

use super::baseline::{load_baseline, rollout_baseline, FcRollout};
use super::config::TrajectoryConfig;
use super::data::normalize;
use super::report::{fd_figure, markdown_table, rollout_figure, TrajEvalReport};
use super::split::splits;

/// The forecasts of the three predictors from the same starts, each
/// `[B, P, H, D]` (P = 1 for the plain FC).
pub struct Forecasts {
    pub ebm: Tensor,
    pub fc: Tensor,
    pub fc_noisy: Tensor,
}

/// Rolls out the EBM, the FC and the noisy FC from `context` (`[B, k, D]`,
/// at least as many states as either model takes; each gets its own last
/// ones) with the same help: the config's clamp box on every predicted
/// state of each, the EBM's particle count for both stochastic predictors.
pub fn forecasts(
    cfg: &TrajectoryConfig,
    ebm: &MlpEnergy,
    fc: &FcBaseline,
    spread: &[f32],
    context: &Tensor,
    actions: Option<&Tensor>,
    rng: &mut Rng,
) -> Result<Forecasts> {
    let (h, p) = (cfg.eval.rollout.horizon, cfg.eval.rollout.particles);
    let mut sampler = cfg.eval.rollout.clone();
    sampler.langevin.clamp = cfg.rollout_clamp();
    let k = context.dim(1)?;
    let last = |n: usize| -> Result<Tensor> {
        anyhow::ensure!(n <= k, "a model takes {n} context states, {k} given");
        Ok(context.narrow(1, k - n, n)?.contiguous()?)
    };
    let r = rollout(
        ebm,
        &last(ebm.config().context_len)?,
        actions,
        &sampler,
        rng,
    )?;
    let fc_context = last(fc.config().context_len)?;
    let plain = FcRollout {
        horizon: h,
        clamp: cfg.rollout_clamp(),
        noise: None,
    };
    let noisy = FcRollout {
        noise: Some((spread, p)),
        ..plain
    };
    Ok(Forecasts {
        ebm: r.states,
        fc: rollout_baseline(fc, &fc_context, actions, &plain, rng)?,
        fc_noisy: rollout_baseline(fc, &fc_context, actions, &noisy, rng)?,
    })
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

/// Rolls out the EBM, the FC baseline and the noisy FC of `run` on the
/// scored split (test, or validation in a tuning run) and scores them
/// against the truth; writes `report.json`, `report.md`, `fd.svg` and
/// `rollouts.svg` into `out`.
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
    let (fc, spread) = load_baseline(&run.join("fc"), device)?;
    let d = ds.robot.state_dim;
    anyhow::ensure!(
        d == ebm.config().state_dim,
        "the recording has {d}-float states, the EBM models {}",
        ebm.config().state_dim
    );
    let conditional = ebm.config().action_dim > 0;
    let (ns, na) = norm.split(d);
    let (states, actions) = (normalize(&ds.states, &ns), normalize(&ds.actions, &na));
    let test = splits(&ds, cfg).scored;
    anyhow::ensure!(!test.is_empty(), "no trajectories to score");
    // The longer of the two models' contexts.
    let k = ebm.config().context_len.max(fc.config().context_len);
    let (h, p) = (cfg.eval.rollout.horizon, cfg.eval.rollout.particles);
    // The first predicted step; the k states before it are the context.
    let first = cfg.eval.first_step.max(k);
    anyhow::ensure!(
        states.len_of(Axis(1)) >= first + h,
        "trajectories are shorter than the first predicted step + horizon ({})",
        first + h
    );
    let context = window(&states, &test, first - k, k, device)?;
    let truth = window(&states, &test, first, h, device)?;
    let acts = if conditional {
        Some(window(&actions, &test, first - 1, h, device)?)
    } else {
        None
    };
    let mut rng = Rng::derived(cfg.trainer.seed, "trajectory-eval");
    let f = forecasts(cfg, &ebm, &fc, &spread, &context, acts.as_ref(), &mut rng)?;
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
    let per_step = |pred: &Tensor| -> Result<(Vec<f64>, Vec<f64>)> {
        let e = StepErrors::of(&by_step(pred)?, &truth_rows, d);
        Ok((e.fd, e.mse))
    };
    let (fd_ebm, mse_ebm) = per_step(&f.ebm)?;
    let (fd_fc, mse_fc) = per_step(&f.fc)?;
    let (fd_fc_noisy, mse_fc_noisy) = per_step(&f.fc_noisy)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = TrajEvalReport {
        test_trajectories: test.len(),
        particles: p,
        horizon: h,
        avg_fd_ebm: mean(&fd_ebm),
        avg_fd_fc: mean(&fd_fc),
        ratio: mean(&fd_ebm) / mean(&fd_fc),
        avg_fd_fc_noisy: mean(&fd_fc_noisy),
        fd_ebm,
        fd_fc,
        mse_ebm,
        mse_fc,
        fd_fc_noisy,
        mse_fc_noisy,
        split: if cfg.validation_run {
            "validation"
        } else {
            "test"
        }
        .into(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let title = format!(
        "{}, {}: EBM vs FC baseline",
        ds.robot.kind,
        if conditional {
            "action-conditional"
        } else {
            "unconditional"
        }
    );
    std::fs::write(out.join("report.md"), markdown_table(&report, &title))?;
    fd_figure(&report, &title, &out.join("fd.svg"))?;
    // Figure 12: the first test trajectory, its particles and the FC rollout.
    let shown = test[0];
    let truth: Vec<Vec<f32>> = (first - 1..first + h)
        .map(|t| states.slice(s![shown, t, ..]).to_vec())
        .collect();
    let fc0: Vec<Vec<f32>> = f.fc.get(0)?.get(0)?.to_vec2()?;
    let particles: Vec<Vec<Vec<f32>>> = f.ebm.get(0)?.to_vec3()?;
    rollout_figure(
        &truth,
        &fc0,
        &particles,
        &figure_dims(&truth),
        &ds.robot.state_names,
        &format!(
            "{title}: {h} predicted steps of {} trajectory {shown}",
            report.split
        ),
        &out.join("rollouts.svg"),
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use ebm_core::{EnergyModel, FcBaselineConfig, MlpEnergyConfig, ParamStore};

    use super::*;

    /// Every predictor of the comparison is held in the config's clamp box:
    /// the EBM's chains, the FC's and the noisy FC's predictions.
    #[test]
    fn every_predictor_gets_the_same_clamp() -> Result<()> {
        let dev = Device::Cpu;
        let text = include_str!("../../../configs/traj_uncond.toml");
        let mut cfg = TrajectoryConfig::parse(text)?;
        cfg.eval.rollout.horizon = 5;
        cfg.eval.rollout.particles = 3;
        cfg.eval.rollout.langevin.steps = 2;
        cfg.eval.rollout.langevin.clamp = Some([-0.25, 0.25]);
        let d = 4;
        let mc = MlpEnergyConfig {
            state_dim: d,
            context_len: 1,
            ..MlpEnergyConfig::new(d)
        };
        let ebm = MlpEnergy::init(&mc, &ParamStore::new(0, &dev))?.frozen();
        let fc_cfg = FcBaselineConfig {
            state_dim: d,
            context_len: 2,
            action_dim: 0,
            hidden: vec![8],
            activation: mc.activation,
            spectral_norm: true,
            residual: true,
        };
        let fc = FcBaseline::new(&fc_cfg, ParamStore::new(1, &dev).var_builder())?;
        // Starts far outside the box, and residual noise that would leave it.
        // More context states than either model takes: each gets its last ones.
        let context = Tensor::full(3f32, (2, 3, d), &dev)?;
        let spread = vec![5.0f32; d];
        let f = forecasts(&cfg, &ebm, &fc, &spread, &context, None, &mut Rng::new(3))?;
        for (name, t, p) in [
            ("EBM", &f.ebm, 3),
            ("FC", &f.fc, 1),
            ("noisy FC", &f.fc_noisy, 3),
        ] {
            assert_eq!(t.dims(), [2, p, 5, d], "{name}");
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            let (lo, hi) = v
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            assert!(
                lo >= -0.25 && hi <= 0.25,
                "{name} left the box: [{lo}, {hi}]"
            );
        }
        // The noisy FC's particles differ; the plain FC is deterministic.
        let n: Vec<f32> = f.fc_noisy.get(0)?.get(0)?.flatten_all()?.to_vec1()?;
        let m: Vec<f32> = f.fc_noisy.get(0)?.get(1)?.flatten_all()?.to_vec1()?;
        assert_ne!(n, m);
        Ok(())
    }
}
