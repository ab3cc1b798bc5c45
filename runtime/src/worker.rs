//! The engine's inference thread: takes work from the inbox (due robots,
//! batched, and queries, sharing the thread by `query.max_share`), runs forecasts, OOD scores and denoising, and
//! hands results to the publisher; errors and panics are counted and it keeps
//! serving. See [`crate::engine`] for the inbox it drains.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebm_core::Rng;
use ebm_msgs::{DenoisedState, ErrorCode, ErrorReply, Forecast, OodScore, RobotId};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::config::{DenoiseConfig, RuntimeConfig};
use crate::counters::Counters;
use crate::engine::{last_rows, padded, QueryJob, Shared, StreamJob, StreamOutput};
use crate::infer::{self, ForecastOut};
use crate::model::ModelBundle;
use crate::ood_score::{OodScorer, OodValue};
use crate::query_share::QueryShare;
use crate::RuntimeError;

/// A robot's latest states when its query is taken up.
struct QueryContext {
    context: Vec<Vec<f32>>,
    action: Option<Vec<f32>>,
    /// Sequence number of the state forecast from.
    seq: u64,
}

enum Work {
    /// A query; `contended`: streaming work was due when it was taken.
    Query {
        job: QueryJob,
        ctx: Option<QueryContext>,
        contended: bool,
    },
    Batch(Vec<StreamJob>),
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    /// Scores observed transitions (the OOD models, or the forecast model).
    ood: OodScorer,
    bundle: ModelBundle,
    denoise_cfg: DenoiseConfig,
    cfg: RuntimeConfig,
    rng: Rng,
    outputs: mpsc::Sender<StreamOutput>,
    /// Last denoised state per robot: (episode, seq, normalised state).
    denoised: HashMap<RobotId, (u64, u64, Vec<f32>)>,
    /// Energies seen, for online OOD percentiles when the checkpoint has none.
    calibration: Vec<f32>,
    /// Each robot's recent OOD scores in its episode (at most a window).
    ood_windows: HashMap<RobotId, VecDeque<OodValue>>,
    /// Queries' share of the thread while streaming work waits.
    share: QueryShare,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ood: OodScorer,
        bundle: ModelBundle,
        denoise_cfg: DenoiseConfig,
        cfg: &RuntimeConfig,
        outputs: mpsc::Sender<StreamOutput>,
    ) -> Self {
        Self {
            shared,
            ood,
            bundle,
            denoise_cfg,
            cfg: cfg.clone(),
            rng: Rng::new(cfg.seed),
            outputs,
            denoised: HashMap::new(),
            calibration: Vec::new(),
            ood_windows: HashMap::new(),
            share: QueryShare::new(cfg.query.max_share),
        }
    }

    pub(crate) fn run(mut self) {
        while let Some((work, forget)) = self.next_work() {
            // Robots whose slots were freed (or whose state was out of
            // range) start afresh.
            for id in &forget {
                self.denoised.remove(id);
                self.ood_windows.remove(id);
            }
            let c = Arc::clone(&self.shared.counters);
            let t0 = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| match work {
                Work::Query {
                    job,
                    ctx,
                    contended,
                } => {
                    let r = self.answer(job, ctx);
                    self.share.queried(t0.elapsed(), contended);
                    r
                }
                Work::Batch(jobs) => {
                    let r = self.serve(jobs);
                    self.share.streamed(t0.elapsed());
                    r
                }
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    Counters::inc(&c.inference_errors);
                    warn!("inference failed: {e:#}");
                }
                Err(_) => {
                    Counters::inc(&c.inference_errors);
                    error!("inference panicked; the engine keeps serving");
                }
            }
        }
    }

    /// Blocks until there is work or a stop: due robots (batched) and
    /// queries, shared by [`QueryShare`].
    /// Frees the slots of robots idle for `engine.robot_idle_s` on the way;
    /// returns the work and the robots freed since the last call.
    fn next_work(&self) -> Option<(Work, Vec<RobotId>)> {
        let period = Duration::from_secs_f64(1.0 / self.cfg.forecast.rate_hz);
        let idle = Duration::from_secs_f64(self.cfg.engine.robot_idle_s);
        let mut inbox = self.shared.lock();
        loop {
            if inbox.stop {
                return None;
            }
            let freed = inbox.evict_idle(Instant::now(), idle, usize::MAX);
            Counters::add(&self.shared.counters.robots_evicted, freed as u64);
            let now = Instant::now();
            let mut due: Vec<(Instant, RobotId)> = Vec::new();
            let mut next: Option<Instant> = None;
            for (id, slot) in &inbox.robots {
                if slot.pending.is_some() {
                    if slot.next_due <= now {
                        due.push((slot.next_due, id.clone()));
                    } else {
                        next = Some(next.map_or(slot.next_due, |n: Instant| n.min(slot.next_due)));
                    }
                }
            }
            let contended = !due.is_empty();
            if !contended || self.share.query_first() {
                if let Some(job) = inbox.queries.pop_front() {
                    let ctx = inbox.robots.get(&job.robot).and_then(|s| {
                        let last = s.history.back()?;
                        Some(QueryContext {
                            context: padded(&s.history, self.bundle.context_len())?,
                            action: last.last_action.clone(),
                            seq: last.seq,
                        })
                    });
                    let work = Work::Query {
                        job,
                        ctx,
                        contended,
                    };
                    return Some((work, std::mem::take(&mut inbox.forget)));
                }
            }
            if !due.is_empty() {
                due.sort(); // longest waiting first
                due.truncate(self.cfg.engine.max_batch);
                let mut jobs = Vec::with_capacity(due.len());
                for (_, id) in due {
                    if let Some(slot) = inbox.robots.get_mut(&id) {
                        if let Some(job) = slot.pending.take() {
                            slot.next_due = now + period;
                            jobs.push(job);
                        }
                    }
                }
                inbox.pending -= jobs.len();
                return Some((Work::Batch(jobs), std::mem::take(&mut inbox.forget)));
            }
            // Wake at least every second (and every idle period) to free idle slots.
            let mut wait =
                next.map_or(Duration::from_secs(1), |n| n.saturating_duration_since(now));
            if !idle.is_zero() {
                wait = wait.min(idle);
            }
            inbox = match self.shared.wake.wait_timeout(inbox, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn conds(&self, states: &[Vec<f32>], action: Option<&[f32]>) -> Vec<f32> {
        crate::model::conds_for(&self.bundle, states, action)
    }

    fn forecast_msg(
        &self,
        robot: &RobotId,
        seq: u64,
        f: ForecastOut,
        h: usize,
        p: usize,
        us: u64,
    ) -> Forecast {
        Forecast {
            robot_id: robot.to_string(),
            seq,
            model_id: self.bundle.model_id.clone(),
            horizon: h as u32,
            particles: p as u32,
            trajectories: f.trajectories,
            energies: f.energies,
            mean: f.mean,
            spread: f.spread,
            compute_us: us,
            langevin_steps: f.langevin_steps,
        }
    }

    fn answer(&mut self, job: QueryJob, ctx: Option<QueryContext>) -> Result<(), RuntimeError> {
        let c = Arc::clone(&self.shared.counters);
        let Some(QueryContext {
            context,
            action,
            seq,
        }) = ctx
        else {
            Counters::inc(&c.queries_refused);
            let _ = job.reply.send(Err(ErrorReply {
                code: ErrorCode::UnknownRobot,
                message: format!("no state received from robot {}", job.robot),
            }));
            return Ok(());
        };
        let t0 = Instant::now();
        // Keep a little of the budget for encoding and the reply.
        let deadline = job.req.deadline_ms.map(|ms| {
            let budget = Duration::from_millis(ms);
            job.received + budget - (budget / 10).min(Duration::from_millis(5))
        });
        let mut rc = self.cfg.forecast.rollout();
        rc.horizon = job.req.horizon as usize;
        rc.particles = job.req.particles as usize;
        let row: Vec<f32> = context
            .iter()
            .flat_map(|s| self.bundle.normalize_state(s))
            .collect();
        let act = self.bundle.normalize_action(action.as_deref());
        let result = infer::forecast(&self.bundle, &[row], &[act], &rc, &mut self.rng, deadline);
        let reply = match result {
            Ok(mut v) if !v.is_empty() => {
                let f = v.swap_remove(0);
                let us = t0.elapsed().as_micros() as u64;
                let msg = self.forecast_msg(&job.robot, seq, f, rc.horizon, rc.particles, us);
                Counters::inc(&c.queries_answered);
                if job
                    .req
                    .deadline_ms
                    .is_some_and(|ms| job.received.elapsed() > Duration::from_millis(ms))
                {
                    Counters::inc(&c.queries_late);
                }
                Ok(msg)
            }
            Ok(_) => Err(ErrorReply {
                code: ErrorCode::Internal,
                message: "empty forecast".into(),
            }),
            Err(e) => {
                Counters::inc(&c.inference_errors);
                Err(ErrorReply {
                    code: ErrorCode::Internal,
                    message: format!("inference failed: {e}"),
                })
            }
        };
        if reply.is_err() {
            Counters::inc(&c.queries_refused);
        }
        let _ = job.reply.send(reply); // the asker may have gone
        Ok(())
    }

    fn serve(&mut self, jobs: Vec<StreamJob>) -> Result<(), RuntimeError> {
        let c = Arc::clone(&self.shared.counters);
        let n = jobs.len();
        Counters::inc(&c.batches);
        Counters::add(&c.batched_robots, n as u64);
        Counters::max(&c.batch_max, n as u64);
        let b = &self.bundle;
        let contexts: Vec<Vec<f32>> = jobs
            .iter()
            .map(|j| {
                last_rows(&j.context, b.context_len())
                    .iter()
                    .flat_map(|s| b.normalize_state(s))
                    .collect()
            })
            .collect();
        let actions: Vec<Vec<f32>> = jobs
            .iter()
            .map(|j| b.normalize_action(j.state.last_action.as_deref()))
            .collect();
        let rc = self.cfg.forecast.rollout();
        let deadline = (self.cfg.forecast.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(self.cfg.forecast.deadline_ms));
        let t0 = Instant::now();
        let forecasts = infer::forecast(b, &contexts, &actions, &rc, &mut self.rng, deadline)?;
        let forecast_us = t0.elapsed().as_micros() as u64;

        // OOD: observed transitions into each state.
        let obs: Vec<Vec<f32>> = jobs
            .iter()
            .map(|j| b.normalize_state(&j.state.state))
            .collect();
        let with_prev: Vec<usize> = (0..n).filter(|&i| jobs[i].previous.is_some()).collect();
        let scores = self.ood.score(with_prev.len(), |ob| {
            let conds = with_prev
                .iter()
                .filter_map(|&i| {
                    let j = &jobs[i];
                    Some(crate::model::conds_for(
                        ob,
                        last_rows(j.previous.as_ref()?, ob.context_len()),
                        j.state.last_action.as_deref(),
                    ))
                })
                .collect();
            let next = with_prev
                .iter()
                .map(|&i| ob.normalize_state(&jobs[i].state.state))
                .collect();
            (conds, next)
        })?;

        // Denoising: the prior is the previous denoised state when it is the
        // immediate predecessor, else the previous observation, else the
        // observation itself (first state of an episode).
        let priors: Vec<Vec<f32>> = jobs
            .iter()
            .map(|j| {
                let ctx = last_rows(j.previous.as_ref().unwrap_or(&j.context), b.context_len());
                let mut row = self.conds(ctx, j.state.last_action.as_deref());
                if let Some((ep, seq, x)) = self.denoised.get(&j.robot) {
                    if *ep == j.state.episode && *seq + 1 == j.state.seq && j.previous.is_some() {
                        let (k, d) = (b.context_len(), b.state_dim());
                        row[(k - 1) * d..k * d].copy_from_slice(x);
                    }
                }
                row
            })
            .collect();
        let denoised = infer::denoise(b, &priors, &obs, &self.denoise_cfg, &mut self.rng)?;

        let mut ood_iter = with_prev.iter().zip(scores);
        let mut next_ood = ood_iter.next();
        for (i, ((job, f), x)) in jobs.into_iter().zip(forecasts).zip(denoised).enumerate() {
            let ood = match next_ood {
                Some((&idx, e)) if idx == i => {
                    next_ood = ood_iter.next();
                    Some(self.ood_msg(&job, e))
                }
                _ => {
                    // No transition into this state: a new episode (or a gap)
                    // starts a new window.
                    self.ood_windows.remove(&job.robot);
                    Counters::inc(&c.ood_skipped);
                    None
                }
            };
            let seq = job.state.seq;
            let forecast =
                self.forecast_msg(&job.robot, seq, f, rc.horizon, rc.particles, forecast_us);
            let denoised_msg = DenoisedState {
                robot_id: job.robot.to_string(),
                seq,
                model_id: self.bundle.model_id.clone(),
                state: self.bundle.denormalize_state(&x),
            };
            // A non-finite estimate is never the next prior.
            if x.iter().all(|v| v.is_finite()) {
                self.denoised
                    .insert(job.robot.clone(), (job.state.episode, seq, x));
            } else {
                self.denoised.remove(&job.robot);
            }
            Counters::inc(&c.states_processed);
            let out = StreamOutput {
                robot: job.robot,
                encoding: job.encoding,
                forecast: Some(forecast),
                ood,
                denoised: Some(denoised_msg),
            };
            if self.outputs.try_send(out).is_err() {
                Counters::inc(&c.outputs_dropped);
            }
        }
        Ok(())
    }

    fn ood_msg(&mut self, job: &StreamJob, score: OodValue) -> OodScore {
        let c = &self.shared.counters;
        let energy = score.energy;
        // Fail closed: an energy too large to represent is the most unusual
        // transition there is, published as such with the reason.
        let reason = (!energy.is_finite()).then(|| {
            "the transition's energy is not finite: far outside the model's training data"
                .to_owned()
        });
        let (percentile, trusted) = match score.percentile {
            Some(p) => (p, true),
            None => {
                let cap = self.cfg.ood.online_calibration;
                let cal = &mut self.calibration;
                let p = if cal.is_empty() {
                    50.0
                } else {
                    let below = cal.partition_point(|&v| v < energy);
                    let upto = cal.partition_point(|&v| v <= energy);
                    100.0 * (below + upto) as f32 / (2 * cal.len()) as f32
                };
                if cal.len() < cap && energy.is_finite() {
                    let at = cal.partition_point(|&v| v < energy);
                    cal.insert(at, energy);
                }
                (p, cal.len() >= cap)
            }
        };
        let percentile = if percentile.is_finite() && reason.is_none() {
            percentile
        } else {
            100.0
        };
        let flag_at = self.cfg.ood.flag_percentile;
        let flagged = reason.is_some() || (trusted && f64::from(percentile) >= flag_at);
        if flagged {
            Counters::inc(&c.ood_flagged);
        }
        let w = self.ood.window_len();
        let recent = self.ood_windows.entry(job.robot.clone()).or_default();
        recent.push_back(score);
        while recent.len() > w {
            recent.pop_front();
        }
        let window = self.ood.window(recent.make_contiguous());
        let window_flagged = window.percentile.is_some_and(|p| f64::from(p) >= flag_at);
        if window_flagged {
            Counters::inc(&c.ood_window_flagged);
        }
        OodScore {
            robot_id: job.robot.to_string(),
            seq: job.state.seq,
            model_id: self.ood.model_id().to_owned(),
            energy: if energy.is_finite() { energy } else { f32::MAX },
            percentile,
            flagged,
            window_energy: if window.energy.is_finite() {
                window.energy
            } else {
                f32::MAX
            },
            window_len: window.len as u32,
            window_discrepancy: window
                .discrepancy
                .map(|d| if d.is_finite() { d } else { f32::MAX }),
            window_percentile: window.percentile,
            window_flagged,
            reason,
        }
    }
}
