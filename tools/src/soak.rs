//! `ebm-tools soak`: the daemon under mixed traffic for a while: robots
//! streaming at their rate (one restarting now and then without a new
//! episode number), clients querying forecasts (some for robots that sent
//! nothing), and a stream of malformed states (bad bytes, wrong sizes,
//! NaN). Afterwards every valid state is accounted for (a forecast received,
//! or a counted drop), every query has its reply, every malformed state is
//! counted, and the process's memory is compared between warm-up and end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebm_core::Rng;
use ebm_msgs::{decode, encode, DaemonStatus, Encoding, ForecastRequest, RobotId, RobotState};
use serde::Serialize;

use ebm_runtime::config::RuntimeConfig;
use ebm_runtime::local::LocalDaemon;
use ebm_runtime::model::RobotModel;
use ebm_runtime::RuntimeError;

/// The traffic of a soak run.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub duration: Duration,
    pub robots: usize,
    /// States per robot per second.
    pub rate_hz: f64,
    pub queries_per_s: f64,
    pub malformed_per_s: f64,
    /// Every this long, one robot (in turn) restarts its sequence at 0.
    pub restart_every: Duration,
    /// Recorded episodes the robots replay instead of random walks (robot
    /// `r` plays episodes `r`, `r + robots`, ... in turn; no restarts).
    pub episodes: Option<Arc<Vec<Vec<RobotState>>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub duration_s: f64,
    pub robots: usize,
    pub states_sent: u64,
    pub restarts: u64,
    pub malformed_sent: u64,
    pub queries_sent: u64,
    pub queries_answered: u64,
    /// Queries answered with an error (unknown robot, overloaded...).
    pub queries_refused: u64,
    pub forecasts_received: u64,
    pub ood_received: u64,
    pub denoised_received: u64,
    /// Valid states with neither a forecast received nor a counted drop.
    pub lost_forecasts: i64,
    /// Queries without any reply.
    pub lost_queries: i64,
    /// Malformed states the daemon did not count as refused.
    pub uncounted_malformed: i64,
    /// Resident memory (KiB) after the first tenth of the run, at the end,
    /// and the highest seen.
    pub rss_warm_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    /// The daemon's counters at the end.
    pub counters: BTreeMap<String, u64>,
}

/// This process's resident memory in KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    states: AtomicU64,
    restarts: AtomicU64,
    malformed: AtomicU64,
    queries: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
}

fn t_states(t: &Tally) -> u64 {
    t.states.load(Ordering::Relaxed)
}

fn put_err(e: zenoh::Error) -> RuntimeError {
    RuntimeError::Zenoh {
        context: "soak traffic",
        source: e,
    }
}

/// Runs `plan` against a local daemon serving `served` to every robot.
pub async fn soak(
    cfg: RuntimeConfig,
    served: RobotModel,
    plan: &SoakPlan,
) -> Result<SoakReport, RuntimeError> {
    let (state_dim, action_dim) = (served.state_dim(), served.action_dim());
    let daemon = Arc::new(LocalDaemon::start(cfg.clone(), served).await?);
    let keys = daemon.keys.clone();
    let (_outs, mut outs) = daemon.subscribe(format!("{}/*/*", keys.prefix())).await?;
    let (_status, mut status_rx) = daemon.subscribe(keys.status()).await?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();

    for r in 0..plan.robots {
        let robot = RobotId::new(format!("soak-{r}"))?;
        let publisher = daemon.state_publisher(&robot).await?;
        let (tally, stop, plan) = (Arc::clone(&tally), Arc::clone(&stop), plan.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(100 + r as u64);
            let period = Duration::from_secs_f64(1.0 / plan.rate_hz);
            let mut x = vec![0.0f32; state_dim];
            let (mut seq, mut sent) = (0u64, 0u64);
            let mut next_restart = start + plan.restart_every * (r as u32 + 1);
            let mut tick = tokio::time::interval(period);
            // Replaying: (episode index, position in it).
            let mut at = (r, 0usize);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let s = if let Some(eps) = plan.episodes.as_deref().filter(|e| !e.is_empty()) {
                    if at.1 >= eps[at.0 % eps.len()].len() {
                        at = (at.0 + plan.robots, 0);
                    }
                    let mut s = eps[at.0 % eps.len()][at.1].clone();
                    s.robot_id = robot.to_string();
                    at.1 += 1;
                    s
                } else {
                    if plan.robots > 0 && Instant::now() >= next_restart {
                        seq = 0; // restarted, same episode number
                        next_restart += plan.restart_every * plan.robots as u32;
                        tally.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    for (v, n) in x.iter_mut().zip(rng.normal_vec(state_dim)) {
                        *v = 0.9 * *v + 0.1 * n;
                    }
                    RobotState {
                        robot_id: robot.to_string(),
                        episode: 0,
                        seq,
                        stamp_ns: seq * 100_000_000,
                        state: x.clone(),
                        last_action: (action_dim > 0).then(|| vec![0.0; action_dim]),
                    }
                };
                let enc = if sent % 5 == 0 {
                    Encoding::Json
                } else {
                    Encoding::Bincode
                };
                publisher
                    .put(encode(&s, enc)?)
                    .encoding(zenoh::bytes::Encoding::from(enc.mime()))
                    .await
                    .map_err(put_err)?;
                tally.states.fetch_add(1, Ordering::Relaxed);
                (seq, sent) = (seq + 1, sent + 1);
            }
            Ok::<(), RuntimeError>(())
        }));
    }

    if plan.malformed_per_s > 0.0 {
        let (d, tally, stop) = (Arc::clone(&daemon), Arc::clone(&tally), Arc::clone(&stop));
        let period = Duration::from_secs_f64(1.0 / plan.malformed_per_s);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(7);
            let mut tick = tokio::time::interval(period);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (payload, enc, robot) = malformed(&mut rng, i, state_dim)?;
                d.client
                    .put(d.keys.state(&robot), payload)
                    .encoding(zenoh::bytes::Encoding::from(enc.mime()))
                    .await
                    .map_err(put_err)?;
                tally.malformed.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), RuntimeError>(())
        }));
    }

    if plan.queries_per_s > 0.0 {
        let (d, tally, stop) = (Arc::clone(&daemon), Arc::clone(&tally), Arc::clone(&stop));
        let period = Duration::from_secs_f64(1.0 / plan.queries_per_s);
        let (robots, q) = (plan.robots, cfg.query.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(11);
            let mut tick = tokio::time::interval(period);
            let mut asked = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // Every tenth query asks for a robot that never sent a state.
                let n = rng.below(robots.max(1) * 10 / 9 + 1);
                let robot = if n < robots {
                    format!("soak-{n}")
                } else {
                    "nobody".into()
                };
                let req = ForecastRequest {
                    robot_id: robot.clone(),
                    horizon: 1 + rng.below(q.max_horizon) as u32,
                    particles: 1 + rng.below(q.max_particles.min(64)) as u32,
                    deadline_ms: None,
                };
                let key = d.keys.forecast_query(&RobotId::new(robot)?);
                let replies = d
                    .client
                    .get(key)
                    .payload(encode(&req, Encoding::Bincode)?)
                    .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
                    .timeout(Duration::from_secs(60))
                    .await
                    .map_err(put_err)?;
                tally.queries.fetch_add(1, Ordering::Relaxed);
                let tally = Arc::clone(&tally);
                asked.push(tokio::spawn(async move {
                    if let Ok(reply) = replies.recv_async().await {
                        let counter = match reply.result() {
                            Ok(_) => &tally.answered,
                            Err(_) => &tally.refused,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for a in asked {
                let _ = a.await;
            }
            Ok::<(), RuntimeError>(())
        }));
    }

    // Watch memory while the traffic runs.
    let mut rss_warm = 0;
    let mut rss_max = rss_kib();
    let mut received = BTreeMap::<&'static str, u64>::new();
    let warm_at = start + plan.duration / 10;
    let end = start + plan.duration;
    let mut last_status: Option<DaemonStatus> = None;
    let take = |s: zenoh::sample::Sample, received: &mut BTreeMap<&'static str, u64>| {
        let key = s.key_expr().as_str();
        for leaf in ["forecast", "ood", "denoised", "error"] {
            if key.ends_with(&format!("/{leaf}")) {
                *received.entry(leaf).or_default() += 1;
            }
        }
    };
    while Instant::now() < end {
        tokio::select! {
            Some(s) = outs.recv() => take(s, &mut received),
            Some(s) = status_rx.recv() => {
                last_status = decode(&s.payload().to_bytes(), Encoding::Json).ok().or(last_status);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        rss_max = rss_max.max(rss_kib());
        if rss_warm == 0 && Instant::now() >= warm_at {
            rss_warm = rss_kib();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await
            .map_err(|e| RuntimeError::Model(format!("a soak task failed: {e}")))??;
    }
    // Drain: until the daemon has counted every input sent (or its
    // counters stopped changing for 5 s) and no output arrived for 1 s.
    let inputs_sent = t_states(&tally) + tally.malformed.load(Ordering::Relaxed);
    let queries_sent = tally.queries.load(Ordering::Relaxed);
    let (mut last_output, mut last_change) = (Instant::now(), Instant::now());
    let mut last_counters = BTreeMap::new();
    loop {
        let all_in = last_status.as_ref().is_some_and(|st| {
            let n = |k: &str| st.counters.get(k).copied().unwrap_or(0);
            n("states_received") >= inputs_sent && n("queries_received") >= queries_sent
        });
        if (all_in && last_output.elapsed() > Duration::from_secs(1))
            || last_change.elapsed() > Duration::from_secs(5)
        {
            break;
        }
        tokio::select! {
            Some(s) = outs.recv() => { take(s, &mut received); last_output = Instant::now(); }
            Some(s) = status_rx.recv() => {
                if let Ok(st) = decode::<DaemonStatus>(&s.payload().to_bytes(), Encoding::Json) {
                    if st.counters != last_counters {
                        last_counters = st.counters.clone();
                        last_change = Instant::now();
                    }
                    last_status = Some(st);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let rss_end = rss_kib();
    let status = last_status.ok_or_else(|| RuntimeError::Model("no status received".into()))?;
    let daemon = Arc::into_inner(daemon)
        .ok_or_else(|| RuntimeError::Model("the soak tasks still hold the daemon".into()))?;
    daemon.stop().await?;

    let c = &status.counters;
    let get = |k: &str| c.get(k).copied().unwrap_or(0) as i64;
    let got = |k: &str| received.get(k).copied().unwrap_or(0);
    let t = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let states_sent = t(&tally.states);
    let accounted = got("forecast") as i64
        + [
            "states_superseded",
            "states_out_of_order",
            "states_too_many_robots",
        ]
        .iter()
        .chain(&["states_out_of_range", "outputs_dropped", "inference_errors"])
        .map(|k| get(k))
        .sum::<i64>();
    let refused_malformed =
        get("states_malformed") + get("states_wrong_dimensions") + get("states_non_finite");
    Ok(SoakReport {
        duration_s: start.elapsed().as_secs_f64(),
        robots: plan.robots,
        states_sent,
        restarts: t(&tally.restarts),
        malformed_sent: t(&tally.malformed),
        queries_sent: t(&tally.queries),
        queries_answered: t(&tally.answered),
        queries_refused: t(&tally.refused),
        forecasts_received: got("forecast"),
        ood_received: got("ood"),
        denoised_received: got("denoised"),
        lost_forecasts: states_sent as i64 - accounted,
        lost_queries: t(&tally.queries) as i64
            - t(&tally.answered) as i64
            - t(&tally.refused) as i64,
        uncounted_malformed: t(&tally.malformed) as i64 - refused_malformed,
        rss_warm_kib: rss_warm,
        rss_end_kib: rss_end,
        rss_max_kib: rss_max.max(rss_end),
        counters: status.counters,
    })
}

/// The `i`-th malformed state (for a robot `bad-*`): random bytes, a
/// truncated state, a state of the wrong size, a NaN in JSON.
fn malformed(
    rng: &mut Rng,
    i: u64,
    state_dim: usize,
) -> Result<(Vec<u8>, Encoding, RobotId), RuntimeError> {
    let robot = RobotId::new(format!("bad-{}", i % 8))?;
    let mut s = RobotState {
        robot_id: robot.to_string(),
        episode: 0,
        seq: i,
        stamp_ns: 0,
        state: vec![0.5; state_dim + 1],
        last_action: None,
    };
    Ok(match i % 4 {
        0 => {
            let n = 1 + rng.below(64);
            let bytes = (0..n).map(|_| rng.below(256) as u8).collect();
            (bytes, Encoding::Bincode, robot)
        }
        1 => {
            let b = encode(&s, Encoding::Bincode)?;
            (b[..b.len() / 2].to_vec(), Encoding::Bincode, robot)
        }
        2 => (encode(&s, Encoding::Bincode)?, Encoding::Bincode, robot),
        _ => {
            s.state.pop();
            let json =
                String::from_utf8_lossy(&encode(&s, Encoding::Json)?).replacen("0.5", "NaN", 1);
            (json.into_bytes(), Encoding::Json, robot)
        }
    })
}
