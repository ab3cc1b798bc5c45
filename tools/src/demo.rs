//! `ebm-tools demo`: the daemon serving two robots of different kinds at
//! once, each by its own model: the live simulated hand (the `ebm-sim-data`
//! hand-cube simulator under its scripted policy) and a replayed recording
//! of another robot (by default the committed MuJoCo Fetch recording), both
//! publishing their state over Zenoh; a live table of each one's forecast
//! error and OOD score.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ebm_msgs::ndarray;
use ebm_msgs::recording::{self, Dataset};
use ebm_msgs::{decode, encode, Encoding, Forecast, OodScore, RobotId, RobotState};
use ebm_runtime::binding::Binding;
use ebm_runtime::config::RuntimeConfig;
use ebm_runtime::local::LocalDaemon;
use ebm_runtime::RuntimeError;
use ebm_sim_data::episode::{mix, trajectory};
use ebm_sim_data::{SimConfig, HAND_ACTION_DIM, HAND_STATE_DIM};
use tokio::sync::mpsc;
use tracing::warn;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long.
    pub seconds: f64,
    /// State rate of each robot.
    pub robot_hz: f64,
    /// Steps per simulated episode.
    pub episode_steps: u32,
    pub seed: u64,
    /// A recording replayed as a second robot (its episodes, in turn);
    /// `None`: the simulated hand alone.
    pub replay: Option<PathBuf>,
}

/// The robot id of the simulated hand.
pub const HAND_ROBOT: &str = "sim-hand";

/// Root-mean-square difference over a state's values (raw units).
fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (s / a.len().max(1) as f64).sqrt()
}

/// One episode: its states and the action applied at each.
type Episode = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// A source of one robot's states: its episodes, one state at a time.
enum Source {
    /// The live hand simulator.
    Hand { episode_steps: u32, seed: u64 },
    /// A recording's episodes, replayed in turn.
    Replay {
        data: Box<Dataset>,
        episodes: Vec<usize>,
    },
}

impl Source {
    /// Episode `n`: its states and the action applied at each (row-major).
    async fn episode(&self, n: u64) -> Result<Option<Episode>, RuntimeError> {
        match self {
            Source::Hand {
                episode_steps,
                seed,
            } => {
                let (s, steps) = (mix(*seed, 0xD3), *episode_steps);
                let traj = tokio::task::spawn_blocking(move || {
                    trajectory(&SimConfig::default(), steps, s, n).0
                })
                .await
                .map_err(|e| RuntimeError::Model(format!("simulator: {e}")))?;
                Ok(traj.map(|t| {
                    (
                        t.states
                            .chunks(HAND_STATE_DIM)
                            .map(<[f32]>::to_vec)
                            .collect(),
                        t.actions
                            .chunks(HAND_ACTION_DIM)
                            .map(<[f32]>::to_vec)
                            .collect(),
                    )
                }))
            }
            Source::Replay { data, episodes } => {
                let e = episodes[n as usize % episodes.len()];
                let rows = |a: &ndarray::Array3<f32>| {
                    a.index_axis(ndarray::Axis(0), e)
                        .rows()
                        .into_iter()
                        .map(|r| r.to_vec())
                        .collect::<Vec<_>>()
                };
                Ok(Some((rows(&data.states), rows(&data.actions))))
            }
        }
    }
}

/// One robot of the demo: where its states come from and what came back.
struct DemoRobot {
    id: RobotId,
    source: Source,
    publisher: zenoh::pubsub::Publisher<'static>,
    /// seq -> (episode, state sent).
    truth: HashMap<u64, (u64, Vec<f32>)>,
    forecasts: Vec<Forecast>,
    last_ood: Option<OodScore>,
    received_since: usize,
    current: Option<Episode>,
    episode: u64,
    t: usize,
    seq: u64,
}

impl DemoRobot {
    /// Publishes the robot's next state.
    async fn step(&mut self, start: Instant) -> Result<(), RuntimeError> {
        if self.current.is_none() {
            match self.source.episode(self.episode).await? {
                Some(ep) => self.current = Some(ep),
                None => {
                    warn!(robot = %self.id, "no episode (the simulator dropped the cube on every attempt); next episode");
                    self.episode += 1;
                    return Ok(());
                }
            }
            self.t = 0;
        }
        let Some((states, actions)) = &self.current else {
            return Ok(());
        };
        let t = self.t;
        let state = RobotState {
            robot_id: self.id.to_string(),
            episode: self.episode,
            seq: self.seq,
            stamp_ns: start.elapsed().as_nanos() as u64,
            state: states[t].clone(),
            // The action applied before this state, as a live robot reports it.
            last_action: (t > 0 && !actions[t - 1].is_empty()).then(|| actions[t - 1].clone()),
        };
        self.publisher
            .put(encode(&state, Encoding::Bincode)?)
            .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
            .await
            .map_err(RuntimeError::zenoh("publishing a state"))?;
        self.truth
            .insert(self.seq, (self.episode, states[t].clone()));
        self.seq += 1;
        self.t += 1;
        if self.t >= states.len() {
            self.current = None;
            self.episode += 1;
        }
        Ok(())
    }

    /// Forecast error of the newest forecast whose step `h` can be checked.
    fn error_at(&self, h: usize) -> Option<f64> {
        self.forecasts.iter().rev().find_map(|f| {
            if h == 0 || h > f.horizon as usize {
                return None;
            }
            let (ep0, _) = self.truth.get(&f.seq)?;
            let (ep, s) = self.truth.get(&(f.seq + h as u64))?;
            let d = s.len();
            (ep == ep0 && f.mean.len() >= h * d).then(|| rmse(&f.mean[(h - 1) * d..h * d], s))
        })
    }

    fn row(&mut self, elapsed: f64, horizon: usize) {
        let fmt = |e: Option<f64>| e.map_or("-".to_owned(), |v| format!("{v:.4}"));
        let last = self.forecasts.last();
        let ood = self.last_ood.as_ref();
        println!(
            "{:>6.1} {:<13} {:>6} {:>8} {:>8} {:>8} {:>10} {:>6} {:>5} {:>7} {:>8} {:>6} {:>5}",
            elapsed,
            self.id.as_str(),
            last.map_or("-".into(), |f| f.seq.to_string()),
            fmt(self.error_at(1)),
            fmt(self.error_at(10.min(horizon))),
            fmt(self.error_at(horizon)),
            ood.map_or("-".into(), |o| format!("{:.3}", o.energy)),
            ood.map_or("-".into(), |o| format!("{:.1}", o.percentile)),
            ood.map_or("-", |o| if o.flagged { "OOD" } else { "ok" }),
            ood.and_then(|o| o.window_percentile)
                .map_or("-".into(), |p| format!("{p:.1}")),
            last.map_or("-".into(), |f| format!("{:.1}", f.compute_us as f64 / 1e3)),
            last.map_or("-".into(), |f| f.langevin_steps.to_string()),
            self.received_since,
        );
        self.received_since = 0;
        // Keep memory flat on long runs.
        if self.forecasts.len() > 256 {
            self.forecasts.drain(..128);
        }
        let oldest = self.seq.saturating_sub(4096);
        self.truth.retain(|&k, _| k >= oldest);
    }
}

/// The robot id to replay `data` as: `<kind>-replay` (`fetch-replay`), so
/// the config's pattern for that kind (`fetch-*`) serves it.
fn replay_id(data: &Dataset) -> Result<RobotId, RuntimeError> {
    let kind: String = data
        .robot
        .kind
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Ok(RobotId::new(format!("{}-replay", kind.trim_matches('-')))
        .or_else(|_| RobotId::new("replay"))?)
}

/// Runs the demo until `opts.seconds` pass or `shutdown` resolves.
pub async fn demo(
    cfg: RuntimeConfig,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let device = ebm_core::device::select(&cfg.device)?;
    let bindings = Binding::load_all(&cfg, &device)?;
    let served: Vec<(String, String, String)> = bindings
        .iter()
        .map(|b| {
            (
                b.robots.to_string(),
                b.model.model_id.clone(),
                b.model.robot.kind.clone(),
            )
        })
        .collect();
    let warnings: Vec<String> = bindings
        .iter()
        .flat_map(|b| b.model.warnings.clone())
        .collect();
    let horizon = cfg.forecast.horizon;
    let replay = match &opts.replay {
        Some(path) => Some(recording::load(path)?),
        None => None,
    };
    let daemon = LocalDaemon::serving(cfg, bindings).await?;
    let mut sources = vec![(
        RobotId::new(HAND_ROBOT)?,
        Source::Hand {
            episode_steps: opts.episode_steps,
            seed: opts.seed,
        },
    )];
    if let Some(data) = replay {
        // Every episode: a demo recording is held out from training by its
        // seed (replay a training recording's test split with `replay-eval`).
        let (n, steps) = (
            data.states.len_of(ndarray::Axis(0)),
            data.states.len_of(ndarray::Axis(1)),
        );
        if n == 0 || steps == 0 {
            return Err(RuntimeError::Model(
                "the replayed recording has no states".into(),
            ));
        }
        let episodes: Vec<usize> = (0..n).collect();
        sources.push((
            replay_id(&data)?,
            Source::Replay {
                data: Box::new(data),
                episodes,
            },
        ));
    }
    // Every robot's forecasts and OOD scores arrive on one channel.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut robots = Vec::new();
    let mut subscribers = Vec::new();
    for (id, source) in sources {
        for key in [daemon.keys.forecast(&id), daemon.keys.ood(&id)] {
            let (sub, mut samples) = daemon.subscribe(key).await?;
            let (tx, idx) = (tx.clone(), robots.len());
            tokio::spawn(async move {
                while let Some(s) = samples.recv().await {
                    if tx.send((idx, s)).is_err() {
                        break;
                    }
                }
            });
            subscribers.push(sub);
        }
        robots.push(DemoRobot {
            publisher: daemon.state_publisher(&id).await?,
            id,
            source,
            truth: HashMap::new(),
            forecasts: Vec::new(),
            last_ood: None,
            received_since: 0,
            current: None,
            episode: 0,
            t: 0,
            seq: 0,
        });
    }

    println!(
        "ebm-tools demo: {} robots at {} Hz for {} s (Ctrl-C stops)",
        robots.len(),
        opts.robot_hz,
        opts.seconds
    );
    for (pattern, model, kind) in &served {
        println!("  robots `{pattern}`: model {model} ({kind})");
    }
    for w in &warnings {
        println!("  warning: {w}");
    }
    println!("  err@h: RMSE of the forecast mean h steps ahead against the state the robot then sent (raw units of its state)");
    println!(
        "{:>6} {:<13} {:>6} {:>8} {:>8} {:>8} {:>10} {:>6} {:>5} {:>7} {:>8} {:>6} {:>5}",
        "time_s",
        "robot",
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
    let mut next_row = start + Duration::from_secs(1);
    let mut ticker = tokio::time::interval(period);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                if Instant::now() >= end {
                    break;
                }
                for r in &mut robots {
                    r.step(start).await?;
                }
            }
            Some((idx, sample)) = rx.recv() => {
                let r = &mut robots[idx];
                let bytes = sample.payload().to_bytes();
                if sample.key_expr().as_str().ends_with("/forecast") {
                    if let Ok(f) = decode::<Forecast>(&bytes, Encoding::Bincode) {
                        r.forecasts.push(f);
                        r.received_since += 1;
                    }
                } else if let Ok(o) = decode::<OodScore>(&bytes, Encoding::Bincode) {
                    r.last_ood = Some(o);
                }
            }
        }
        if Instant::now() >= next_row {
            let el = start.elapsed().as_secs_f64();
            for r in &mut robots {
                r.row(el, horizon);
            }
            next_row += Duration::from_secs(1);
        }
    }
    let sent: Vec<String> = robots
        .iter()
        .map(|r| format!("{} {}", r.id, r.seq))
        .collect();
    println!("states published: {}; stopping", sent.join(", "));
    drop(subscribers);
    drop(robots);
    daemon.stop().await
}
