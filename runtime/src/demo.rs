//! `ebm-runtime demo`: the daemon on the default model, a simulated robot
//! (the `ebm-sim-data` hand-cube simulator under its scripted policy)
//! publishing its state, and a live table of forecast error and OOD score.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use ebm_msgs::{decode, encode, Encoding, Forecast, OodScore, RobotId, RobotState};
use ebm_sim_data::rollout::{mix, trajectory};
use ebm_sim_data::SimConfig;
use ebm_sim_data::{HAND_ACTION_DIM, HAND_STATE_DIM};
use tracing::warn;

use crate::config::RuntimeConfig;
use crate::local::LocalDaemon;
use crate::model::ModelBundle;
use crate::RuntimeError;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long.
    pub seconds: f64,
    /// State rate of the simulated robot.
    pub robot_hz: f64,
    /// Steps per simulated episode.
    pub episode_steps: u32,
    pub seed: u64,
}

/// Root-mean-square difference over a state's values (raw units).
fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (s / a.len().max(1) as f64).sqrt()
}

/// Forecast error of the newest forecast whose step `h` can be checked.
fn error_at(
    forecasts: &[Forecast],
    truth: &HashMap<u64, (u64, Vec<f32>)>,
    h: usize,
) -> Option<f64> {
    forecasts.iter().rev().find_map(|f| {
        if h == 0 || h > f.horizon as usize {
            return None;
        }
        let (ep0, _) = truth.get(&f.seq)?;
        let (ep, s) = truth.get(&(f.seq + h as u64))?;
        let d = s.len();
        (ep == ep0 && f.mean.len() >= h * d).then(|| rmse(&f.mean[(h - 1) * d..h * d], s))
    })
}

/// Runs the demo until `opts.seconds` pass or `shutdown` resolves.
pub async fn demo(
    cfg: RuntimeConfig,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let device = ebm_core::device::select(&cfg.device)?;
    let bundle = ModelBundle::from_config(cfg.default_model()?, cfg.seed, &device)?;
    let model_id = bundle.model_id.clone();
    let warnings = bundle.warnings.clone();
    let horizon = cfg.forecast.horizon;
    let daemon = LocalDaemon::start(cfg, bundle).await?;
    let robot = RobotId::new("sim-hand")?;
    let publisher = daemon.state_publisher(&robot).await?;
    let (_fsub, mut forecasts_rx) = daemon.subscribe(daemon.keys.forecast(&robot)).await?;
    let (_osub, mut ood_rx) = daemon.subscribe(daemon.keys.ood(&robot)).await?;

    println!(
        "ebm-runtime demo: model {model_id}, robot {robot} at {} Hz, {} s (Ctrl-C stops)",
        opts.robot_hz, opts.seconds
    );
    for w in &warnings {
        println!("  warning: {w}");
    }
    println!("  err@h: RMSE of the forecast mean h steps ahead against the state the robot then sent (31 raw values: rad, m, quaternion)");
    println!(
        "{:>6} {:>6} {:>8} {:>8} {:>8} {:>10} {:>6} {:>5} {:>7} {:>8} {:>8} {:>6}",
        "time_s",
        "seq",
        "err@1",
        "err@10",
        &format!("err@{horizon}"),
        "ood_energy",
        "pct",
        "flag",
        "win_pct",
        "calc_ms",
        "steps",
        "fc/s"
    );

    let period = Duration::from_secs_f64(1.0 / opts.robot_hz.max(0.1));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.seconds);
    let mut truth: HashMap<u64, (u64, Vec<f32>)> = HashMap::new();
    let mut forecasts: Vec<Forecast> = Vec::new();
    let mut last_ood: Option<OodScore> = None;
    let mut received_since = 0usize;
    let mut next_row = start + Duration::from_secs(1);
    let mut ticker = tokio::time::interval(period);
    let (mut episode, mut t, mut seq) = (0u64, 0usize, 0u64);
    let mut current: Option<ebm_sim_data::rollout::Trajectory> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                if Instant::now() >= end {
                    break;
                }
                if current.is_none() {
                    let (s, id) = (mix(opts.seed, 0xD3), episode);
                    let steps = opts.episode_steps;
                    let traj = tokio::task::spawn_blocking(move || trajectory(&SimConfig::default(), steps, s, id).0)
                        .await
                        .map_err(|e| RuntimeError::Model(format!("simulator: {e}")))?;
                    if traj.is_none() {
                        warn!("the simulator dropped the cube on every attempt; next episode");
                        episode += 1;
                        continue;
                    }
                    current = traj;
                    t = 0;
                }
                let Some(traj) = &current else { continue };
                let (d, a_dim) = (HAND_STATE_DIM, HAND_ACTION_DIM);
                let s = traj.states[t * d..(t + 1) * d].to_vec();
                let a = (t > 0).then(|| traj.actions[(t - 1) * a_dim..t * a_dim].to_vec());
                let state = RobotState {
                    robot_id: robot.to_string(),
                    episode,
                    seq,
                    stamp_ns: start.elapsed().as_nanos() as u64,
                    state: s.clone(),
                    last_action: a,
                };
                publisher
                    .put(encode(&state, Encoding::Bincode)?)
                    .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
                    .await
                    .map_err(RuntimeError::zenoh("publishing a state"))?;
                truth.insert(seq, (episode, s));
                seq += 1;
                t += 1;
                if t * HAND_STATE_DIM >= traj.states.len() {
                    current = None;
                    episode += 1;
                }
            }
            Some(sample) = forecasts_rx.recv() => {
                if let Ok(f) = decode::<Forecast>(&sample.payload().to_bytes(), Encoding::Bincode) {
                    forecasts.push(f);
                    received_since += 1;
                }
            }
            Some(sample) = ood_rx.recv() => {
                if let Ok(o) = decode::<OodScore>(&sample.payload().to_bytes(), Encoding::Bincode) {
                    last_ood = Some(o);
                }
            }
        }
        if Instant::now() >= next_row {
            let el = start.elapsed().as_secs_f64();
            let fmt = |e: Option<f64>| e.map_or("-".to_owned(), |v| format!("{v:.4}"));
            let last = forecasts.last();
            println!(
                "{:>6.1} {:>6} {:>8} {:>8} {:>8} {:>10} {:>6} {:>5} {:>7} {:>8} {:>8} {:>6}",
                el,
                last.map_or("-".into(), |f| f.seq.to_string()),
                fmt(error_at(&forecasts, &truth, 1)),
                fmt(error_at(&forecasts, &truth, 10.min(horizon))),
                fmt(error_at(&forecasts, &truth, horizon)),
                last_ood
                    .as_ref()
                    .map_or("-".into(), |o| format!("{:.3}", o.energy)),
                last_ood
                    .as_ref()
                    .map_or("-".into(), |o| format!("{:.1}", o.percentile)),
                last_ood
                    .as_ref()
                    .map_or("-", |o| if o.flagged { "OOD" } else { "ok" }),
                last_ood
                    .as_ref()
                    .and_then(|o| o.window_percentile)
                    .map_or("-".into(), |p| format!("{p:.1}")),
                last.map_or("-".into(), |f| format!("{:.1}", f.compute_us as f64 / 1e3)),
                last.map_or("-".into(), |f| f.langevin_steps.to_string()),
                received_since,
            );
            received_since = 0;
            next_row += Duration::from_secs(1);
            // Keep memory flat on long runs.
            if forecasts.len() > 256 {
                forecasts.drain(..128);
            }
            let oldest = seq.saturating_sub(4096);
            truth.retain(|&k, _| k >= oldest);
        }
    }
    println!("published {seq} states; stopping");
    drop(publisher);
    daemon.stop().await
}
