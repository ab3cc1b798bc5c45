//! One trajectory: random start, scripted policy with random actions, and the
//! rule for trajectories that go wrong.
//!
//! **Rule.** An episode ends early when its state is not finite or the cube
//! has left the hand ([`CubeStatus::Dropped`]); that attempt is discarded,
//! counted by reason, and the trajectory is re-drawn from the next attempt
//! seed, up to `max_attempts`. So every recorded trajectory is complete and
//! finite, and the recording's summary says how many attempts were rejected.
//!
//! **Seeds.** Trajectory `i` of a run with seed `S` uses attempt seeds
//! `mix(mix(S, i), a)`; an attempt seed drives two ChaCha8 streams: stream 0
//! for the start state, stream 1 for the policy. Nothing depends on threads.

use crate::layout::{ACTION_DIM, STATE_DIM};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SimConfig;
use crate::hand::NUM_ACTUATORS;
use crate::policy::{Behaviour, ScriptedPolicy, Segment, REST_POSE};
use crate::sim::{CubeStatus, HandCubeSim};

/// SplitMix64 finaliser: decorrelates nearby seeds.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How the actions are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The scripted policy, behaviours drawn per segment (or all forced to one),
    /// with the configured random actions.
    Scripted { force: Option<Behaviour> },
    /// The rest pose throughout, no random actions: the hand holds still.
    Frozen,
}

/// Why an attempt was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Dropped { step: u32 },
    NonFinite { step: u32 },
}

/// A complete trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// `steps x 31`, row-major.
    pub states: Vec<f32>,
    /// `steps x 20`; `actions[t]` is applied at `states[t]`.
    pub actions: Vec<f32>,
    pub segments: Vec<Segment>,
    /// Attempt index that succeeded (= attempts rejected before it).
    pub attempt: u32,
}

/// Seeds of one episode: the start state and the policy (random actions,
/// behaviours) can be varied apart, e.g. many futures of one start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    pub init: u64,
    pub policy: u64,
}

impl Seeds {
    /// Both from one attempt seed (distinct ChaCha8 streams).
    pub fn attempt(seed: u64) -> Self {
        Self {
            init: seed,
            policy: seed,
        }
    }
}

/// Rolls out one attempt.
pub fn simulate(
    cfg: &SimConfig,
    steps: u32,
    seeds: Seeds,
    control: &Control,
) -> Result<Trajectory, Failure> {
    simulate_with_stuck_actuator(cfg, steps, seeds, control, None)
}

/// As [`simulate`], with actuator `stuck` (index into the action) held at its
/// initial rest target whatever is commanded: a stuck joint, for
/// out-of-distribution tests. The recorded actions are the commanded ones.
pub fn simulate_with_stuck_actuator(
    cfg: &SimConfig,
    steps: u32,
    seeds: Seeds,
    control: &Control,
    stuck: Option<usize>,
) -> Result<Trajectory, Failure> {
    let mut init = ChaCha8Rng::seed_from_u64(seeds.init);
    let mut prng = ChaCha8Rng::seed_from_u64(seeds.policy);
    prng.set_stream(1);
    let n = cfg.cube.position_noise_m;
    let offset = [init.random_range(-n..=n), init.random_range(-n..=n)];
    let yaw = init.random_range(0.0..std::f32::consts::FRAC_PI_2);
    let mut sim = HandCubeSim::new(cfg, offset, yaw);
    let mut rest = REST_POSE;
    let noise = cfg.actuators.initial_pose_noise;
    for (r, a) in rest.iter_mut().zip(sim.actuators()) {
        *r = (*r + init.random_range(-1.0..=1.0) * noise * (a.upper - a.lower))
            .clamp(a.lower, a.upper);
    }
    let n_segments = steps.div_ceil(cfg.segment_steps) as usize;
    let (segments, random_every) = match control {
        Control::Scripted { force } => (
            (0..n_segments)
                .map(|_| Segment::draw(&mut prng, *force))
                .collect(),
            cfg.random_action_every,
        ),
        Control::Frozen => (Vec::new(), 0),
    };
    let policy = ScriptedPolicy::new(rest, segments, cfg.segment_steps, cfg.control_period_s);
    sim.set_action(&rest);
    for _ in 0..cfg.settle_steps {
        sim.step();
    }
    let mut states = Vec::with_capacity(steps as usize * STATE_DIM);
    let mut actions = Vec::with_capacity(steps as usize * ACTION_DIM);
    for t in 0..steps {
        let s = sim.state();
        if s.iter().any(|x| !x.is_finite()) {
            return Err(Failure::NonFinite { step: t });
        }
        if sim.cube_status() == CubeStatus::Dropped {
            return Err(Failure::Dropped { step: t });
        }
        states.extend_from_slice(&s);
        let a: [f32; NUM_ACTUATORS] = if random_every > 0 && (t + 1) % random_every == 0 {
            let mut a = [0.0; NUM_ACTUATORS];
            for (x, spec) in a.iter_mut().zip(sim.actuators()) {
                *x = prng.random_range(spec.lower..=spec.upper);
            }
            a
        } else {
            policy.action(t, sim.actuators())
        };
        actions.extend_from_slice(&a);
        if t + 1 < steps {
            let mut applied = a;
            if let Some(j) = stuck.filter(|&j| j < NUM_ACTUATORS) {
                applied[j] = rest[j];
            }
            sim.set_action(&applied);
            sim.step();
        }
    }
    Ok(Trajectory {
        states,
        actions,
        segments: policy.segments().to_vec(),
        attempt: 0,
    })
}

/// Attempts of one trajectory that were rejected, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    pub dropped: u32,
    pub non_finite: u32,
}

/// Trajectory `id` of a run seeded `seed`, applying the rule above; `None`
/// when all `max_attempts` attempts failed.
pub fn trajectory(
    cfg: &SimConfig,
    steps: u32,
    seed: u64,
    id: u64,
) -> (Option<Trajectory>, Rejections) {
    let base = mix(seed, id);
    let mut rej = Rejections::default();
    let control = Control::Scripted { force: None };
    for attempt in 0..cfg.max_attempts {
        match simulate(
            cfg,
            steps,
            Seeds::attempt(mix(base, u64::from(attempt))),
            &control,
        ) {
            Ok(mut t) => {
                t.attempt = attempt;
                return (Some(t), rej);
            }
            Err(Failure::Dropped { .. }) => rej.dropped += 1,
            Err(Failure::NonFinite { .. }) => rej.non_finite += 1,
        }
    }
    (None, rej)
}
