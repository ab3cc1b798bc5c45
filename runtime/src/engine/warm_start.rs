//! Warm starts: a robot's previous forecast, shifted by one step and
//! re-anchored on its newly observed state, as the starts of its next
//! forecast's chains (which then run `forecast.warm_steps` steps instead of
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

    /// The starts (`P x H x D`, wire units) of the forecast from `state`,
    /// or `None` where it starts cold: `state` is not the immediate
    /// successor of this forecast's state in the same episode (a gap, a new
    /// episode, a restart), the transition into it was flagged OOD, or the
    /// forecast size differs. Each particle's trajectory moves up a step
    /// and by the difference between the observed state and its prediction
    /// of it; its last step is extrapolated from the last two.
    pub(crate) fn warm_starts(
        &self,
        state: &RobotState,
        flagged: bool,
        particles: usize,
        horizon: usize,
    ) -> Option<Vec<f32>> {
        let successor = state.episode == self.episode && state.seq == self.seq + 1;
        let d = state.state.len();
        let (p, h) = (particles, horizon);
        if !successor
            || flagged
            || (p, h) != (self.particles, self.horizon)
            || h == 0
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
                .zip(step(0))
                .map(|(o, x)| o - x)
                .collect();
            for t in 0..h {
                let start: Vec<f32> = if t + 1 < h {
                    step(t + 1).to_vec()
                } else if h >= 2 {
                    step(h - 1)
                        .iter()
                        .zip(step(h - 2))
                        .map(|(a, b)| 2.0 * a - b)
                        .collect()
                } else {
                    step(0).to_vec()
                };
                out.extend(start.iter().zip(&offset).map(|(x, o)| x + o));
            }
        }
        Some(out)
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
        let starts = previous().warm_starts(&state(0, 5, [1.5, 0.5]), false, 1, 3);
        // Offset (0.5, -0.5); steps (2, 3), (3, 5), then (4, 7) extrapolated.
        assert_eq!(starts, Some(vec![2.5, 2.5, 3.5, 4.5, 4.5, 6.5]));
    }

    #[test]
    fn gaps_new_episodes_restarts_flags_and_other_sizes_start_cold() {
        let p = previous();
        let next = [1.5, 0.5];
        assert_eq!(
            p.warm_starts(&state(0, 6, next), false, 1, 3),
            None,
            "a gap"
        );
        assert_eq!(
            p.warm_starts(&state(1, 5, next), false, 1, 3),
            None,
            "a new episode"
        );
        assert_eq!(
            p.warm_starts(&state(0, 0, next), false, 1, 3),
            None,
            "a restart"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), true, 1, 3),
            None,
            "flagged OOD"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), false, 2, 3),
            None,
            "more particles"
        );
        assert_eq!(
            p.warm_starts(&state(0, 5, next), false, 1, 4),
            None,
            "a longer horizon"
        );
        assert!(p.warm_starts(&state(0, 5, next), false, 1, 3).is_some());
    }
}
