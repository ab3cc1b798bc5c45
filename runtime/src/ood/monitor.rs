//! From transition scores to the published [`OodScore`]s: each score's
//! percentile (the checkpoints' calibration, or [`OnlineCalibration`] where
//! they have none), its flag, and the score of the robot's window of recent
//! transitions, kept per robot and restarted with each episode.

use std::collections::{HashMap, VecDeque};

use ebm_msgs::{OodScore, RobotId};

use super::calibration::OnlineCalibration;
use super::scorer::{OodScorer, TransitionScore};
use crate::config::OodConfig;
use crate::model::Transition;
use crate::RuntimeError;

/// The OOD side of one engine: the scorer, its online calibration and each
/// robot's recent scores.
pub struct OodMonitor {
    scorer: OodScorer,
    online: OnlineCalibration,
    /// Each robot's recent scores in its episode (at most a window).
    windows: HashMap<RobotId, VecDeque<TransitionScore>>,
    flag_percentile: f64,
}

impl OodMonitor {
    pub fn new(scorer: OodScorer, cfg: &OodConfig) -> Self {
        Self {
            scorer,
            online: OnlineCalibration::new(cfg.online_calibration),
            windows: HashMap::new(),
            flag_percentile: cfg.flag_percentile,
        }
    }

    pub fn scorer(&self) -> &OodScorer {
        &self.scorer
    }

    /// Scores observed transitions (see [`OodScorer::score`]).
    pub fn score(&self, transitions: &[Transition]) -> Result<Vec<TransitionScore>, RuntimeError> {
        self.scorer.score(transitions)
    }

    /// The robot's window starts afresh (a new episode, a gap, a freed slot).
    pub fn forget(&mut self, robot: &RobotId) {
        self.windows.remove(robot);
    }

    /// The published score of `robot`'s transition into state `seq`, its
    /// window updated.
    pub fn judge(&mut self, robot: &RobotId, seq: u64, score: TransitionScore) -> OodScore {
        let energy = score.energy;
        // Fail closed: an energy too large to represent is the most unusual
        // transition there is, published as such with the reason.
        let reason = (!energy.is_finite()).then(|| {
            "the transition's energy is not finite: far outside the model's training data"
                .to_owned()
        });
        let (percentile, trusted) = match score.percentile {
            Some(p) => (p, true),
            None => self.online.percentile_then_learn(energy),
        };
        let percentile = if percentile.is_finite() && reason.is_none() {
            percentile
        } else {
            100.0
        };
        let flag_at = self.flag_percentile;
        let flagged = reason.is_some() || (trusted && f64::from(percentile) >= flag_at);
        let w = self.scorer.window_len();
        let recent = self.windows.entry(robot.clone()).or_default();
        recent.push_back(score);
        while recent.len() > w {
            recent.pop_front();
        }
        let window = self.scorer.window(recent.make_contiguous());
        let window_flagged = window.percentile.is_some_and(|p| f64::from(p) >= flag_at);
        let finite_or_max = |v: f32| if v.is_finite() { v } else { f32::MAX };
        OodScore {
            robot_id: robot.to_string(),
            seq,
            model_id: self.scorer.model_id().to_owned(),
            energy: finite_or_max(energy),
            percentile,
            flagged,
            window_energy: finite_or_max(window.energy),
            window_len: window.len as u32,
            window_discrepancy: window.discrepancy.map(finite_or_max),
            window_percentile: window.percentile,
            window_flagged,
            reason,
        }
    }
}
