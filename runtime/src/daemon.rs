//! The daemon: Zenoh in and out around the inference engines of its
//! [`Fleet`] (one per served model).
//!
//! - subscribes to robot states: `<prefix>/*/state` (with `unknown_robots =
//!   "reply"`) or only the served patterns' keys (`"ignore"`, for a fleet
//!   split across daemons); every sample is decoded strictly (the codec is
//!   chosen by the sample's Zenoh encoding) in the subscriber callback,
//!   routed to the engine of the robot's model and checked against that
//!   model's sizes, or counted as a drop; a refused state (wrong size,
//!   unknown robot) is answered with an [`ErrorReply`] on
//!   `<prefix>/<robot>/error`;
//! - answers `<prefix>/<robot>/forecast_query` (same key choice) with a
//!   forecast from the robot's model or an error reply;
//! - publishes forecasts, OOD scores and denoised states per robot (in the
//!   encoding the robot's state came in) with congestion control `Drop`;
//! - publishes its counters and served models on `<prefix>/status` and holds
//!   a liveliness token `<prefix>/@alive/<daemon_id>`;
//! - stops cleanly when `shutdown` resolves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebm_msgs::{
    decode, encode, DaemonStatus, Encoding, ErrorCode, ErrorReply, ForecastRequest, Health,
    KeySpace, Message, MsgsError, RobotId, RobotState,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zenoh::pubsub::Publisher;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::Query;
use zenoh::sample::Sample;

use crate::binding::Binding;
use crate::config::{RuntimeConfig, UnknownRobots};
use crate::counters::Counters;
use crate::engine::StreamOutput;
use crate::error::StateError;
use crate::fleet::Fleet;
use crate::model::RobotModel;
use crate::reply_encoding::ReplyEncodings;
use crate::ros2::Ros2Bridge;
use crate::{transport, RuntimeError};

/// Queries waiting for the daemon's loop; more are dropped (counted).
const QUERY_BACKLOG: usize = 1024;
/// Error replies to refused states waiting to be published.
const ERROR_BACKLOG: usize = 1024;

/// Loads every configured model and serves until `shutdown` resolves.
pub async fn run(
    cfg: RuntimeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    cfg.validate()?;
    let device = ebm_core::device::select(&cfg.device)?;
    let bindings = Binding::load_all(&cfg, &device)?;
    serve(cfg, bindings, shutdown).await
}

fn zenoh_encoding(e: Encoding) -> zenoh::bytes::Encoding {
    zenoh::bytes::Encoding::from(e.mime())
}

/// Serves `model` to every robot (OOD models and denoiser from the
/// config's defaults) until `shutdown` resolves.
pub async fn run_with_model(
    cfg: RuntimeConfig,
    model: RobotModel,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let binding = Binding::everyone(&cfg, model);
    serve(cfg, vec![binding], shutdown).await
}

/// Serves `bindings` (in matching order) until `shutdown` resolves.
pub async fn serve(
    cfg: RuntimeConfig,
    bindings: Vec<Binding>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    cfg.validate()?;
    let keys = KeySpace::new(&cfg.key_prefix)?;
    let daemon_id = RobotId::new(cfg.daemon_id.as_str())?;
    let counters = Arc::new(Counters::default());
    let (out_tx, out_rx) = mpsc::channel(cfg.engine.output_queue);
    let fleet = Arc::new(Fleet::start(bindings, &cfg, &counters, &out_tx)?);
    drop(out_tx); // the engines hold theirs: the channel closes when they stop
    let warnings = fleet.warnings();
    for w in &warnings {
        warn!("{w}");
    }

    let session = transport::open(&cfg.zenoh).await?;
    let listen = listening(&keys, &fleet, cfg.unknown_robots);
    let (err_tx, err_rx) = mpsc::channel::<StateError>(ERROR_BACKLOG);
    let encodings = ReplyEncodings::default();
    let mut subscribers = Vec::new();
    for (state_key, _, owner) in &listen {
        let (fleet, keys, err_tx) = (Arc::clone(&fleet), keys.clone(), err_tx.clone());
        let (counters, owner, encodings) = (Arc::clone(&counters), *owner, encodings.clone());
        subscribers.push(
            session
                .declare_subscriber(state_key.clone())
                .callback(move |sample| {
                    let ctx = Ingest {
                        fleet: &fleet,
                        keys: &keys,
                        c: &counters,
                        errors: &err_tx,
                        encodings: &encodings,
                        owner,
                    };
                    ingest(&ctx, &sample)
                })
                .await
                .map_err(RuntimeError::zenoh("declaring a state subscriber"))?,
        );
    }
    let bridge =
        Arc::new(Ros2Bridge::start(&cfg.ros2, &session, &fleet, &counters, &err_tx).await?);
    drop(err_tx);
    let (query_tx, mut query_rx) = mpsc::channel::<(Option<usize>, Query)>(QUERY_BACKLOG);
    let mut queryables = Vec::new();
    for (_, query_key, owner) in &listen {
        let (tx, counters, owner) = (query_tx.clone(), Arc::clone(&counters), *owner);
        queryables.push(
            session
                .declare_queryable(query_key.clone())
                .callback(move |q| {
                    if tx.try_send((owner, q)).is_err() {
                        Counters::inc(&counters.queries_dropped);
                    }
                })
                .await
                .map_err(RuntimeError::zenoh("declaring a forecast queryable"))?,
        );
    }
    drop(query_tx);
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
        encodings,
        out_rx,
        Arc::clone(&counters),
        Arc::clone(&bridge),
    ));
    let error_publisher = tokio::spawn(publish_errors(
        session.clone(),
        keys.clone(),
        err_rx,
        Arc::clone(&counters),
    ));
    for m in fleet.status() {
        info!(robots = %m.robots_pattern, model = %m.model_id, ood = %m.ood_model_id, "serving");
    }
    let state_keys: Vec<&str> = listen.iter().map(|(k, _, _)| k.as_str()).collect();
    info!(states = ?state_keys, "listening");

    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(cfg.status.period_ms));
    // Why the daemon stops when it is not asked to: a failure, exit non-zero.
    let mut failure: Option<String> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                let dead = fleet.dead();
                let health = if !dead.is_empty() {
                    failure = Some(format!("the inference thread of robots `{}` died", dead.join("`, `")));
                    Health::Failing
                } else if warnings.is_empty() {
                    Health::Ok
                } else {
                    Health::Degraded
                };
                let status = DaemonStatus {
                    daemon_id: daemon_id.to_string(),
                    health,
                    models: fleet.status(),
                    warnings: warnings.iter().cloned().chain(failure.clone()).collect(),
                    uptime_ms: started.elapsed().as_millis() as u64,
                    robots: fleet.robots() as u32,
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
                if failure.is_some() {
                    break;
                }
            }
            q = query_rx.recv() => match q {
                Some((owner, query)) => answer(&fleet, &keys, &counters, owner, query),
                None => {
                    failure = Some("the forecast queryables closed".into());
                    break;
                }
            },
        }
    }

    info!("shutting down");
    for s in subscribers {
        let _ = s.undeclare().await;
    }
    for q in queryables {
        let _ = q.undeclare().await;
    }
    let _ = token.undeclare().await;
    let _ = status_pub.undeclare().await;
    {
        let fleet = Arc::clone(&fleet);
        let _ = tokio::task::spawn_blocking(move || fleet.stop()).await;
    }
    drop(fleet); // closes the output channel once the threads are gone
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
    // The subscribers (the error senders) are gone: what is queued goes out.
    let _ = tokio::time::timeout(Duration::from_secs(2), error_publisher).await;
    session
        .close()
        .await
        .map_err(RuntimeError::zenoh("closing the session"))?;
    match failure {
        Some(why) => {
            tracing::error!("stopped: {why}");
            Err(RuntimeError::Model(why))
        }
        None => {
            info!("stopped");
            Ok(())
        }
    }
}

/// What to listen on: (state key, query key, owner) triples. With
/// `unknown_robots = "reply"`, or a pattern that matches everyone, every
/// robot's keys and no owner; else one pair per served pattern, owned by its
/// binding, which takes only the robots it is the first match for
/// (overlapping patterns deliver a sample to each of their subscribers).
fn listening(
    keys: &KeySpace,
    fleet: &Fleet,
    unknown: UnknownRobots,
) -> Vec<(String, String, Option<usize>)> {
    let patterns = fleet.patterns();
    if unknown == UnknownRobots::Reply || patterns.iter().any(|p| p.as_str() == "*") {
        return vec![(keys.all_states(), keys.all_forecast_queries(), None)];
    }
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| (keys.states_of(p), keys.forecast_queries_of(p), Some(i)))
        .collect()
}

/// The binding serving `robot` (`Some(None)`: none), or `None` when the
/// sample arrived on `owner`'s key but an earlier pattern serves the robot
/// (overlapping patterns deliver it to each of their subscribers).
fn route(fleet: &Fleet, robot: &RobotId, owner: Option<usize>) -> Option<Option<usize>> {
    let served = fleet.route_index(robot);
    (owner.is_none() || served == owner).then_some(served)
}

/// What a state subscriber needs.
struct Ingest<'a> {
    fleet: &'a Fleet,
    keys: &'a KeySpace,
    c: &'a Counters,
    errors: &'a mpsc::Sender<StateError>,
    encodings: &'a ReplyEncodings,
    /// The binding this subscriber serves (`None`: every binding).
    owner: Option<usize>,
}

/// Decodes one state sample and hands it to the engine of the robot's
/// model, or counts the drop; a state refused for its robot (unknown, wrong
/// size) is answered on the robot's error key.
fn ingest(ctx: &Ingest, sample: &Sample) {
    let Ingest {
        fleet,
        keys,
        c,
        errors,
        encodings,
        owner,
    } = *ctx;
    let Some(robot) = keys.robot_of(sample.key_expr().as_str(), "state") else {
        Counters::inc(&c.states_received);
        Counters::inc(&c.states_malformed);
        return;
    };
    let Some(served) = route(fleet, &robot, owner) else {
        return; // another binding's subscriber takes it
    };
    Counters::inc(&c.states_received);
    let encoding = match Encoding::from_mime(&sample.encoding().to_string()) {
        Ok(e) => e,
        Err(_) => {
            Counters::inc(&c.states_malformed);
            return;
        }
    };
    let refuse = |reply: ErrorReply| {
        if errors.try_send((robot.clone(), encoding, reply)).is_err() {
            Counters::inc(&c.state_errors_dropped);
        }
    };
    let Some(engine) = served.map(|i| fleet.engine(i)) else {
        Counters::inc(&c.states_unknown_robot);
        refuse(unknown_robot(&robot, fleet));
        return;
    };
    match decode::<RobotState>(&sample.payload().to_bytes(), encoding) {
        Ok(state) if state.robot_id == robot.as_str() => {
            encodings.remember(&robot, encoding);
            if let Err(e) = engine.submit_state(robot.clone(), state) {
                refuse(e);
            }
        }
        Ok(_) => Counters::inc(&c.states_malformed), // payload names another robot
        Err(MsgsError::NonFinite { .. }) => Counters::inc(&c.states_non_finite),
        Err(e @ MsgsError::DimensionOutOfBounds { .. }) => {
            Counters::inc(&c.states_wrong_dimensions);
            refuse(error_reply(ErrorCode::WrongDimensions, e.to_string()));
        }
        Err(e) => {
            debug!(robot = %robot, "malformed state: {e}");
            Counters::inc(&c.states_malformed);
        }
    }
}

/// `UnknownRobot`, naming the served patterns.
fn unknown_robot(robot: &RobotId, fleet: &Fleet) -> ErrorReply {
    let patterns: Vec<String> = fleet.patterns().iter().map(ToString::to_string).collect();
    error_reply(
        ErrorCode::UnknownRobot,
        format!(
            "robot {robot} matches no model this daemon serves (robot patterns: {})",
            patterns.join(", ")
        ),
    )
}

/// Publishes refused states' error replies on their robots' error keys.
async fn publish_errors(
    session: zenoh::Session,
    keys: KeySpace,
    mut rx: mpsc::Receiver<StateError>,
    c: Arc<Counters>,
) {
    while let Some((robot, enc, reply)) = rx.recv().await {
        let sent = match encode(&reply, enc) {
            Ok(bytes) => session
                .put(keys.error(&robot), bytes)
                .encoding(zenoh_encoding(enc))
                .congestion_control(CongestionControl::Drop)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if sent {
            Counters::inc(&c.state_errors_published);
        } else {
            Counters::inc(&c.publish_errors);
        }
    }
}

fn error_reply(code: ErrorCode, message: String) -> ErrorReply {
    ErrorReply { code, message }
}

/// Decodes a forecast query, queues it, and replies from a task when the
/// engine answers (so the daemon's loop never waits on inference).
fn answer(
    fleet: &Arc<Fleet>,
    keys: &KeySpace,
    counters: &Arc<Counters>,
    owner: Option<usize>,
    query: Query,
) {
    let robot = keys.robot_of(query.key_expr().as_str(), "forecast_query");
    let served = match &robot {
        Some(r) => match route(fleet, r, owner) {
            Some(served) => served,
            None => return, // another binding's queryable answers it
        },
        None => None,
    };
    let received = Instant::now();
    Counters::inc(&counters.queries_received);
    let encoding = query
        .encoding()
        .and_then(|e| Encoding::from_mime(&e.to_string()).ok())
        .unwrap_or(Encoding::Bincode);
    let request = match (robot, query.payload()) {
        (None, _) => Err(error_reply(
            ErrorCode::Malformed,
            format!("`{}` is not a forecast query key", query.key_expr()),
        )),
        (Some(_), None) => Err(error_reply(
            ErrorCode::Malformed,
            "the query has no payload (a ForecastRequest)".into(),
        )),
        (Some(robot), Some(p)) => match decode::<ForecastRequest>(&p.to_bytes(), encoding) {
            Ok(r) if r.robot_id == robot.as_str() => Ok((robot, r)),
            Ok(r) => Err(error_reply(
                ErrorCode::Malformed,
                format!("request for robot {} on the key of {robot}", r.robot_id),
            )),
            Err(e) => Err(error_reply(ErrorCode::Malformed, format!("{e}"))),
        },
    };
    let pending = request.and_then(|(robot, req)| match served {
        Some(i) => fleet.engine(i).submit_query(req, encoding, received),
        None => Err(unknown_robot(&robot, fleet)),
    });
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
    encodings: ReplyEncodings,
    mut rx: mpsc::Receiver<StreamOutput>,
    c: Arc<Counters>,
    ros2: Arc<Ros2Bridge>,
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
        let enc = encodings.of(&out.robot);
        if let Some(forecast) = &out.forecast {
            if put(&p.forecast, forecast, enc, &c).await {
                Counters::inc(&c.forecasts_published);
            }
        }
        if let Some(ood) = &out.ood {
            if put(&p.ood, ood, enc, &c).await {
                Counters::inc(&c.ood_published);
            }
        }
        if let Some(denoised) = &out.denoised {
            if put(&p.denoised, denoised, enc, &c).await {
                Counters::inc(&c.denoised_published);
            }
        }
        ros2.publish(&out, &c).await;
    }
}
