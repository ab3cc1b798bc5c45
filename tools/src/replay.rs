//! Replays a recording's states over Zenoh, on the `ebm-msgs` key
//! expressions, at the recorded rate (scaled) or as fast as possible.
//!
//! A blocking thread streams the file (one chunk in memory) into a bounded
//! channel; the async side paces and publishes with congestion control
//! `Block`, since a replay must not lose data. States get back their
//! `last_action` from the action channel ([`LastActions`]), as a live robot
//! would send them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ebm_msgs::recording::{LastActions, RecordingEvent, RecordingReader};
use ebm_msgs::{encode, Encoding, KeySpace, RobotId, RobotState};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};
use zenoh::qos::CongestionControl;

use ebm_runtime::RuntimeError;

/// How fast to publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// At the recorded timestamps, time scaled by `rate` (2.0 = twice as fast).
    Recorded {
        rate: f64,
    },
    AsFastAsPossible,
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub pace: Pace,
    /// Wire encoding of the published states.
    pub encoding: Encoding,
    pub keys: KeySpace,
    /// Wait up to this long for a subscriber before publishing a robot's first
    /// state (matching status); `None` publishes straight away.
    pub wait_for_subscriber: Option<Duration>,
    /// Only these episodes, if given.
    pub episodes: Option<std::ops::Range<u64>>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub published: u64,
    pub robots: usize,
}

/// Reads states in file order, fills `last_action` (recorded right after the
/// previous state of the same episode), sends them on `tx`.
fn read_states(
    path: &Path,
    episodes: Option<std::ops::Range<u64>>,
    tx: mpsc::Sender<RobotState>,
) -> Result<(), RuntimeError> {
    let mut last_actions = LastActions::default();
    let wanted = |e: u64| episodes.as_ref().is_none_or(|r| r.contains(&e));
    for event in RecordingReader::open(path)? {
        match event? {
            RecordingEvent::State(mut s) if wanted(s.episode) => {
                last_actions.fill(&mut s);
                if tx.blocking_send(s).is_err() {
                    return Ok(()); // the publisher stopped
                }
            }
            RecordingEvent::Action(a) if wanted(a.episode) => last_actions.record(a),
            _ => {}
        }
    }
    Ok(())
}

/// Publishes every state of `path` on `opts.keys.state(robot)`.
pub async fn replay(
    session: &zenoh::Session,
    path: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, RuntimeError> {
    let (tx, mut rx) = mpsc::channel::<RobotState>(1024);
    let owned: PathBuf = path.to_owned();
    let episodes = opts.episodes.clone();
    let reader = tokio::task::spawn_blocking(move || read_states(&owned, episodes, tx));
    let mut publishers: HashMap<String, zenoh::pubsub::Publisher<'static>> = HashMap::new();
    let mut report = ReplayReport::default();
    let mut clock: Option<(Instant, u64)> = None;
    while let Some(state) = rx.recv().await {
        if let Pace::Recorded { rate } = opts.pace {
            let (t0, stamp0) = *clock.get_or_insert((Instant::now(), state.stamp_ns));
            let offset_ns = state.stamp_ns.saturating_sub(stamp0) as f64 / rate.max(1e-9);
            tokio::time::sleep_until(t0 + Duration::from_nanos(offset_ns as u64)).await;
        }
        if !publishers.contains_key(&state.robot_id) {
            let publisher = declare(session, &state.robot_id, opts).await?;
            publishers.insert(state.robot_id.clone(), publisher);
        }
        let Some(publisher) = publishers.get(&state.robot_id) else {
            continue;
        };
        let payload = encode(&state, opts.encoding)?;
        publisher
            .put(payload)
            .await
            .map_err(RuntimeError::zenoh("publishing a state"))?;
        report.published += 1;
        debug!(robot = %state.robot_id, seq = state.seq, "published");
    }
    reader
        .await
        .map_err(|e| RuntimeError::Model(format!("the recording reader thread failed: {e}")))??;
    report.robots = publishers.len();
    info!(
        published = report.published,
        robots = report.robots,
        "replay done"
    );
    Ok(report)
}

async fn declare(
    session: &zenoh::Session,
    robot: &str,
    opts: &ReplayOptions,
) -> Result<zenoh::pubsub::Publisher<'static>, RuntimeError> {
    let key = opts.keys.state(&RobotId::new(robot)?);
    let publisher = session
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .encoding(zenoh::bytes::Encoding::from(opts.encoding.mime()))
        .await
        .map_err(RuntimeError::zenoh("declaring a publisher"))?;
    if let Some(wait) = opts.wait_for_subscriber {
        let deadline = Instant::now() + wait;
        loop {
            let status = publisher
                .matching_status()
                .await
                .map_err(RuntimeError::zenoh("reading matching status"))?;
            if status.matching() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::Model(format!(
                    "no subscriber for {key} after {} ms: is the daemon running and connected?",
                    wait.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(publisher)
}
