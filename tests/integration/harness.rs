//! The daemon harness the runtime tests share: a daemon on a free
//! 127.0.0.1 port with multicast and gossip scouting off, on a tiny
//! checkpoint written to a temp dir (no committed model needed), a client
//! session connected to it explicitly, and helpers to publish states, collect
//! outputs and query; every await is under a timeout.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ebm_core::checkpoint::{self, Manifest, Normalization, OodCalibration};
use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
use ebm_msgs::{
    decode, encode, DaemonStatus, DenoisedState, Encoding, ErrorReply, Forecast, ForecastRequest,
    KeySpace, OodScore, RobotState,
};
use ebm_runtime::transport::{free_loopback_endpoint, loopback};
use ebm_runtime::RuntimeConfig;
use ebm_sim_data::{HAND_ACTION_DIM, HAND_STATE_DIM};
use tokio::time::timeout;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;

pub(crate) const WAIT: Duration = Duration::from_secs(30);

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
    let normalization = Normalization {
        mean: vec![0.1; HAND_STATE_DIM + HAND_ACTION_DIM],
        std: vec![0.5; HAND_STATE_DIM + HAND_ACTION_DIM],
    };
    save_tiny(dir, cfg, normalization, None)
}

/// Saves an untrained export of `cfg` with one hidden layer of 16 (step 42:
/// model id `<dir name>@42`), `normalization`, energy percentiles and
/// `robot` (`None`: sizes only, as legacy exports).
pub(crate) fn save_tiny(
    dir: &std::path::Path,
    mut cfg: MlpEnergyConfig,
    normalization: Normalization,
    robot: Option<ebm_core::checkpoint::RobotSpec>,
) -> Result<()> {
    cfg.hidden = vec![16];
    let params = ParamStore::new(7, &Device::Cpu);
    MlpEnergy::init(&cfg, &params)?;
    let mut m = Manifest::new::<MlpEnergy>(&cfg, 42)?;
    m.normalization = Some(normalization);
    let pct: Vec<f32> = (0..=100).map(|i| -5.0 + 0.1 * i as f32).collect();
    m.ood = Some(OodCalibration {
        energy_percentiles: pct,
        window_energy_percentiles: None,
        stein_window: None,
    });
    m.robot = robot;
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
        Self::start_with(tweak, |cfg| {
            Ok(ebm_runtime::transport::zenoh_config(&loopback(
                vec![],
                cfg.zenoh.listen.clone(),
            ))?)
        })
        .await
    }

    /// As [`Harness::start`], the client session configured by `client`
    /// from the daemon's config (after `tweak`).
    pub(crate) async fn start_with(
        tweak: impl FnOnce(&mut RuntimeConfig),
        client: impl FnOnce(&RuntimeConfig) -> Result<zenoh::Config>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let ckpt = dir.path().join("tiny");
        tiny_checkpoint(&ckpt)?;
        let endpoint = free_loopback_endpoint()?;
        let mut cfg = small_config(Some(ckpt), loopback(vec![endpoint], vec![]));
        tweak(&mut cfg);
        let keys = KeySpace::new(&cfg.key_prefix)?;
        let client_config = client(&cfg)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(ebm_runtime::run(cfg.clone(), async {
            let _ = rx.await;
        }));
        let session = within("client session", zenoh::open(client_config))
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

impl Outputs {
    /// Takes one output that has arrived, without waiting: false when none has.
    pub(crate) fn try_take(&mut self, rec: &mut Received) -> Result<bool> {
        match self.rx.try_recv() {
            Ok(sample) => rec.take(&sample).map(|_| true),
            Err(_) => Ok(false),
        }
    }
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
