//! The daemon: Zenoh in and out around the inference [`Engine`].
//!
//! - subscribes to `<prefix>/*/state`; every sample is decoded strictly (the
//!   codec is chosen by the sample's Zenoh encoding) in the subscriber
//!   callback and handed to the engine, or counted as a drop;
//! - answers `<prefix>/*/forecast_query` with a forecast or an error reply;
//! - publishes forecasts, OOD scores and denoised states per robot (in the
//!   encoding the robot's state came in) with congestion control `Drop`;
//! - publishes its counters on `<prefix>/status` and holds a liveliness
//!   token `<prefix>/@alive/<daemon_id>`;
//! - stops cleanly when `shutdown` resolves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebm_msgs::{
    decode, encode, DaemonStatus, Encoding, ErrorCode, ErrorReply, ForecastRequest, KeySpace,
    Message, MsgsError, RobotId, RobotState,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zenoh::pubsub::Publisher;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::Query;
use zenoh::sample::Sample;

use crate::config::RuntimeConfig;
use crate::counters::Counters;
use crate::engine::{Engine, StreamOutput};
use crate::model::ModelBundle;
use crate::{transport, RuntimeError};

/// Loads the configured model and serves until `shutdown` resolves.
pub async fn run(
    cfg: RuntimeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let device = ebm_core::device::select(&cfg.device)?;
    let bundle = ModelBundle::from_config(&cfg.model, cfg.seed, &device)?;
    run_with_model(cfg, bundle, shutdown).await
}

fn zenoh_encoding(e: Encoding) -> zenoh::bytes::Encoding {
    zenoh::bytes::Encoding::from(e.mime())
}

/// Serves `bundle` until `shutdown` resolves.
pub async fn run_with_model(
    cfg: RuntimeConfig,
    bundle: ModelBundle,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    cfg.validate()?;
    let keys = KeySpace::new(&cfg.key_prefix)?;
    let daemon_id = RobotId::new(cfg.daemon_id.as_str())?;
    let model_id = bundle.model_id.clone();
    let warnings = bundle.warnings.clone();
    for w in &warnings {
        warn!("{w}");
    }
    let counters = Arc::new(Counters::default());
    let (out_tx, out_rx) = mpsc::channel(cfg.engine.output_queue);
    let engine = Arc::new(Engine::start(bundle, &cfg, Arc::clone(&counters), out_tx)?);
    let ood_source = if engine.ood_calibrated() {
        "checkpoint"
    } else {
        "online"
    };

    let session = transport::open(&cfg.zenoh).await?;
    let subscriber = {
        let (engine, keys) = (Arc::clone(&engine), keys.clone());
        session
            .declare_subscriber(keys.all_states())
            .callback(move |sample| ingest(&engine, &keys, &sample))
            .await
            .map_err(RuntimeError::zenoh("declaring the state subscriber"))?
    };
    let queryable = session
        .declare_queryable(keys.all_forecast_queries())
        .await
        .map_err(RuntimeError::zenoh("declaring the forecast queryable"))?;
    let token = session
        .liveliness()
        .declare_token(keys.daemon_liveliness(&daemon_id))
        .await
        .map_err(RuntimeError::zenoh("declaring the liveliness token"))?;
    let status_pub = session
        .declare_publisher(keys.status())
        .encoding(zenoh_encoding(Encoding::Json))
        .congestion_control(CongestionControl::Drop)
        .await
        .map_err(RuntimeError::zenoh("declaring the status publisher"))?;
    let publisher = tokio::spawn(publish_outputs(
        session.clone(),
        keys.clone(),
        out_rx,
        Arc::clone(&counters),
    ));
    info!(
        model = %model_id,
        states = %keys.all_states(),
        queries = %keys.all_forecast_queries(),
        "serving"
    );

    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(cfg.status.period_ms));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                let status = DaemonStatus {
                    daemon_id: daemon_id.to_string(),
                    model_id: model_id.clone(),
                    ood_percentiles: ood_source.into(),
                    warnings: warnings.clone(),
                    uptime_ms: started.elapsed().as_millis() as u64,
                    robots: engine.robots() as u32,
                    counters: counters.snapshot(),
                };
                match encode(&status, Encoding::Json) {
                    Ok(bytes) => {
                        if status_pub.put(bytes).await.is_err() {
                            Counters::inc(&counters.publish_errors);
                        }
                    }
                    Err(_) => Counters::inc(&counters.publish_errors),
                }
            }
            q = queryable.recv_async() => match q {
                Ok(query) => answer(&engine, &keys, &counters, query),
                Err(e) => {
                    warn!("the forecast queryable closed: {e}");
                    break;
                }
            },
        }
    }

    info!("shutting down");
    drop(subscriber);
    let _ = queryable.undeclare().await;
    let _ = token.undeclare().await;
    let _ = status_pub.undeclare().await;
    {
        let engine = Arc::clone(&engine);
        let _ = tokio::task::spawn_blocking(move || engine.stop()).await;
    }
    drop(engine); // closes the output channel once the thread is gone
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
    session
        .close()
        .await
        .map_err(RuntimeError::zenoh("closing the session"))?;
    info!("stopped");
    Ok(())
}

/// Decodes one state sample and hands it to the engine, or counts the drop.
fn ingest(engine: &Engine, keys: &KeySpace, sample: &Sample) {
    let c = engine.counters();
    Counters::inc(&c.states_received);
    let Some(robot) = keys.robot_of(sample.key_expr().as_str(), "state") else {
        Counters::inc(&c.states_malformed);
        return;
    };
    let encoding = match Encoding::from_mime(&sample.encoding().to_string()) {
        Ok(e) => e,
        Err(_) => {
            Counters::inc(&c.states_malformed);
            return;
        }
    };
    match decode::<RobotState>(&sample.payload().to_bytes(), encoding) {
        Ok(state) if state.robot_id == robot.as_str() => {
            engine.submit_state(robot, state, encoding);
        }
        Ok(_) => Counters::inc(&c.states_malformed), // payload names another robot
        Err(MsgsError::WrongDimension { .. }) => Counters::inc(&c.states_wrong_dimensions),
        Err(MsgsError::NonFinite { .. }) => Counters::inc(&c.states_non_finite),
        Err(e) => {
            debug!(robot = %robot, "malformed state: {e}");
            Counters::inc(&c.states_malformed);
        }
    }
}

fn error_reply(code: ErrorCode, message: String) -> ErrorReply {
    ErrorReply { code, message }
}

/// Decodes a forecast query, queues it, and replies from a task when the
/// engine answers (so the daemon's loop never waits on inference).
fn answer(engine: &Arc<Engine>, keys: &KeySpace, counters: &Arc<Counters>, query: Query) {
    let received = Instant::now();
    Counters::inc(&counters.queries_received);
    let encoding = query
        .encoding()
        .and_then(|e| Encoding::from_mime(&e.to_string()).ok())
        .unwrap_or(Encoding::Bincode);
    let request = match (
        keys.robot_of(query.key_expr().as_str(), "forecast_query"),
        query.payload(),
    ) {
        (None, _) => Err(error_reply(
            ErrorCode::Malformed,
            format!("`{}` is not a forecast query key", query.key_expr()),
        )),
        (Some(_), None) => Err(error_reply(
            ErrorCode::Malformed,
            "the query has no payload (a ForecastRequest)".into(),
        )),
        (Some(robot), Some(p)) => match decode::<ForecastRequest>(&p.to_bytes(), encoding) {
            Ok(r) if r.robot_id == robot.as_str() => Ok(r),
            Ok(r) => Err(error_reply(
                ErrorCode::Malformed,
                format!("request for robot {} on the key of {robot}", r.robot_id),
            )),
            Err(e) => Err(error_reply(ErrorCode::Malformed, format!("{e}"))),
        },
    };
    let pending = request.and_then(|req| engine.submit_query(req, received));
    let counters = Arc::clone(counters);
    tokio::spawn(async move {
        let reply = match pending {
            Ok(rx) => rx.await.unwrap_or_else(|_| {
                Err(error_reply(
                    ErrorCode::Internal,
                    "the daemon is shutting down".into(),
                ))
            }),
            Err(e) => Err(e),
        };
        let sent = match reply {
            Ok(forecast) => match encode(&forecast, encoding) {
                Ok(bytes) => query
                    .reply(query.key_expr().clone(), bytes)
                    .encoding(zenoh_encoding(encoding))
                    .await
                    .is_ok(),
                Err(e) => {
                    reply_error(
                        &query,
                        encoding,
                        error_reply(ErrorCode::Internal, e.to_string()),
                    )
                    .await
                }
            },
            Err(err) => {
                Counters::inc(&counters.queries_refused);
                reply_error(&query, encoding, err).await
            }
        };
        if !sent {
            Counters::inc(&counters.publish_errors);
        }
    });
}

async fn reply_error(query: &Query, encoding: Encoding, err: ErrorReply) -> bool {
    match encode(&err, encoding) {
        Ok(bytes) => query
            .reply_err(bytes)
            .encoding(zenoh_encoding(encoding))
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// The output publishers of one robot.
struct RobotPublishers {
    forecast: Publisher<'static>,
    ood: Publisher<'static>,
    denoised: Publisher<'static>,
}

async fn declare(
    session: &zenoh::Session,
    key: String,
) -> Result<Publisher<'static>, zenoh::Error> {
    session
        .declare_publisher(key)
        .congestion_control(CongestionControl::Drop)
        .priority(Priority::DataHigh)
        .express(true)
        .await
}

async fn put<M: Message>(p: &Publisher<'static>, msg: &M, enc: Encoding, c: &Counters) -> bool {
    match encode(msg, enc) {
        Ok(bytes) => {
            if p.put(bytes).encoding(zenoh_encoding(enc)).await.is_ok() {
                return true;
            }
        }
        Err(e) => debug!("could not encode a {}: {e}", M::KIND),
    }
    Counters::inc(&c.publish_errors);
    false
}

async fn publish_outputs(
    session: zenoh::Session,
    keys: KeySpace,
    mut rx: mpsc::Receiver<StreamOutput>,
    c: Arc<Counters>,
) {
    let mut publishers: HashMap<RobotId, RobotPublishers> = HashMap::new();
    while let Some(out) = rx.recv().await {
        if !publishers.contains_key(&out.robot) {
            let r = &out.robot;
            let declared = async {
                Ok::<_, zenoh::Error>(RobotPublishers {
                    forecast: declare(&session, keys.forecast(r)).await?,
                    ood: declare(&session, keys.ood(r)).await?,
                    denoised: declare(&session, keys.denoised(r)).await?,
                })
            }
            .await;
            match declared {
                Ok(p) => {
                    publishers.insert(r.clone(), p);
                }
                Err(e) => {
                    warn!(robot = %r, "declaring publishers: {e}");
                    Counters::inc(&c.publish_errors);
                    continue;
                }
            }
        }
        let Some(p) = publishers.get(&out.robot) else {
            continue;
        };
        let enc = out.encoding;
        if put(&p.forecast, &out.forecast, enc, &c).await {
            Counters::inc(&c.forecasts_published);
        }
        if let Some(ood) = &out.ood {
            if put(&p.ood, ood, enc, &c).await {
                Counters::inc(&c.ood_published);
            }
        }
        if put(&p.denoised, &out.denoised, enc, &c).await {
            Counters::inc(&c.denoised_published);
        }
    }
}
