//! OOD scores of observed transitions: how unusual a robot's transition
//! (and its recent window of them) is under the models of its robot.
//!
//! - [`scorer`]: the score of a transition under one or more models
//!   ("experts", composed by adding their scaled energies) and of a window
//!   of them (the Stein window test, or the mean energy's percentile).
//! - [`calibration`]: online percentiles for models without stored ones.
//! - [`monitor`]: scores to published messages: percentiles, flags and
//!   each robot's window.
//! - [`load`]: the OOD models of a served model.

pub mod calibration;
pub mod load;
pub mod monitor;
pub mod scorer;

pub use load::load_ood_scorer;
pub use monitor::OodMonitor;
pub use scorer::{Expert, OodScorer, TransitionScore, WindowScore, DEFAULT_WINDOW};
