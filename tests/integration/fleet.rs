//! Any robot, several at once: a model trained on a recording of a robot of
//! its own shape (5-float states, 2-float actions) served next to a
//! hand-sized model in one daemon, robots matching no model, and a fleet
//! split across two daemons on one Zenoh network. Real sessions on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use candle_core::Device;
use ebm_msgs::{
    decode, DaemonStatus, Encoding, ErrorCode, ErrorReply, Forecast, ForecastRequest, KeySpace,
    RobotSpec, RobotState,
};
use ebm_runtime::config::{ModelEntry, UnknownRobots};
use ebm_runtime::transport::{free_loopback_endpoint, loopback};
use ebm_sim_data::HAND_STATE_DIM;
use ebm_train::trajectory::{train_trajectory, TrajectoryConfig};
use zenoh::sample::Sample;

use crate::harness::{
    check_forecast_of, matched_publisher, put, query, receive_until, small_config, state,
    tiny_checkpoint, within, Harness, Received,
};
use crate::trajectory::write_recording_of;

/// A robot the code has never heard of: a 3-joint arm pushing a box on a plane.
fn arm() -> RobotSpec {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    RobotSpec {
        kind: "test-arm".into(),
        state_dim: 5,
        action_dim: 2,
        state_names: names(&["j0", "j1", "j2", "box.x", "box.y"]),
        state_units: names(&["rad", "rad", "rad", "m", "m"]),
        action_names: names(&["u0", "u1"]),
        action_units: names(&["rad", "rad"]),
    }
}

/// Trains a tiny action-conditional model on a synthetic recording of the
/// arm, as a user would (`traj train` on their recording), and returns its export.
fn train_arm_model(dir: &Path) -> Result<PathBuf> {
    train_arm_model_with(dir, "traj_cond.toml", "arm-run")
}

/// As [`train_arm_model`] with another config (`traj_uncond.toml`), into `run`.
fn train_arm_model_with(dir: &Path, config: &str, run: &str) -> Result<PathBuf> {
    let rec = dir.join("arm.mcap");
    if !rec.is_file() {
        write_recording_of(&rec, 24, &arm())?;
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(config),
    )?;
    let mut cfg = TrajectoryConfig::parse(&text)?;
    cfg.recording = rec;
    cfg.steps = 60;
    cfg.baseline.steps = 20;
    cfg.model.hidden = vec![32, 32];
    let run = dir.join(run);
    train_trajectory(&cfg, dir, &run, &Device::Cpu)?;
    Ok(run.join("model"))
}

fn arm_state(robot: &str, seq: u64, x: f32) -> RobotState {
    RobotState {
        robot_id: robot.into(),
        episode: 0,
        seq,
        stamp_ns: seq * 40_000_000,
        state: (0..5).map(|i| x + 0.1 * i as f32).collect(),
        last_action: Some(vec![0.7, 0.6]),
    }
}

fn arm_entry(pattern: &str, checkpoint: PathBuf) -> ModelEntry {
    ModelEntry {
        robots: pattern.into(),
        checkpoint,
        ood_checkpoints: Vec::new(),
        denoise: None,
        warm: None,
    }
}

fn has_forecast(r: &Received, seq: u64) -> bool {
    r.forecasts.iter().any(|f| f.seq == seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_serves_robots_of_different_kinds_side_by_side() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let arm_model = tokio::task::spawn_blocking(move || train_arm_model(&path)).await??;
    // The export names the robot it models, from the recording.
    let manifest = ebm_core::checkpoint::load(&arm_model, &Device::Cpu)?.manifest;
    let robot = manifest.robot.expect("the robot in the export");
    assert_eq!(
        (robot.kind.as_str(), robot.state_dim, robot.action_dim),
        ("test-arm", 5, 2)
    );
    assert_eq!(robot.state_names, arm().state_names);

    let model = arm_model.clone();
    let h = Harness::start(move |c| c.models.push(arm_entry("arm-*", model))).await?;
    let (hz, pz) = (h.cfg.forecast.horizon, h.cfg.forecast.particles);
    let (mut arm_out, mut hand_out) = (h.outputs("arm-1").await?, h.outputs("hand-1").await?);
    let (pa, ph) = (h.publisher("arm-1").await?, h.publisher("hand-1").await?);
    for seq in 0..3u64 {
        put(
            &pa,
            &arm_state("arm-1", seq, 0.1 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
        put(&ph, &state("hand-1", seq, 0.1 * seq as f32), Encoding::Json).await?;
    }
    let (mut arm_rec, mut hand_rec) = (Received::default(), Received::default());
    let done = |r: &Received| {
        has_forecast(r, 2) && r.denoised.iter().any(|d| d.seq == 2) && !r.ood.is_empty()
    };
    receive_until(&mut arm_out, &mut arm_rec, done).await?;
    receive_until(&mut hand_out, &mut hand_rec, done).await?;
    for f in &arm_rec.forecasts {
        check_forecast_of(f, hz, pz, 5);
        assert_eq!(f.model_id, "model@60");
    }
    for f in &hand_rec.forecasts {
        check_forecast_of(f, hz, pz, HAND_STATE_DIM);
        assert_eq!(f.model_id, "tiny@42");
    }
    assert!(arm_rec.denoised.iter().all(|d| d.state.len() == 5));
    assert!(hand_rec
        .denoised
        .iter()
        .all(|d| d.state.len() == HAND_STATE_DIM));
    assert!(arm_rec
        .ood
        .iter()
        .all(|o| o.model_id == "model@60" && o.energy.is_finite()));

    // A hand-sized state for the arm: WrongDimensions naming both sizes.
    put(&pa, &state("arm-1", 3, 0.5), Encoding::Json).await?;
    receive_until(&mut arm_out, &mut arm_rec, |r| !r.errors.is_empty()).await?;
    let err = &arm_rec.errors[0];
    assert_eq!(err.code, ErrorCode::WrongDimensions, "{err:?}");
    assert!(
        err.message
            .contains(&format!("state has {HAND_STATE_DIM} floats"))
            && err.message.contains("expects 5"),
        "{}",
        err.message
    );
    // Nothing else is disturbed: both robots go on being served.
    put(&pa, &arm_state("arm-1", 4, 0.2), Encoding::Bincode).await?;
    put(&ph, &state("hand-1", 3, 0.3), Encoding::Json).await?;
    receive_until(&mut arm_out, &mut arm_rec, |r| has_forecast(r, 4)).await?;
    receive_until(&mut hand_out, &mut hand_rec, |r| has_forecast(r, 3)).await?;
    assert!(
        !has_forecast(&arm_rec, 3),
        "the refused state was not served"
    );
    assert_eq!(arm_rec.errors.len(), 1);
    assert!(hand_rec.errors.is_empty());

    // Queries use the robot's model.
    for (robot, d) in [("arm-1", 5), ("hand-1", HAND_STATE_DIM)] {
        let req = ForecastRequest {
            robot_id: robot.into(),
            horizon: 3,
            particles: 2,
            deadline_ms: None,
        };
        let (f, _) = query(&h, &req, Encoding::Json).await?;
        check_forecast_of(&f.map_err(|e| anyhow::anyhow!("{e:?}"))?, 3, 2, d);
    }

    // The status lists both models and the robots each serves.
    let st = h
        .status_where(|s| s.robots == 2 && s.models.iter().all(|m| !m.robots.is_empty()))
        .await?;
    let served: Vec<(&str, &str, usize, Vec<String>)> = st
        .models
        .iter()
        .map(|m| {
            (
                m.robots_pattern.as_str(),
                m.model_id.as_str(),
                m.robot.state_dim,
                m.robots.clone(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            ("arm-*", "model@60", 5, vec!["arm-1".to_owned()]),
            ("*", "tiny@42", HAND_STATE_DIM, vec!["hand-1".to_owned()])
        ]
    );
    assert_eq!(st.models[0].robot.state_names, arm().state_names);
    assert_eq!(st.counters["states_wrong_dimensions"], 1);
    h.stop().await
}

/// An unconditional forecast model scored by an action-conditional OOD
/// model (as the committed hand and Fetch bindings): a `last_action` of the
/// wrong size is refused for that robot alone, before it can reach a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_checks_actions_against_the_ood_models_too() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let (forecaster, scorer) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            train_arm_model_with(&path, "traj_uncond.toml", "uncond")?,
            train_arm_model(&path)?,
        ))
    })
    .await??;
    let h = Harness::start(move |c| {
        let mut e = arm_entry("arm-*", forecaster);
        e.ood_checkpoints = vec![scorer];
        c.models.push(e);
    })
    .await?;
    let (mut good_out, mut bad_out) = (h.outputs("arm-1").await?, h.outputs("arm-2").await?);
    let (good, bad) = (h.publisher("arm-1").await?, h.publisher("arm-2").await?);
    for seq in 0..3u64 {
        put(
            &good,
            &arm_state("arm-1", seq, 0.1 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
        let mut s = arm_state("arm-2", seq, 0.1 * seq as f32);
        s.last_action = Some(vec![0.5; 3]);
        put(&bad, &s, Encoding::Bincode).await?;
    }
    let mut bad_rec = Received::default();
    receive_until(&mut bad_out, &mut bad_rec, |r| r.errors.len() == 3).await?;
    for e in &bad_rec.errors {
        assert_eq!(e.code, ErrorCode::WrongDimensions);
        assert!(
            e.message
                .contains("last_action has 3 floats, but its model expects 2"),
            "{}",
            e.message
        );
    }
    let mut good_rec = Received::default();
    receive_until(&mut good_out, &mut good_rec, |r| {
        has_forecast(r, 2) && r.ood.iter().any(|o| o.seq == 2)
    })
    .await?;
    assert!(good_rec.ood.iter().all(|o| o.model_id == "model@60"));
    assert!(good_rec
        .forecasts
        .iter()
        .all(|f| f.model_id == "model@60" && f.mean.len() == 5 * f.horizon as usize));
    let st = h
        .status_where(|s| s.counters["states_wrong_dimensions"] >= 3)
        .await?;
    assert_eq!(st.counters["inference_errors"], 0);
    assert!(bad_rec.forecasts.is_empty());
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_answers_robots_matching_no_model_with_unknown_robot() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let arm_like = dir.path().join("hand-sized");
    tiny_checkpoint(&arm_like)?;
    let h = Harness::start(move |c| {
        c.model = None; // no default: only the entry's robots are served
        c.models.push(arm_entry("hand-*", arm_like));
    })
    .await?;
    let mut out = h.outputs("stranger").await?;
    let p = h.publisher("stranger").await?;
    put(&p, &state("stranger", 0, 0.0), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut out, &mut rec, |r| !r.errors.is_empty()).await?;
    assert_eq!(rec.errors[0].code, ErrorCode::UnknownRobot);
    assert!(
        rec.errors[0].message.contains("hand-*"),
        "{}",
        rec.errors[0].message
    );
    let req = ForecastRequest {
        robot_id: "stranger".into(),
        horizon: 2,
        particles: 2,
        deadline_ms: None,
    };
    let (reply, _) = query(&h, &req, Encoding::Bincode).await?;
    let err: ErrorReply = reply.expect_err("an error reply");
    assert_eq!(err.code, ErrorCode::UnknownRobot);
    assert!(rec.forecasts.is_empty());
    let st = h
        .status_where(|s| s.counters["states_unknown_robot"] >= 1)
        .await?;
    assert_eq!(st.robots, 0);
    h.stop().await
}

/// Starts a daemon task on `cfg`; send on the returned channel to stop it.
fn spawn_daemon(
    cfg: ebm_runtime::RuntimeConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ebm_runtime::RuntimeError>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ebm_runtime::run(cfg, async {
        let _ = rx.await;
    }));
    (tx, task)
}

/// A fleet larger than one daemon: daemon A serves `arm-*`, daemon B
/// `hand-*`, both on one Zenoh network, each listening only to its robots'
/// keys. Every robot gets exactly one forecast per state, from its own
/// model; nobody answers the other's robots (no error replies, no duplicate
/// forecasts), and each holds its own liveliness token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_two_daemons_split_a_fleet_by_robot_patterns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let arm_model = tokio::task::spawn_blocking(move || train_arm_model(&path)).await??;
    let hand_model = dir.path().join("hand");
    tiny_checkpoint(&hand_model)?;
    let (ea, eb) = (free_loopback_endpoint()?, free_loopback_endpoint()?);
    let daemon = |id: &str, entries: Vec<ModelEntry>, zenoh| {
        let mut cfg = small_config(None, zenoh);
        cfg.daemon_id = id.into();
        cfg.unknown_robots = UnknownRobots::Ignore;
        cfg.models = entries;
        cfg
    };
    // Daemon A's two patterns overlap: arm-7 is the first's alone.
    let (stop_a, task_a) = spawn_daemon(daemon(
        "fleet-a",
        vec![
            arm_entry("arm-7", arm_model.clone()),
            arm_entry("arm-*", arm_model),
        ],
        loopback(vec![ea.clone()], vec![]),
    ));
    let (stop_b, task_b) = spawn_daemon(daemon(
        "fleet-b",
        vec![arm_entry("hand-*", hand_model)],
        loopback(vec![eb.clone()], vec![ea.clone()]),
    ));
    let client = within(
        "client",
        zenoh::open(ebm_runtime::transport::zenoh_config(&loopback(
            vec![],
            vec![ea, eb],
        ))?),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = KeySpace::default();
    // Publishers first: matched once the daemon serving the robot subscribed.
    let publisher = |robot: &str| {
        matched_publisher(
            &client,
            keys.state(&ebm_msgs::RobotId::new(robot).expect("id")),
        )
    };
    let (pa, ph) = (publisher("arm-7").await?, publisher("hand-7").await?);
    // Then everything the daemons publish per robot, and their statuses.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let _outputs = within(
        "outputs",
        client
            .declare_subscriber("ebm/**")
            .callback(move |s: Sample| {
                let _ = tx.send(s);
            }),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stranger = client
        .declare_publisher("ebm/stranger/state")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for seq in 0..3u64 {
        put(
            &pa,
            &arm_state("arm-7", seq, 0.1 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
        put(
            &ph,
            &state("hand-7", seq, 0.1 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
        put(&stranger, &state("stranger", seq, 0.0), Encoding::Bincode).await?;
    }
    // Collect until both robots' last forecasts and a status of each
    // daemon listing its robot have come, then a little longer for strays.
    let mut forecasts: BTreeMap<(String, u64), Vec<Forecast>> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut statuses: BTreeMap<String, DaemonStatus> = BTreeMap::new();
    let complete = |f: &BTreeMap<(String, u64), Vec<Forecast>>,
                    s: &BTreeMap<String, DaemonStatus>| {
        f.contains_key(&("arm-7".into(), 2))
            && f.contains_key(&("hand-7".into(), 2))
            && s.values().filter(|st| st.robots == 1).count() == 2
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settle: Option<Instant> = None;
    loop {
        if settle.is_some_and(|t| Instant::now() > t) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "incomplete: forecasts {:?}, statuses {:?}",
                forecasts.keys(),
                statuses
            );
        }
        let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await else {
            continue;
        };
        let key = s.key_expr().as_str().to_owned();
        let bytes = s.payload().to_bytes();
        if key.ends_with("/forecast") {
            let f: Forecast = decode(&bytes, Encoding::Bincode)?;
            forecasts
                .entry((f.robot_id.clone(), f.seq))
                .or_default()
                .push(f);
        } else if key.ends_with("/error") {
            errors.push(key);
        } else if key == keys.status() {
            let st: DaemonStatus = decode(&bytes, Encoding::Json)?;
            statuses.insert(st.daemon_id.clone(), st);
        }
        if settle.is_none() && complete(&forecasts, &statuses) {
            settle = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    assert!(
        errors.is_empty(),
        "no daemon answers another's robots: {errors:?}"
    );
    for ((robot, seq), fs) in &forecasts {
        assert_eq!(
            fs.len(),
            1,
            "{robot} seq {seq}: one forecast, from one daemon"
        );
        let (model, d) = if robot == "arm-7" {
            ("model@60", 5)
        } else {
            ("hand@42", HAND_STATE_DIM)
        };
        assert_eq!(fs[0].model_id, model, "{robot}");
        assert_eq!(fs[0].mean.len(), fs[0].horizon as usize * d);
    }
    assert!(!forecasts.keys().any(|(r, _)| r == "stranger"));
    let a = &statuses["fleet-a"];
    let b = &statuses["fleet-b"];
    let a_robots: Vec<Vec<String>> = a.models.iter().map(|m| m.robots.clone()).collect();
    assert_eq!(a_robots, [vec!["arm-7".to_owned()], vec![]]);
    // Each state reached daemon A once, though both its patterns match.
    assert_eq!(a.counters["states_received"], 3, "{:?}", a.counters);
    assert_eq!(a.counters["states_out_of_order"], 0, "{:?}", a.counters);
    assert_eq!(
        (b.models.len(), b.models[0].robots.clone()),
        (1, vec!["hand-7".to_owned()])
    );
    // Each daemon holds its own liveliness token.
    let replies = within("liveliness", client.liveliness().get("ebm/@alive/*"))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut alive = Vec::new();
    while let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), replies.recv_async()).await {
        if let Ok(s) = r.result() {
            alive.push(s.key_expr().to_string());
        }
    }
    alive.sort();
    assert_eq!(alive, ["ebm/@alive/fleet-a", "ebm/@alive/fleet-b"]);
    drop((pa, ph, stranger));
    let _ = (stop_a.send(()), stop_b.send(()));
    within("daemon a", task_a).await???;
    within("daemon b", task_b).await???;
    within("client close", client.close())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
