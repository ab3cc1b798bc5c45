//! The engine's inbox: one slot per robot (its recent states, at most one
//! pending state: latest wins) and the bounded query queue, shared by the
//! submitting side and the inference thread under one lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ebm_msgs::{
    DenoisedState, ErrorReply, Forecast, ForecastRequest, OodScore, RobotId, RobotState,
};
use tokio::sync::oneshot;

use crate::counters::Counters;

/// What the engine produces for one processed state.
#[derive(Debug, Clone)]
pub struct StreamOutput {
    pub robot: RobotId,
    /// `None` for a state outside the model's range (fail closed: its OOD
    /// score is flagged with the reason).
    pub forecast: Option<Forecast>,
    /// `None` for the first state of an episode or after a gap.
    pub ood: Option<OodScore>,
    pub denoised: Option<DenoisedState>,
}

pub type QueryReply = Result<Forecast, ErrorReply>;

pub(crate) struct StreamJob {
    pub(crate) robot: RobotId,
    pub(crate) state: RobotState,
    /// The `k` states ending at `state` (oldest first, padded at episode
    /// start), `k` the longest context of the forecast and OOD models; each
    /// model reads its own last rows.
    pub(crate) context: Vec<Vec<f32>>,
    /// The `k` states before `state`, when its predecessor was received.
    pub(crate) previous: Option<Vec<Vec<f32>>>,
}

pub(crate) struct QueryJob {
    pub(crate) req: ForecastRequest,
    pub(crate) robot: RobotId,
    pub(crate) received: Instant,
    pub(crate) reply: oneshot::Sender<QueryReply>,
}

pub(crate) struct Slot {
    /// Last `k` states of the current episode, consecutive, newest last.
    pub(crate) history: VecDeque<RobotState>,
    pub(crate) pending: Option<StreamJob>,
    pub(crate) next_due: Instant,
    /// When the robot's last state arrived.
    pub(crate) last_seen: Instant,
}

#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) robots: HashMap<RobotId, Slot>,
    pub(crate) queries: VecDeque<QueryJob>,
    pub(crate) pending: usize,
    pub(crate) stop: bool,
    /// Robots whose per-robot state the worker must drop (their slots were
    /// freed, or a state outside the model's range restarts them).
    pub(crate) forget: Vec<RobotId>,
}

impl Inbox {
    /// Frees the slots of robots idle for `idle` or longer that have no
    /// state waiting (longest idle first), at most `limit`; the ids go to
    /// `forget`. Returns how many were freed.
    pub(crate) fn evict_idle(&mut self, now: Instant, idle: Duration, limit: usize) -> usize {
        if idle.is_zero() {
            return 0;
        }
        let mut idle_robots: Vec<(Instant, RobotId)> = self
            .robots
            .iter()
            .filter(|(_, s)| {
                s.pending.is_none() && now.saturating_duration_since(s.last_seen) >= idle
            })
            .map(|(id, s)| (s.last_seen, id.clone()))
            .collect();
        idle_robots.sort();
        idle_robots.truncate(limit);
        for (_, id) in &idle_robots {
            self.robots.remove(id);
        }
        let n = idle_robots.len();
        self.forget
            .extend(idle_robots.into_iter().map(|(_, id)| id));
        n
    }
}

pub(crate) struct Shared {
    pub(crate) inbox: Mutex<Inbox>,
    pub(crate) wake: Condvar,
    pub(crate) counters: Arc<Counters>,
}

impl Shared {
    /// The inbox, even if a thread panicked while holding it (its data stays
    /// consistent: every update is a single insert or take).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last `k` states (oldest first), the oldest repeated when fewer exist.
pub(crate) fn padded(states: &VecDeque<RobotState>, k: usize) -> Option<Vec<Vec<f32>>> {
    let n = states.len();
    if n == 0 {
        return None;
    }
    let first = &states[0].state;
    let mut rows: Vec<Vec<f32>> = states.iter().take(n).map(|s| s.state.clone()).collect();
    while rows.len() < k {
        rows.insert(0, first.clone());
    }
    Some(rows.split_off(rows.len() - k))
}
