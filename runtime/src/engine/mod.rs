//! The inference engine: one dedicated thread that owns the model, fed
//! through a bounded inbox, never run on tokio workers.
//!
//! - **States**: each robot has one pending slot; a newer state replaces a
//!   pending one (latest wins, counted as superseded), so the inbox holds at
//!   most one state per robot, at most `engine.max_robots` robots, whatever
//!   the input rate. A robot is served at most `forecast.rate_hz` times a
//!   second; due robots are batched (up to `engine.max_batch`) into one
//!   rollout.
//! - **Queries**: a bounded FIFO (`query.queue`); while robots' forecasts
//!   are due, queries get at most `query.max_share` of the thread's time
//!   (`query_share`), so a client flooding queries cannot starve the
//!   robots; a full queue refuses with `Overloaded`. A query with a deadline gets the
//!   best forecast reachable by then (adaptive computation time).
//! - Results go to the publisher through a bounded channel; when it is full
//!   they are dropped and counted. Errors and panics in inference are counted
//!   and the thread keeps serving.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ebm_msgs::{Encoding, ErrorCode, ErrorReply, ForecastRequest, OodScore, RobotId, RobotState};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

pub mod inbox;
mod query_share;
mod warm_start;
mod worker;

use inbox::{padded, Inbox, QueryJob, Shared, Slot, StreamJob};
pub use inbox::{QueryReply, StreamOutput};
use worker::Worker;

use crate::binding::Binding;
use crate::config::RuntimeConfig;
use crate::counters::Counters;
use crate::model::StateRange;
use crate::ood::OodMonitor;
use crate::RuntimeError;

/// Limits the submitting side checks.
#[derive(Debug, Clone)]
struct Limits {
    /// A robot silent this long gives its slot back (zero: never).
    robot_idle: Duration,
    /// The served robot's state size, and the action size the model takes.
    state_dim: usize,
    action_dim: usize,
    k: usize,
    max_robots: usize,
    max_horizon: usize,
    max_particles: usize,
    queue: usize,
}

/// Handle to the inference thread; stops it on drop.
pub struct Engine {
    shared: Arc<Shared>,
    limits: Limits,
    /// The forecast model's training range, for failing closed on states
    /// outside it.
    range: StateRange,
    ood_model_id: String,
    outputs: mpsc::Sender<StreamOutput>,
    /// Every OOD model has stored training percentiles.
    ood_calibrated: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// An upper bound of a forecast's encoded size: `(P H + 2 H) D + P` floats
/// at 4 bytes each in bincode, 18 in JSON (its longest f32 and a comma).
pub fn forecast_bytes(horizon: usize, particles: usize, state_dim: usize, enc: Encoding) -> usize {
    let floats = (particles * horizon + 2 * horizon) * state_dim + particles;
    let per_float = match enc {
        Encoding::Bincode => 4,
        Encoding::Json => 18,
    };
    floats.saturating_mul(per_float).saturating_add(1024)
}

impl Engine {
    /// Starts the inference thread on `binding`'s model; results go to `outputs`.
    pub fn start(
        binding: Binding,
        cfg: &RuntimeConfig,
        counters: Arc<Counters>,
        outputs: mpsc::Sender<StreamOutput>,
    ) -> Result<Self, RuntimeError> {
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            wake: Condvar::new(),
            counters,
        });
        let Binding {
            model,
            ood,
            denoise,
            warm,
            ..
        } = binding;
        let ood_calibrated = ood.calibrated();
        let limits = Limits {
            robot_idle: Duration::from_secs_f64(cfg.engine.robot_idle_s),
            state_dim: model.state_dim(),
            // The action size any of its models takes (they agree: see
            // `load_ood_scorer`); 0 when none is conditional.
            action_dim: ood
                .experts()
                .iter()
                .map(|e| e.model.action_dim())
                .chain([model.action_dim()])
                .max()
                .unwrap_or(0),
            // Robots' histories serve the forecast model and every OOD model.
            k: model.context_len().max(ood.context_len()),
            max_robots: cfg.engine.max_robots,
            max_horizon: cfg.query.max_horizon,
            max_particles: cfg.query.max_particles,
            queue: cfg.query.queue,
        };
        let range = model.state_range(cfg.ood.max_sigma);
        let ood_model_id = ood.model_id().to_owned();
        let worker = Worker::new(
            Arc::clone(&shared),
            OodMonitor::new(ood, &cfg.ood),
            model,
            denoise,
            warm,
            cfg,
            outputs.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("ebm-inference".into())
            .spawn(move || worker.run())
            .map_err(RuntimeError::Thread)?;
        Ok(Self {
            shared,
            limits,
            range,
            ood_model_id,
            outputs,
            ood_calibrated,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// True when OOD percentiles come from the checkpoints (else online).
    pub fn ood_calibrated(&self) -> bool {
        self.ood_calibrated
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    /// Robots seen so far.
    pub fn robots(&self) -> usize {
        self.shared.lock().robots.len()
    }

    /// Their ids, sorted.
    pub fn robot_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shared
            .lock()
            .robots
            .keys()
            .map(ToString::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// The state's sizes against the models': `WrongDimensions` naming the
    /// expected and received sizes. Actions are checked when a model (the
    /// forecast model or an OOD model) takes them.
    fn check_dimensions(&self, state: &RobotState) -> Result<(), ErrorReply> {
        let l = &self.limits;
        let wrong = |what: &str, expected: usize, found: usize| ErrorReply {
            code: ErrorCode::WrongDimensions,
            message: format!(
                "robot {}: {what} has {found} floats, but its model expects {expected}",
                state.robot_id
            ),
        };
        if state.state.len() != l.state_dim {
            return Err(wrong("state", l.state_dim, state.state.len()));
        }
        match &state.last_action {
            Some(a) if l.action_dim > 0 && a.len() != l.action_dim => {
                Err(wrong("last_action", l.action_dim, a.len()))
            }
            _ => Ok(()),
        }
    }

    /// Takes a decoded, validated state (never blocks on inference); a state
    /// of the wrong size is refused, counted, and nothing else changes.
    pub fn submit_state(&self, robot: RobotId, state: RobotState) -> Result<(), ErrorReply> {
        let c = &self.shared.counters;
        if let Err(e) = self.check_dimensions(&state) {
            Counters::inc(&c.states_wrong_dimensions);
            return Err(e);
        }
        if let Some(reason) = self.range.check(&state.state) {
            self.fail_closed(robot, state, reason);
            return Ok(());
        }
        let k = self.limits.k;
        let now = Instant::now();
        let mut inbox = self.shared.lock();
        if !inbox.robots.contains_key(&robot) && inbox.robots.len() >= self.limits.max_robots {
            // Full: the longest idle robot (silent for robot_idle_s) makes room.
            let freed = inbox.evict_idle(now, self.limits.robot_idle, 1);
            Counters::add(&c.robots_evicted, freed as u64);
            if freed == 0 {
                Counters::inc(&c.states_too_many_robots);
                return Ok(());
            }
        }
        let slot = inbox.robots.entry(robot.clone()).or_insert_with(|| Slot {
            history: VecDeque::with_capacity(k + 1),
            pending: None,
            next_due: now,
            last_seen: now,
        });
        slot.last_seen = now;
        let mut restarted = false;
        if let Some(last) = slot.history.back() {
            let same_episode = last.episode == state.episode;
            if same_episode && state.seq <= last.seq && state.seq != 0 {
                Counters::inc(&c.states_out_of_order);
                return Ok(());
            }
            // Sequence 0 again in the same episode: the robot restarted
            // without a new episode number; it starts afresh instead of
            // being refused until its sequence passes the old one.
            restarted = same_episode && state.seq <= last.seq;
            if !same_episode || state.seq != last.seq + 1 {
                slot.history.clear(); // a new episode, a gap or a restart: no transition
            }
        }
        let previous = padded(&slot.history, k);
        slot.history.push_back(state.clone());
        while slot.history.len() > k {
            slot.history.pop_front();
        }
        let context = padded(&slot.history, k).unwrap_or_default();
        let job_robot = robot.clone();
        let job = StreamJob {
            robot,
            state,
            context,
            previous,
        };
        let replaced = slot.pending.replace(job).is_some();
        if restarted {
            Counters::inc(&c.robots_restarted);
            inbox.forget.push(job_robot);
        }
        if replaced {
            Counters::inc(&c.states_superseded);
        } else {
            inbox.pending += 1;
            Counters::max(&c.pending_max, inbox.pending as u64);
        }
        drop(inbox);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// A state outside the model's range: a flagged OOD score at the 100th
    /// percentile with the reason, no forecast or denoised state; the robot's
    /// history, denoiser prior and OOD window restart from its next state.
    fn fail_closed(&self, robot: RobotId, state: RobotState, reason: String) {
        let c = &self.shared.counters;
        Counters::inc(&c.states_out_of_range);
        {
            let mut inbox = self.shared.lock();
            if let Some(slot) = inbox.robots.get_mut(&robot) {
                slot.history.clear();
            }
            // Once is enough: a flood of such states must not grow the list.
            if !inbox.forget.contains(&robot) {
                inbox.forget.push(robot.clone());
            }
        }
        let score = OodScore {
            robot_id: robot.to_string(),
            seq: state.seq,
            model_id: self.ood_model_id.clone(),
            energy: f32::MAX,
            percentile: 100.0,
            flagged: true,
            window_energy: f32::MAX,
            window_len: 0,
            window_discrepancy: None,
            window_percentile: Some(100.0),
            window_flagged: true,
            reason: Some(reason),
        };
        Counters::inc(&c.ood_flagged);
        let out = StreamOutput {
            robot,
            forecast: None,
            ood: Some(score),
            denoised: None,
        };
        if self.outputs.try_send(out).is_err() {
            Counters::inc(&c.outputs_dropped);
        }
    }

    /// Queues a forecast query; the answer arrives on the returned channel.
    /// A query whose forecast could not be encoded in `encoding` (over the
    /// message size limit) is refused before any inference.
    pub fn submit_query(
        &self,
        req: ForecastRequest,
        encoding: Encoding,
        received: Instant,
    ) -> Result<oneshot::Receiver<QueryReply>, ErrorReply> {
        let l = &self.limits;
        let refuse = |code, message: String| Err(ErrorReply { code, message });
        let robot = match RobotId::new(req.robot_id.as_str()) {
            Ok(r) => r,
            Err(e) => return refuse(ErrorCode::Malformed, e.to_string()),
        };
        if !(1..=l.max_horizon).contains(&(req.horizon as usize))
            || !(1..=l.max_particles).contains(&(req.particles as usize))
        {
            return refuse(
                ErrorCode::WrongDimensions,
                format!(
                    "horizon must be in 1..={} and particles in 1..={}, got {} and {}",
                    l.max_horizon, l.max_particles, req.horizon, req.particles
                ),
            );
        }
        let (h, p, d) = (req.horizon as usize, req.particles as usize, l.state_dim);
        if forecast_bytes(h, p, d, encoding) > ebm_msgs::MAX_MESSAGE_BYTES {
            return refuse(
                ErrorCode::WrongDimensions,
                format!(
                    "a forecast of {p} particles x {h} steps x {d} floats would exceed the {} byte message limit in {encoding:?}; ask for fewer",
                    ebm_msgs::MAX_MESSAGE_BYTES
                ),
            );
        }
        let mut inbox = self.shared.lock();
        if inbox
            .robots
            .get(&robot)
            .is_none_or(|s| s.history.is_empty())
        {
            return refuse(
                ErrorCode::UnknownRobot,
                format!("no state received from robot {robot}"),
            );
        }
        if inbox.queries.len() >= l.queue {
            Counters::inc(&self.shared.counters.queries_overloaded);
            return refuse(
                ErrorCode::Overloaded,
                format!("{} queries already queued", inbox.queries.len()),
            );
        }
        let (tx, rx) = oneshot::channel();
        inbox.queries.push_back(QueryJob {
            req,
            robot,
            received,
            reply: tx,
        });
        drop(inbox);
        self.shared.wake.notify_one();
        Ok(rx)
    }

    /// False once the inference thread has ended (stopped, or died).
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread after its current job and waits for it.
    pub fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                error!("the inference thread panicked outside a job");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}
