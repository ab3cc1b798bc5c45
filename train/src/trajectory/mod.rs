//! Trajectory EBMs (the paper's Section 5): transitions of recorded hand-cube
//! trajectories, Algorithm 1 training, the FC baseline, multi-step rollouts
//! scored by Frechet distance.

pub mod baseline;
pub mod calibrate;
pub mod config;
pub mod data;
pub mod ood_stats;
pub mod report;
pub mod run;

pub use calibrate::{calibrate_export, CalibrationSummary};
pub use config::TrajectoryConfig;
pub use run::{evaluate, train_trajectory, TrajEvalReport, TrajTrainSummary};
