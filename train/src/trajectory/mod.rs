//! Trajectory EBMs (the paper's Section 5): transitions of recorded
//! trajectories of any robot (sizes from the recording), Algorithm 1 training, the FC baseline, multi-step rollouts
//! scored by Frechet distance.

pub mod baseline;
pub mod calibrate;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod migrate;
pub mod ood_stats;
pub mod report;
pub mod run;
pub mod seeds;
pub mod split;
pub mod tune;

pub use calibrate::{calibrate_export, CalibrationSummary};
pub use config::TrajectoryConfig;
pub use evaluate::evaluate;
pub use migrate::{migrate_export, MigrationSummary};
pub use report::TrajEvalReport;
pub use run::{train_trajectory, TrajTrainSummary};

/// A recording's robot description as the export's manifest stores it.
pub fn robot_for_manifest(r: &ebm_msgs::RobotSpec) -> ebm_core::checkpoint::RobotSpec {
    ebm_core::checkpoint::RobotSpec {
        kind: r.kind.clone(),
        state_dim: r.state_dim,
        action_dim: r.action_dim,
        state_names: r.state_names.clone(),
        state_units: r.state_units.clone(),
        action_names: r.action_names.clone(),
        action_units: r.action_units.clone(),
    }
}
