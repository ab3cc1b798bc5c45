//! A scripted manipulation policy with several distinct behaviours.
//!
//! Each trajectory is cut into segments of `segment_steps` frames; each
//! segment draws one [`Behaviour`] and a period, so one start state has
//! several futures (the multimodality trajectory EBMs should capture). Every
//! behaviour moves some actuators along `w(t) = (1 - cos(2 pi t / period)) / 2`
//! away from the trajectory's rest pose and back, so segments join smoothly.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::hand::{ActuatorSpec, NUM_ACTUATORS};

/// Actuator indices (see `hand::actuators`).
mod act {
    pub const WRJ2: usize = 0;
    pub const WRJ1: usize = 1;
    /// `J3` (MCP) and `J0` (PIP+DIP) of the first, middle, ring and little fingers.
    pub const FINGERS: [(usize, usize); 4] = [(3, 4), (6, 7), (9, 10), (13, 14)];
    pub const LFJ5: usize = 11;
    pub const THJ5: usize = 15;
    pub const THJ4: usize = 16;
    pub const THJ2: usize = 18;
    pub const THJ1: usize = 19;
}

/// Relaxed open hand: fingers slightly curled, thumb slightly out.
pub const REST_POSE: [f32; NUM_ACTUATORS] = [
    0.0, 0.0, // wrist
    0.0, 0.1, 0.3, 0.0, 0.1, 0.3, 0.0, 0.1, 0.3, // FF, MF, RF
    0.0, 0.0, 0.1, 0.3, // LF
    0.3, 0.3, 0.0, 0.0, 0.2, // thumb
];

/// What the hand does during one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The four fingers curl over the cube's far face: it rolls towards the
    /// wrist, about the palm's lateral axis.
    FingerRoll,
    /// The thumb swings forward across the palm and sweeps inwards: it pushes
    /// the cube towards the little finger.
    ThumbPush,
    /// The little finger's half of the palm lifts (cupping): the cube tips
    /// towards the thumb, about the palm's long axis.
    CupRoll,
    /// Radial/ulnar deviation of the wrist with the fingers as a wall: the
    /// cube turns about the vertical.
    WristTwist,
    /// Wrist extension then flexion: the cube slides into the curled fingers
    /// and back.
    Tilt,
    /// Close fingers and thumb around the cube, then open.
    Regrasp,
}

impl Behaviour {
    pub const ALL: [Behaviour; 6] = [
        Behaviour::FingerRoll,
        Behaviour::ThumbPush,
        Behaviour::CupRoll,
        Behaviour::WristTwist,
        Behaviour::Tilt,
        Behaviour::Regrasp,
    ];

    /// Index in [`Behaviour::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&b| b == self).unwrap_or(0)
    }
}

/// One segment's behaviour and timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub behaviour: Behaviour,
    pub period_s: f32,
    pub amplitude: f32,
}

impl Segment {
    /// Draws a segment, of the given behaviour or of a uniformly drawn one.
    pub fn draw(rng: &mut ChaCha8Rng, behaviour: Option<Behaviour>) -> Self {
        let b = Behaviour::ALL[rng.random_range(0..Behaviour::ALL.len())];
        Self {
            behaviour: behaviour.unwrap_or(b),
            period_s: rng.random_range(0.8..2.0),
            amplitude: rng.random_range(0.7..1.0),
        }
    }
}

/// The scripted policy of one trajectory.
#[derive(Debug, Clone)]
pub struct ScriptedPolicy {
    rest: [f32; NUM_ACTUATORS],
    segments: Vec<Segment>,
    segment_steps: u32,
    period_s: f32,
}

impl ScriptedPolicy {
    pub fn new(
        rest: [f32; NUM_ACTUATORS],
        segments: Vec<Segment>,
        segment_steps: u32,
        control_period_s: f32,
    ) -> Self {
        Self {
            rest,
            segments,
            segment_steps: segment_steps.max(1),
            period_s: control_period_s,
        }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The scripted action at frame `step`, clamped to the actuators' range.
    pub fn action(&self, step: u32, actuators: &[ActuatorSpec]) -> [f32; NUM_ACTUATORS] {
        let mut u = self.rest;
        let k = (step / self.segment_steps) as usize;
        if let Some(seg) = self
            .segments
            .get(k.min(self.segments.len().saturating_sub(1)))
        {
            let t = (step % self.segment_steps) as f32 * self.period_s;
            let w = seg.amplitude * 0.5 * (1.0 - (std::f32::consts::TAU * t / seg.period_s).cos());
            apply(seg.behaviour, w, &mut u);
        }
        for (x, a) in u.iter_mut().zip(actuators) {
            *x = x.clamp(a.lower, a.upper);
        }
        u
    }
}

/// Moves the behaviour's actuators by `w` in `[0, 1]` of their stroke.
fn apply(b: Behaviour, w: f32, u: &mut [f32; NUM_ACTUATORS]) {
    let curl = |u: &mut [f32; NUM_ACTUATORS], mcp: f32, pip: f32| {
        for (j3, j0) in act::FINGERS {
            u[j3] += mcp;
            u[j0] += pip;
        }
    };
    match b {
        Behaviour::FingerRoll => curl(u, 1.4 * w, 2.6 * w),
        Behaviour::ThumbPush => {
            // Swing the thumb forward across the palm at palm height and
            // sweep its tip inwards.
            u[act::THJ5] -= 0.3 * w;
            u[act::THJ4] += 0.85 * w;
            u[act::THJ2] += 0.5 * w;
            u[act::THJ1] += 0.6 * w;
        }
        Behaviour::CupRoll => {
            u[act::LFJ5] += 0.8 * w;
            curl(u, 0.3 * w, 0.3 * w);
        }
        Behaviour::WristTwist => {
            u[act::WRJ2] -= 0.65 * w;
            curl(u, 0.5, 0.6);
        }
        Behaviour::Tilt => {
            // Extension first (fingers down), flexion in the second half.
            let s = (std::f32::consts::PI * w).sin();
            u[act::WRJ1] += -0.55 * s + 0.45 * w * w;
            curl(u, 0.9, 1.2);
        }
        Behaviour::Regrasp => {
            curl(u, 1.2 * w, 2.0 * w);
            u[act::THJ5] += 0.5 * w;
            u[act::THJ4] += 0.9 * w;
            u[act::THJ2] += 0.4 * w;
            u[act::THJ1] += 0.6 * w;
            u[act::LFJ5] += 0.5 * w;
        }
    }
}
