//! The daemon's counters and gauges: every input, drop, error and output is
//! counted here and published on the status key, so nothing is lost silently.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Monotone counters (and a few high-water gauges), shared by every task.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Every counter by name.
            pub fn snapshot(&self) -> BTreeMap<String, u64> {
                let mut m = BTreeMap::new();
                $(m.insert(stringify!($name).to_owned(), self.$name.load(Ordering::Relaxed));)*
                m
            }
        }
    };
}

counters! {
    /// State samples received on `<prefix>/*/state`.
    states_received,
    /// States that did not decode (bad bytes, version, encoding, robot id or key mismatch).
    states_malformed,
    /// States of the wrong dimension.
    states_wrong_dimensions,
    /// States outside the model's trained range (`ood.max_sigma`): answered
    /// with a flagged OOD score, no forecast or denoised state.
    states_out_of_range,
    /// States with NaN or infinite values.
    states_non_finite,
    /// States older than (or equal to) one already received for the robot
    /// in its episode (sequence 0 excepted: see `robots_restarted`).
    states_out_of_order,
    /// Robots that sent sequence 0 again in the same episode (restarted
    /// without a new episode number): served afresh, not refused.
    robots_restarted,
    /// States of robots that match no served model (`unknown_robots = "reply"`).
    states_unknown_robot,
    /// Error replies to refused states published on `<prefix>/<robot>/error`.
    state_errors_published,
    /// Error replies not sent because their queue was full.
    state_errors_dropped,
    /// Queries dropped unanswered because the daemon's query queue was full.
    queries_dropped,
    /// Robots whose slots were freed after `engine.robot_idle_s` of silence.
    robots_evicted,
    /// States of robots beyond `engine.max_robots` (per model) while no robot was idle.
    states_too_many_robots,
    /// States replaced by a newer one before inference reached them (latest wins).
    states_superseded,
    /// States run through inference.
    states_processed,
    /// Batched inference runs and the robots in them.
    batches,
    batched_robots,
    /// Largest batch so far (gauge).
    batch_max,
    /// Forecasts started warm from the robot's previous one
    /// (`[forecast.warm]`, a `[[models]]` entry's `warm`).
    forecasts_warm,
    /// Most states waiting for inference at once (gauge; at most one per robot).
    pending_max,
    /// Forecast queries received, answered with a forecast, and refused.
    queries_received,
    queries_answered,
    queries_refused,
    /// Queries refused because the query queue was full.
    queries_overloaded,
    /// Queries answered after their deadline (late).
    queries_late,
    /// Inference errors (and panics caught) on the inference thread.
    inference_errors,
    /// Forecasts, OOD scores and denoised states published.
    forecasts_published,
    ood_published,
    denoised_published,
    /// Transitions without an OOD score (first state of an episode, or a gap).
    ood_skipped,
    /// OOD scores flagged (the transition; its window).
    ood_flagged,
    ood_window_flagged,
    /// Results dropped because the output queue was full.
    outputs_dropped,
    /// Encoding or publication failures.
    publish_errors,
    /// ROS 2 joint states received (`[[ros2]]` robots; those turned into
    /// states also count as `states_received`).
    ros2_received,
    /// ROS 2 samples whose key has another type hash than `JointState`'s.
    ros2_wrong_type,
    /// ROS 2 payloads that are not valid CDR `JointState`s.
    ros2_malformed,
    /// `JointState`s lacking a joint (or field) the robot's model needs.
    ros2_wrong_joints,
    /// `JointState`s stamped no later than the robot's previous one.
    ros2_out_of_order,
    /// ROS 2 commands read (`[[ros2]] action_topic`): the action the
    /// robot's next states carry.
    ros2_commands,
    /// ROS 2 messages published (forecast trajectories, denoised joint
    /// states, diagnostics).
    ros2_published,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn max(c: &AtomicU64, v: u64) {
        c.fetch_max(v, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter() {
        let c = Counters::default();
        Counters::inc(&c.states_malformed);
        Counters::add(&c.states_malformed, 2);
        Counters::max(&c.batch_max, 4);
        Counters::max(&c.batch_max, 2);
        let s = c.snapshot();
        assert_eq!(s["states_malformed"], 3);
        assert_eq!(s["batch_max"], 4);
        assert_eq!(s["states_received"], 0);
        assert_eq!(s.len(), 41);
        assert_eq!(s["forecasts_warm"], 0);
    }
}
