//! Warm starts: a robot's previous forecast, shifted by the steps since it
//! (one, or a few where the daemon skipped superseded states under load)
//! and re-anchored on its newly observed state, as the starts of its next
//! forecast's chains (which then run `warm.steps` steps instead of
//! `langevin.steps`); and when a forecast starts cold instead.

use ebm_msgs::RobotState;

use crate::model::ForecastOut;

/// A robot's latest forecast, kept for its next one.
#[derive(Debug, Clone)]
pub(crate) struct PreviousForecast {
    episode: u64,
    seq: u64,
    particles: usize,
    horizon: usize,
    /// `P x H x D`, wire units.
    trajectories: Vec<f32>,
}

impl PreviousForecast {
    /// The forecast `f` made from `state`.
    pub(crate) fn new(
        state: &RobotState,
        f: &ForecastOut,
        particles: usize,
        horizon: usize,
    ) -> Self {
        Self {
            episode: state.episode,
            seq: state.seq,
            particles,
            horizon,
            trajectories: f.trajectories.clone(),
        }
    }

    /// The starts (`P x H x D`, wire units) of the forecast from `state`
    /// and the steps `g` they moved by, or `None` where it starts cold:
    /// `state` is not a successor of this forecast's state in the same
    /// episode within `max_gap` steps (a longer gap, a new episode, a
    /// restart), the transition into it was flagged OOD, or the forecast
    /// size differs. Each particle's trajectory moves up `g` steps and by
    /// the difference between the observed state and its prediction of it;
    /// its last `g` steps are extrapolated from its last two.
    pub(crate) fn warm_starts(
        &self,
        state: &RobotState,
        flagged: bool,
        particles: usize,
        horizon: usize,
        max_gap: usize,
    ) -> Option<(Vec<f32>, usize)> {
        let g = state.seq.saturating_sub(self.seq) as usize;
        let successor = state.episode == self.episode && (1..=max_gap).contains(&g);
        let d = state.state.len();
        let (p, h) = (particles, horizon);
        if !successor
            || flagged
            || (p, h) != (self.particles, self.horizon)
            || g >= h
            || self.trajectories.len() != p * h * d
        {
            return None;
        }
        let mut out = Vec::with_capacity(p * h * d);
        for traj in self.trajectories.chunks_exact(h * d) {
            let step = |t: usize| &traj[t * d..(t + 1) * d];
            let offset: Vec<f32> = state
                .state
                .iter()
                .zip(step(g - 1))
                .map(|(o, x)| o - x)
                .collect();
            for t in 0..h {
                let start: Vec<f32> = if t + g < h {
                    step(t + g).to_vec()
                } else if h >= 2 {
                    // Beyond the horizon: on along the last step's motion.
                    let beyond = (t + g + 1 - h) as f32;
                    step(h - 1)
                        .iter()
                        .zip(step(h - 2))
                        .map(|(a, b)| a + beyond * (a - b))
                        .collect()
                } else {
                    step(0).to_vec()
                };
                out.extend(start.iter().zip(&offset).map(|(x, o)| x + o));
            }
        }
        Some((out, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(episode: u64, seq: u64, x: [f32; 2]) -> RobotState {
        RobotState {
            robot_id: "r".into(),
            episode,
            seq,
            stamp_ns: 0,
            state: x.to_vec(),
            last_action: None,
        }
    }

    /// One particle, 3 steps of 2 floats, predicted from seq 4: (1, 1),
    /// (2, 3), (3, 5); the robot is then seen at (1.5, 0.5).
    fn previous() -> PreviousForecast {
        let f = ForecastOut {
            trajectories: vec![1.0, 1.0, 2.0, 3.0, 3.0, 5.0],
            energies: vec![0.0],
            mean: vec![],
            spread: vec![],
            langevin_steps: 60,
        };
        PreviousForecast::new(&state(0, 4, [0.0, 0.0]), &f, 1, 3)
    }

    #[test]
    fn starts_are_the_previous_forecast_shifted_and_reanchored() {
        let starts = previous().warm_starts(&state(0, 5, [1.5, 0.5]), false, 1, 3, 2);
        // Offset (0.5, -0.5); steps (2, 3), (3, 5), then (4, 7) extrapolated.
        assert_eq!(starts, Some((vec![2.5, 2.5, 3.5, 4.5, 4.5, 6.5], 1)));
        // Two steps on (a state the daemon skipped): the prediction of the
        // new state is (2, 3), offset (1, 0); then (3, 5), and (4, 7),
        // (5, 9) extrapolated, each moved by the offset.
        let starts = previous().warm_starts(&state(0, 6, [3.0, 3.0]), false, 1, 3, 2);
        assert_eq!(starts, Some((vec![4.0, 5.0, 5.0, 7.0, 6.0, 9.0], 2)));
    }

    #[test]
    fn gaps_new_episodes_restarts_flags_and_other_sizes_start_cold() {
        let p = previous();
        let next = [1.5, 0.5];
        assert_eq!(
            p.warm_starts(&state(0, 7, next), false, 1, 3, 2),
            None,
            "a gap longer than the bridge"
        );
        assert_eq!(
            p.warm_starts(&state(0, 7, next), false, 1, 3, 3),
            None,
            "a gap as long as the horizon"
        );
        assert_eq!(
            p.warm_starts(&state(0, 4, next), false, 1, 3, 2),
            None,
            "the same state again"
        );
        assert_eq!(
            p.warm_starts(&state(1, 5, next), false, 1, 3, 2),
            None,
            "a new episode"
        );
        assert_eq!(
            p.warm_starts(&state(0, 0, next), false, 1, 3, 2),
            None,
            "a restart"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), true, 1, 3, 2),
            None,
            "flagged OOD"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), false, 2, 3, 2),
            None,
            "more particles"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), false, 1, 4, 2),
            None,
            "a longer horizon"
        );
        assert!(p.warm_starts(&state(0, 5, next), false, 1, 3, 2).is_some());
    }
}
