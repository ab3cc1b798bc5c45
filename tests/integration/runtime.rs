//! The runtime daemon over real Zenoh sessions on loopback.
//!
//! Hermetic: each test starts its own daemon on a free 127.0.0.1 port with
//! multicast and gossip scouting off, on a tiny checkpoint written to a temp
//! dir (so no committed model is needed); the client session connects to it
//! explicitly, and every await is under a timeout. The only timing assert is
//! the deadline one, with its margin stated there.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ebm_core::checkpoint::{self, Manifest, Normalization, OodCalibration};
use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
use ebm_msgs::{
    decode, encode, DaemonStatus, DenoisedState, Encoding, ErrorCode, ErrorReply, Forecast,
    ForecastRequest, KeySpace, OodScore, RobotState,
};
use ebm_runtime::transport::{free_loopback_endpoint, loopback};
use ebm_runtime::RuntimeConfig;
use ebm_sim_data::{HAND_ACTION_DIM, HAND_STATE_DIM};
use tokio::time::timeout;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;

const WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn within<T, F: IntoFuture<Output = T>>(what: &str, f: F) -> Result<T> {
    timeout(WAIT, f.into_future())
        .await
        .with_context(|| format!("timed out: {what}"))
}

/// A tiny trajectory checkpoint (31 -> 16 -> 1) with normalisation and
/// energy percentiles, as `ebm-train traj train` writes them.
pub(crate) fn tiny_checkpoint(dir: &std::path::Path) -> Result<()> {
    tiny_checkpoint_with_context(dir, 1)
}

/// As [`tiny_checkpoint`], conditioned on the last `k` states.
pub(crate) fn tiny_checkpoint_with_context(dir: &std::path::Path, k: usize) -> Result<()> {
    let mut cfg = MlpEnergyConfig::new(HAND_STATE_DIM);
    cfg.context_len = k;
    cfg.hidden = vec![16];
    let params = ParamStore::new(7, &Device::Cpu);
    MlpEnergy::init(&cfg, &params)?;
    let mut m = Manifest::new::<MlpEnergy>(&cfg, 42)?;
    m.normalization = Some(Normalization {
        mean: vec![0.1; HAND_STATE_DIM + HAND_ACTION_DIM],
        std: vec![0.5; HAND_STATE_DIM + HAND_ACTION_DIM],
    });
    let pct: Vec<f32> = (0..=100).map(|i| -5.0 + 0.1 * i as f32).collect();
    m.ood = Some(OodCalibration {
        energy_percentiles: pct,
        window_energy_percentiles: None,
        stein_window: None,
    });
    checkpoint::save_model(dir, m, &params)?;
    Ok(())
}

/// The reference config made small and fast for tests: `default_model` as
/// the only model (none: add `[[models]]` entries), short forecasts,
/// status every 50 ms, no OOD models, Zenoh as given.
pub(crate) fn small_config(
    default_model: Option<std::path::PathBuf>,
    zenoh: ebm_runtime::config::ZenohConfig,
) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::default();
    cfg.models.clear(); // the reference's entries point at committed models
    cfg.model = default_model.map(|checkpoint| ebm_runtime::config::ModelConfig {
        checkpoint,
        allow_untrained: false,
        untrained_state_dim: 0,
    });
    cfg.forecast.horizon = 5;
    cfg.forecast.particles = 4;
    cfg.forecast.langevin.steps = 3;
    cfg.forecast.rate_hz = 1000.0;
    cfg.denoise.langevin.steps = 3;
    cfg.status.period_ms = 50;
    cfg.zenoh = zenoh;
    cfg.ood.checkpoints.clear();
    cfg
}

pub(crate) struct Harness {
    pub(crate) session: zenoh::Session,
    pub(crate) keys: KeySpace,
    pub(crate) cfg: RuntimeConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    daemon: tokio::task::JoinHandle<Result<(), ebm_runtime::RuntimeError>>,
    status: Subscriber<FifoChannelHandler<Sample>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub(crate) async fn start(tweak: impl FnOnce(&mut RuntimeConfig)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let ckpt = dir.path().join("tiny");
        tiny_checkpoint(&ckpt)?;
        let endpoint = free_loopback_endpoint()?;
        let mut cfg = small_config(Some(ckpt), loopback(vec![endpoint.clone()], vec![]));
        tweak(&mut cfg);
        let keys = KeySpace::new(&cfg.key_prefix)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(ebm_runtime::run(cfg.clone(), async {
            let _ = rx.await;
        }));
        let session = within(
            "client session",
            zenoh::open(ebm_runtime::transport::zenoh_config(&loopback(
                vec![],
                vec![endpoint],
            ))?),
        )
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let status = within(
            "status subscriber",
            session.declare_subscriber(keys.status()),
        )
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let h = Self {
            session,
            keys,
            cfg,
            stop: Some(tx),
            daemon,
            status,
            _dir: dir,
        };
        // The daemon is up once its status arrives.
        h.status_where(|_| true).await?;
        Ok(h)
    }

    /// The first status satisfying `pred`.
    pub(crate) async fn status_where(
        &self,
        pred: impl Fn(&DaemonStatus) -> bool,
    ) -> Result<DaemonStatus> {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            let Ok(sample) = timeout(Duration::from_secs(2), self.status.recv_async()).await else {
                continue;
            };
            let sample = sample.map_err(|e| anyhow::anyhow!("{e}"))?;
            let s: DaemonStatus = decode(&sample.payload().to_bytes(), Encoding::Json)?;
            if pred(&s) {
                return Ok(s);
            }
            last = Some(s);
        }
        bail!("no status matched; last: {last:?}")
    }

    pub(crate) async fn publisher(&self, robot: &str) -> Result<zenoh::pubsub::Publisher<'static>> {
        matched_publisher(
            &self.session,
            self.keys.state(&ebm_msgs::RobotId::new(robot)?),
        )
        .await
    }

    /// The robot's outputs (its own `state` key, which `*` also matches, is
    /// filtered out here so the test's puts never wait on this subscriber).
    pub(crate) async fn outputs(&self, robot: &str) -> Result<Outputs> {
        let key = format!("{}/{robot}/*", self.keys.prefix());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sub = within(
            "output subscriber",
            self.session
                .declare_subscriber(key)
                .callback(move |s: Sample| {
                    if !s.key_expr().as_str().ends_with("/state") {
                        let _ = tx.send(s);
                    }
                }),
        )
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Outputs { _sub: sub, rx })
    }

    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        within("daemon shutdown", &mut self.daemon).await???;
        within("client close", self.session.close())
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

/// A publisher on `key` (congestion control `Block`), once a subscriber
/// matches it (a daemon has subscribed).
pub(crate) async fn matched_publisher(
    session: &zenoh::Session,
    key: String,
) -> Result<zenoh::pubsub::Publisher<'static>> {
    let p = within(
        "publisher",
        session
            .declare_publisher(key)
            .congestion_control(CongestionControl::Block),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + WAIT;
    while !p
        .matching_status()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .matching()
    {
        if Instant::now() > deadline {
            bail!("the daemon never subscribed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(p)
}

pub(crate) fn state(robot: &str, seq: u64, x: f32) -> RobotState {
    RobotState {
        robot_id: robot.into(),
        episode: 0,
        seq,
        stamp_ns: seq * 40_000_000,
        state: (0..HAND_STATE_DIM).map(|i| x + 0.01 * i as f32).collect(),
        last_action: Some(vec![0.2; HAND_ACTION_DIM]),
    }
}

pub(crate) async fn put(
    p: &zenoh::pubsub::Publisher<'static>,
    s: &RobotState,
    enc: Encoding,
) -> Result<()> {
    within(
        "put",
        p.put(encode(s, enc)?)
            .encoding(zenoh::bytes::Encoding::from(enc.mime())),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) struct Outputs {
    _sub: Subscriber<()>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Sample>,
}

/// What arrived for one robot, by kind.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) forecasts: Vec<Forecast>,
    pub(crate) ood: Vec<OodScore>,
    pub(crate) denoised: Vec<DenoisedState>,
    /// Replies to refused states (`<prefix>/<robot>/error`).
    pub(crate) errors: Vec<ErrorReply>,
}

impl Received {
    fn take(&mut self, sample: &Sample) -> Result<Encoding> {
        let enc = Encoding::from_mime(&sample.encoding().to_string())?;
        let bytes = sample.payload().to_bytes();
        let key = sample.key_expr().as_str();
        if key.ends_with("/forecast") {
            self.forecasts.push(decode(&bytes, enc)?);
        } else if key.ends_with("/ood") {
            self.ood.push(decode(&bytes, enc)?);
        } else if key.ends_with("/denoised") {
            self.denoised.push(decode(&bytes, enc)?);
        } else if key.ends_with("/error") {
            self.errors.push(decode(&bytes, enc)?);
        }
        Ok(enc)
    }
}

/// Receives until `done` holds.
pub(crate) async fn receive_until(
    sub: &mut Outputs,
    rec: &mut Received,
    done: impl Fn(&Received) -> bool,
) -> Result<Vec<Encoding>> {
    let mut encodings = Vec::new();
    while !done(rec) {
        let sample = within("outputs", sub.rx.recv())
            .await
            .with_context(|| {
                let seqs = |v: Vec<u64>| format!("{v:?}");
                format!(
                    "received forecasts {}, denoised {}, ood {}",
                    seqs(rec.forecasts.iter().map(|f| f.seq).collect()),
                    seqs(rec.denoised.iter().map(|d| d.seq).collect()),
                    seqs(rec.ood.iter().map(|o| o.seq).collect())
                )
            })?
            .context("output subscriber closed")?;
        encodings.push(rec.take(&sample)?);
    }
    Ok(encodings)
}

pub(crate) fn check_forecast(f: &Forecast, h: usize, p: usize) {
    check_forecast_of(f, h, p, HAND_STATE_DIM);
    assert_eq!(f.model_id, "tiny@42");
}

/// A well-formed forecast of `h` steps, `p` particles and `d`-float states.
pub(crate) fn check_forecast_of(f: &Forecast, h: usize, p: usize, d: usize) {
    assert_eq!((f.horizon as usize, f.particles as usize), (h, p));
    assert_eq!(f.trajectories.len(), p * h * d);
    assert_eq!(f.energies.len(), p);
    assert_eq!(f.mean.len(), h * d);
    assert_eq!(f.spread.len(), h * d);
    assert!(f
        .trajectories
        .iter()
        .chain(&f.mean)
        .chain(&f.spread)
        .chain(&f.energies)
        .all(|v| v.is_finite()));
    assert!(f.spread.iter().all(|&s| s >= 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_states_in_give_forecasts_ood_scores_and_denoised_states_out() -> Result<()> {
    let h = Harness::start(|_| {}).await?;
    let (hz, pz) = (h.cfg.forecast.horizon, h.cfg.forecast.particles);
    for (robot, enc) in [("hand-1", Encoding::Bincode), ("hand-json", Encoding::Json)] {
        let mut sub = h.outputs(robot).await?;
        let publ = h.publisher(robot).await?;
        let mut rec = Received::default();
        for seq in 0..3u64 {
            put(&publ, &state(robot, seq, 0.1 * seq as f32), enc).await?;
            let encs = receive_until(&mut sub, &mut rec, |r| {
                r.forecasts.iter().any(|f| f.seq == seq)
                    && r.denoised.iter().any(|d| d.seq == seq)
                    && (seq == 0 || r.ood.iter().any(|o| o.seq == seq))
            })
            .await?;
            assert!(
                encs.iter().all(|&e| e == enc),
                "outputs come in the input's encoding"
            );
        }
        for f in &rec.forecasts {
            check_forecast(f, hz, pz);
            assert_eq!(f.robot_id, robot);
            assert_eq!(
                f.langevin_steps as usize,
                hz * h.cfg.forecast.langevin.steps
            );
        }
        // The first state of an episode has no transition, hence no OOD score.
        assert!(rec.ood.iter().all(|o| o.seq >= 1), "{:?}", rec.ood);
        for o in &rec.ood {
            assert!(o.energy.is_finite() && (0.0..=100.0).contains(&o.percentile));
            assert_eq!(
                o.flagged,
                f64::from(o.percentile) >= h.cfg.ood.flag_percentile
            );
            // The window holds this episode's scored transitions so far (the
            // test checkpoint stores no window statistics: no percentile).
            assert!(
                o.window_len >= 1 && u64::from(o.window_len) <= o.seq,
                "{o:?}"
            );
            assert!(o.window_energy.is_finite() && o.window_percentile.is_none());
            assert!(o.window_discrepancy.is_none());
            if o.window_len == 1 {
                assert_eq!(o.window_energy, o.energy);
            }
        }
        for d in &rec.denoised {
            assert_eq!(d.state.len(), HAND_STATE_DIM);
            assert!(d.state.iter().all(|v| v.is_finite()));
        }
    }
    // The liveliness token is visible.
    let replies = within(
        "liveliness",
        h.session
            .liveliness()
            .get(format!("{}/@alive/*", h.keys.prefix())),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = within("liveliness reply", replies.recv_async())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = token
        .result()
        .map_err(|_| anyhow::anyhow!("error reply"))?
        .key_expr()
        .to_string();
    assert_eq!(key, "ebm/@alive/ebm-runtime");
    let st = h
        .status_where(|s| s.counters["states_processed"] >= 6)
        .await?;
    assert_eq!(st.robots, 2);
    assert_eq!(st.models.len(), 1);
    assert_eq!(st.models[0].ood_percentiles, "checkpoint");
    assert_eq!(st.models[0].robots_pattern, "*");
    assert_eq!(st.models[0].robot.state_dim, HAND_STATE_DIM);
    h.stop().await
}

pub(crate) async fn query(
    h: &Harness,
    req: &ForecastRequest,
    enc: Encoding,
) -> Result<(Result<Forecast, ErrorReply>, Duration)> {
    let key = format!("{}/{}/forecast_query", h.keys.prefix(), req.robot_id);
    let t0 = Instant::now();
    let replies = within(
        "query",
        h.session
            .get(key)
            .payload(encode(req, enc)?)
            .encoding(zenoh::bytes::Encoding::from(enc.mime()))
            .timeout(WAIT),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reply = within("reply", replies.recv_async())
        .await?
        .map_err(|e| anyhow::anyhow!("no reply: {e}"))?;
    let elapsed = t0.elapsed();
    Ok(match reply.result() {
        Ok(s) => (Ok(decode(&s.payload().to_bytes(), enc)?), elapsed),
        Err(e) => (Err(decode(&e.payload().to_bytes(), enc)?), elapsed),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_query_with_deadline_is_answered_in_time() -> Result<()> {
    // 200 Langevin steps per predicted step: a 200-step, 256-particle query
    // runs 40,000 steps in full, several seconds even for this tiny model.
    let h = Harness::start(|c| {
        c.forecast.langevin.steps = 200;
        c.forecast.rate_hz = 0.2; // streaming forecasts stay out of the way
    })
    .await?;
    let publ = h.publisher("arm").await?;
    put(&publ, &state("arm", 0, 0.0), Encoding::Bincode).await?;
    h.status_where(|s| s.robots == 1).await?;

    // Small and without deadline: every step runs.
    let small = ForecastRequest {
        robot_id: "arm".into(),
        horizon: 3,
        particles: 2,
        deadline_ms: None,
    };
    let (r, _) = query(&h, &small, Encoding::Json).await?;
    let f = r.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    check_forecast(&f, 3, 2);
    assert_eq!(f.langevin_steps, 3 * 200);

    let deadline_ms = 150;
    let big = ForecastRequest {
        robot_id: "arm".into(),
        horizon: 200,
        particles: 256,
        deadline_ms: Some(deadline_ms),
    };
    let (r, elapsed) = query(&h, &big, Encoding::Bincode).await?;
    let f = r.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    check_forecast(&f, 200, 256);
    assert!(
        f.langevin_steps < 200 * 200,
        "ran {} steps: no early stop",
        f.langevin_steps
    );
    // Margin: 1.5 s for queueing behind a streaming forecast, the tail of
    // predicted steps that run no Langevin step, encoding a 6 MB reply and
    // the round trip, on 2 shared cores.
    let margin = Duration::from_millis(1500);
    assert!(
        elapsed < Duration::from_millis(deadline_ms) + margin,
        "answered after {elapsed:?}"
    );

    // Errors: unknown robot, out-of-range sizes, malformed payload.
    let unknown = ForecastRequest {
        robot_id: "ghost".into(),
        ..small.clone()
    };
    let (r, _) = query(&h, &unknown, Encoding::Bincode).await?;
    assert_eq!(r.map(|_| ()).unwrap_err().code, ErrorCode::UnknownRobot);
    let too_big = ForecastRequest {
        horizon: 10_000,
        ..small.clone()
    };
    let (r, _) = query(&h, &too_big, Encoding::Bincode).await?;
    assert_eq!(r.map(|_| ()).unwrap_err().code, ErrorCode::WrongDimensions);
    // Within the size bounds, but not encodable as JSON under the message
    // limit (about 28 MB of text): refused before any inference, by name.
    let (r, elapsed) = query(&h, &big, Encoding::Json).await?;
    let err = r.map(|_| ()).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongDimensions);
    assert!(err.message.contains("message limit"), "{}", err.message);
    assert!(
        elapsed < Duration::from_secs(5),
        "refused after {elapsed:?}"
    );
    let replies = within(
        "bad query",
        h.session
            .get("ebm/arm/forecast_query")
            .payload(vec![1u8, 2, 3])
            .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
            .timeout(WAIT),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reply = within("bad reply", replies.recv_async())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let err = reply.result().map(|_| ()).unwrap_err();
    let err: ErrorReply = decode(&err.payload().to_bytes(), Encoding::Bincode)?;
    assert_eq!(err.code, ErrorCode::Malformed);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_malformed_messages_are_counted_and_a_valid_one_is_still_served() -> Result<()> {
    let h = Harness::start(|_| {}).await?;
    let mut sub = h.outputs("r1").await?;
    let publ = h.publisher("r1").await?;
    let good = encode(&state("r1", 5, 0.3), Encoding::Bincode)?;
    let json = String::from_utf8(encode(&state("r1", 5, 0.3), Encoding::Json)?)?;
    let bin = zenoh::bytes::Encoding::from(Encoding::Bincode.mime());
    let js = zenoh::bytes::Encoding::from(Encoding::Json.mime());
    let mut sent = BTreeMap::<&str, u64>::new();
    for i in 0..1000usize {
        let (payload, enc, kind) = match i % 8 {
            0 => (vec![0xFF; i % 50], bin.clone(), "malformed"),
            1 => (
                good[..good.len() - 1 - i % 10].to_vec(),
                bin.clone(),
                "malformed",
            ),
            2 => {
                let mut b = good.clone();
                b.push(0);
                (b, bin.clone(), "malformed") // trailing byte
            }
            3 => {
                let mut b = good.clone();
                b[0] = 9;
                (b, bin.clone(), "malformed") // protocol version 9
            }
            4 => {
                // 30 floats instead of 31.
                let bad = json.replacen("0.3,", "", 1);
                (bad.into_bytes(), js.clone(), "wrong_dimensions")
            }
            5 => (
                good.clone(),
                zenoh::bytes::Encoding::from("text/plain"),
                "malformed",
            ),
            6 => {
                let other = encode(&state("r2", 5, 0.3), Encoding::Bincode)?;
                (other, bin.clone(), "malformed") // names another robot
            }
            _ => (b"{\"v\":1,\"msg\":{}}".to_vec(), js.clone(), "malformed"),
        };
        *sent.entry(kind).or_default() += 1;
        within("put", publ.put(payload).encoding(enc))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    put(&publ, &state("r1", 5, 0.3), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut sub, &mut rec, |r| {
        r.forecasts.iter().any(|f| f.seq == 5)
    })
    .await?;
    let st = h
        .status_where(|s| s.counters["states_received"] >= 1001)
        .await?;
    let c = &st.counters;
    assert_eq!(c["states_received"], 1001, "{c:?}");
    assert_eq!(c["states_malformed"], sent["malformed"], "{c:?}");
    assert_eq!(
        c["states_wrong_dimensions"], sent["wrong_dimensions"],
        "{c:?}"
    );
    assert_eq!(c["states_processed"], 1, "{c:?}");
    // Each state of the wrong size was answered on the robot's error key
    // (or, with the error queue full, counted as not answered).
    assert_eq!(
        c["state_errors_published"] + c["state_errors_dropped"],
        sent["wrong_dimensions"],
        "{c:?}"
    );
    h.stop().await
}
