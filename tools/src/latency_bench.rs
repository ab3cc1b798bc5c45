//! `ebm-tools bench`: state-to-forecast latency through the daemon over
//! Zenoh, and how many robots one machine serves at a given rate (batched
//! forecasts timed on the inference path itself). A benchmark, not a test.

use std::time::{Duration, Instant};

use ebm_core::Rng;
use ebm_msgs::{decode, encode, Encoding, Forecast, RobotId, RobotState};
use serde::Serialize;

use ebm_runtime::config::RuntimeConfig;
use ebm_runtime::local::LocalDaemon;
use ebm_runtime::model::RobotModel;
use ebm_runtime::RuntimeError;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model_id: String,
    pub horizon: usize,
    pub particles: usize,
    pub langevin_steps: usize,
    pub samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// (robots in one batch, seconds per batched forecast).
    pub batch_seconds: Vec<(usize, f64)>,
    /// Robots served at `rate_hz` (forecasts per robot per second) by the
    /// best batch size measured.
    pub rate_hz: f64,
    pub robots_at_rate: f64,
    /// With `[forecast.warm]` on: the same for forecasts started warm
    /// from the previous forecast of the same robots (its steps per
    /// prediction, then (robots, seconds) and robots served).
    pub warm: Option<WarmBench>,
}

/// The batched forecasts of [`BenchReport`], started warm.
#[derive(Debug, Clone, Serialize)]
pub struct WarmBench {
    pub langevin_steps: usize,
    /// The first and the last this many predictions start cold
    /// (`[forecast.warm]`'s `cold_head`, `cold_tail`).
    pub cold_head: usize,
    pub cold_tail: usize,
    pub batch_seconds: Vec<(usize, f64)>,
    pub robots_at_rate: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs both measurements.
pub async fn bench(
    mut cfg: RuntimeConfig,
    samples: usize,
    batches: &[usize],
    rate_hz: f64,
) -> Result<BenchReport, RuntimeError> {
    let device = ebm_core::device::select(&cfg.device)?;
    cfg.forecast.rate_hz = 1000.0; // never rate-limited: each state is served at once
    let served = RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
    let model_id = served.model_id.clone();
    // The served robot's sizes: any robot.
    let (state_dim, action_dim) = (served.state_dim(), served.robot.action_dim);
    let daemon = LocalDaemon::start(cfg.clone(), served).await?;
    let robot = RobotId::new("bench")?;
    let publisher = daemon.state_publisher(&robot).await?;
    let (_sub, mut rx) = daemon.subscribe(daemon.keys.forecast(&robot)).await?;
    let mut rng = Rng::new(5);
    let mut lat = Vec::with_capacity(samples);
    for seq in 0..=samples as u64 {
        let state = RobotState {
            robot_id: robot.to_string(),
            episode: 0,
            seq,
            stamp_ns: seq * 40_000_000,
            state: rng.normal_vec(state_dim).iter().map(|v| v * 0.1).collect(),
            last_action: (action_dim > 0).then(|| vec![0.0; action_dim]),
        };
        let t0 = Instant::now();
        publisher
            .put(encode(&state, Encoding::Bincode)?)
            .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
            .await
            .map_err(RuntimeError::zenoh("publishing a state"))?;
        loop {
            let s = tokio::time::timeout(Duration::from_secs(120), rx.recv())
                .await
                .map_err(|_| RuntimeError::Model("no forecast within 120 s".into()))?
                .ok_or(RuntimeError::EngineStopped)?;
            let f: Forecast = decode(&s.payload().to_bytes(), Encoding::Bincode)?;
            if f.seq == seq {
                break;
            }
        }
        if seq > 0 {
            // The first one warms up allocations.
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(publisher);
    daemon.stop().await?;
    lat.sort_by(f64::total_cmp);

    // Batched forecasts on the inference path (one thread, as the daemon).
    let model = RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
    let rc = cfg.forecast.rollout();
    let mut batch_seconds = Vec::new();
    let mut warm_seconds = Vec::new();
    let mut best: f64 = 0.0;
    let mut best_warm: f64 = 0.0;
    let warm_steps = cfg.forecast.warm.warm_steps();
    for &b in batches {
        // States near the training mean (0.1 sd), actions at it (unknown).
        let ctx: Vec<Vec<Vec<f32>>> = (0..b)
            .map(|_| {
                (0..model.context_len())
                    .map(|_| {
                        let z: Vec<f32> =
                            rng.normal_vec(state_dim).iter().map(|v| v * 0.1).collect();
                        model.units.denormalize_state(&z)
                    })
                    .collect()
            })
            .collect();
        let ctx: Vec<&[Vec<f32>]> = ctx.iter().map(Vec::as_slice).collect();
        let acts = vec![None; b];
        let reps = 2;
        let t0 = Instant::now();
        for _ in 0..reps {
            model.forecast(&ctx, &acts, &rc, &mut rng, None)?;
        }
        let secs = t0.elapsed().as_secs_f64() / reps as f64;
        batch_seconds.push((b, secs));
        // Robots served at `rate_hz`: b robots every `secs` seconds.
        best = best.max(b as f64 / secs / rate_hz);
        if let Some(warm_steps) = warm_steps {
            // Warm: from a cold forecast of the same robots, as a robot's
            // next forecast starts from its last one.
            let cold = model.forecast(&ctx, &acts, &rc, &mut rng, None)?;
            let starts: Vec<&[f32]> = cold.iter().map(|f| f.trajectories.as_slice()).collect();
            let t0 = Instant::now();
            for _ in 0..reps {
                model.forecast_warm(&ctx, &acts, &rc, (&starts, warm_steps), &mut rng)?;
            }
            let secs = t0.elapsed().as_secs_f64() / reps as f64;
            warm_seconds.push((b, secs));
            best_warm = best_warm.max(b as f64 / secs / rate_hz);
        }
    }
    Ok(BenchReport {
        model_id,
        horizon: rc.horizon,
        particles: rc.particles,
        langevin_steps: rc.langevin.steps,
        samples: lat.len(),
        latency_p50_ms: quantile(&lat, 0.5),
        latency_p99_ms: quantile(&lat, 0.99),
        latency_max_ms: lat.last().copied().unwrap_or(f64::NAN),
        batch_seconds,
        rate_hz,
        robots_at_rate: best,
        warm: warm_steps.map(|w| WarmBench {
            langevin_steps: w.steps,
            cold_head: w.cold_head,
            cold_tail: w.cold_tail,
            batch_seconds: warm_seconds,
            robots_at_rate: best_warm,
        }),
    })
}
