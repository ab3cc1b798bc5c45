//! The engine's inference thread: takes work from the inbox (due robots,
//! batched, and queries, sharing the thread by `query.max_share`), runs forecasts, OOD scores and denoising, and
//! hands results to the publisher; errors and panics are counted and it keeps
//! serving. See [`super::inbox`] for the inbox it drains. Robots' states go
//! to the model in their own units and come back in them; the OOD side
//! ([`OodMonitor`]) turns scores into messages.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebm_core::Rng;
use ebm_msgs::{DenoisedState, ErrorCode, ErrorReply, Forecast, OodScore, RobotId};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::inbox::{padded, QueryJob, Shared, StreamJob, StreamOutput};
use super::query_share::QueryShare;
use super::warm_start::PreviousForecast;
use crate::config::{DenoiseConfig, RuntimeConfig, WarmStartConfig};
use crate::counters::Counters;
use crate::model::{DenoiseInput, ForecastOut, RobotModel, Transition};
use crate::ood::OodMonitor;
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
    /// Scores observed transitions (the OOD models, or the forecast model)
    /// and keeps each robot's OOD window.
    ood: OodMonitor,
    model: RobotModel,
    denoise_cfg: DenoiseConfig,
    /// This model's warm starts.
    warm: WarmStartConfig,
    cfg: RuntimeConfig,
    rng: Rng,
    outputs: mpsc::Sender<StreamOutput>,
    /// Last denoised state per robot: (episode, seq, state).
    denoised: HashMap<RobotId, (u64, u64, Vec<f32>)>,
    /// Each robot's latest forecast, for warm starts.
    previous: HashMap<RobotId, PreviousForecast>,
    /// Queries' share of the thread while streaming work waits.
    share: QueryShare,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ood: OodMonitor,
        model: RobotModel,
        denoise_cfg: DenoiseConfig,
        warm: WarmStartConfig,
        cfg: &RuntimeConfig,
        outputs: mpsc::Sender<StreamOutput>,
    ) -> Self {
        Self {
            shared,
            ood,
            model,
            denoise_cfg,
            warm,
            cfg: cfg.clone(),
            rng: Rng::new(cfg.seed),
            outputs,
            denoised: HashMap::new(),
            previous: HashMap::new(),
            share: QueryShare::new(cfg.query.max_share),
        }
    }

    pub(crate) fn run(mut self) {
        while let Some((work, forget)) = self.next_work() {
            // Robots whose slots were freed (or whose state was out of
            // range) start afresh.
            for id in &forget {
                self.denoised.remove(id);
                self.previous.remove(id);
                self.ood.forget(id);
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
                            context: padded(&s.history, self.model.context_len())?,
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
            model_id: self.model.model_id.clone(),
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
        let result = self.model.forecast(
            &[&context],
            &[action.as_deref()],
            &rc,
            &mut self.rng,
            deadline,
        );
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

        // OOD first: a flagged transition starts its robot's forecast cold.
        let ood = self.ood_messages(&jobs)?;

        let m = &self.model;
        let rc = self.cfg.forecast.rollout();
        let (h, p) = (rc.horizon, rc.particles);
        let warm_steps = self.warm.warm_steps();
        let max_gap = self.warm.max_gap;
        let warm: Vec<Option<(Vec<f32>, usize)>> = jobs
            .iter()
            .zip(&ood)
            .map(|(j, o)| {
                let flagged = o.as_ref().is_some_and(|o| o.flagged || o.window_flagged);
                warm_steps
                    .and(self.previous.get(&j.robot))
                    .and_then(|prev| prev.warm_starts(&j.state, flagged, p, h, max_gap))
            })
            .collect();
        let deadline = (self.cfg.forecast.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(self.cfg.forecast.deadline_ms));
        let t0 = Instant::now();
        let forecasts = {
            // Cold and warm robots go as two batches.
            let (mut cold, mut hot): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
            for (i, w) in warm.iter().enumerate() {
                if w.is_some() {
                    hot.push(i)
                } else {
                    cold.push(i)
                }
            }
            let contexts = |ids: &[usize]| -> Vec<&[Vec<f32>]> {
                ids.iter().map(|&i| jobs[i].context.as_slice()).collect()
            };
            let actions = |ids: &[usize]| -> Vec<Option<&[f32]>> {
                ids.iter()
                    .map(|&i| jobs[i].state.last_action.as_deref())
                    .collect()
            };
            let mut out: Vec<Option<ForecastOut>> = vec![None; n];
            if !cold.is_empty() {
                let f = m.forecast(
                    &contexts(&cold),
                    &actions(&cold),
                    &rc,
                    &mut self.rng,
                    deadline,
                )?;
                for (i, f) in cold.iter().zip(f) {
                    out[*i] = Some(f);
                }
            }
            if let (false, Some(warm_steps)) = (hot.is_empty(), warm_steps) {
                let starts: Vec<&[f32]> = hot
                    .iter()
                    .filter_map(|&i| warm[i].as_ref().map(|(s, _)| s.as_slice()))
                    .collect();
                // Steps past the previous forecast's horizon hold only
                // extrapolations: at least that many run cold.
                let gap = hot
                    .iter()
                    .filter_map(|&i| warm[i].as_ref().map(|w| w.1))
                    .max();
                let mut warm_steps = warm_steps;
                warm_steps.cold_tail = warm_steps.cold_tail.max(gap.unwrap_or(1));
                if warm_steps.cold_head + warm_steps.cold_tail > h {
                    warm_steps.cold_head = h - warm_steps.cold_tail.min(h);
                }
                let f = m.forecast_warm(
                    &contexts(&hot),
                    &actions(&hot),
                    &rc,
                    (&starts, warm_steps),
                    &mut self.rng,
                )?;
                Counters::add(&c.forecasts_warm, hot.len() as u64);
                for (i, f) in hot.iter().zip(f) {
                    out[*i] = Some(f);
                }
            }
            out.into_iter().flatten().collect::<Vec<_>>()
        };
        if forecasts.len() != n {
            return Err(RuntimeError::Model(format!(
                "{} forecasts for {n} robots",
                forecasts.len()
            )));
        }
        let forecast_us = t0.elapsed().as_micros() as u64;

        // Denoising: the prior is the previous denoised state when it is the
        // immediate predecessor, else the previous observation, else the
        // observation itself (first state of an episode).
        let priors: Vec<Vec<Vec<f32>>> = jobs
            .iter()
            .map(|j| {
                let mut before = j.previous.clone().unwrap_or_else(|| j.context.clone());
                if let (Some((ep, seq, x)), Some(last)) =
                    (self.denoised.get(&j.robot), before.last_mut())
                {
                    if *ep == j.state.episode && *seq + 1 == j.state.seq && j.previous.is_some() {
                        last.clone_from(x);
                    }
                }
                before
            })
            .collect();
        let inputs: Vec<DenoiseInput> = jobs
            .iter()
            .zip(&priors)
            .map(|(j, before)| DenoiseInput {
                before,
                action: j.state.last_action.as_deref(),
                observed: &j.state.state,
            })
            .collect();
        let denoised = m.denoise(&inputs, &self.denoise_cfg, &mut self.rng)?;
        drop(inputs);

        for (((job, f), x), ood) in jobs.into_iter().zip(forecasts).zip(denoised).zip(ood) {
            let seq = job.state.seq;
            if warm_steps.is_some() {
                let prev = PreviousForecast::new(&job.state, &f, p, h);
                self.previous.insert(job.robot.clone(), prev);
            }
            let forecast = self.forecast_msg(&job.robot, seq, f, h, p, forecast_us);
            let denoised_msg = DenoisedState {
                robot_id: job.robot.to_string(),
                seq,
                model_id: self.model.model_id.clone(),
                state: x.clone(),
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

    /// Each job's OOD score (of the transition into its state), judged and
    /// counted; `None` where no transition leads into it (a new episode or
    /// a gap starts a new window).
    fn ood_messages(&mut self, jobs: &[StreamJob]) -> Result<Vec<Option<OodScore>>, RuntimeError> {
        let c = Arc::clone(&self.shared.counters);
        let with_prev: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].previous.is_some())
            .collect();
        let transitions: Vec<Transition> = with_prev
            .iter()
            .filter_map(|&i| {
                let j = &jobs[i];
                Some(Transition {
                    before: j.previous.as_deref()?,
                    action: j.state.last_action.as_deref(),
                    next: &j.state.state,
                })
            })
            .collect();
        let scores = self.ood.score(&transitions)?;
        let mut out: Vec<Option<OodScore>> = vec![None; jobs.len()];
        for (&i, score) in with_prev.iter().zip(scores) {
            let msg = self.ood.judge(&jobs[i].robot, jobs[i].state.seq, score);
            if msg.flagged {
                Counters::inc(&c.ood_flagged);
            }
            if msg.window_flagged {
                Counters::inc(&c.ood_window_flagged);
            }
            out[i] = Some(msg);
        }
        for (j, o) in jobs.iter().zip(&out) {
            if o.is_none() {
                self.ood.forget(&j.robot);
                Counters::inc(&c.ood_skipped);
            }
        }
        Ok(out)
    }
}
