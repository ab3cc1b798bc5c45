//! Command handlers of the `ebm-train` binary.

pub mod bench;
pub mod continual;
pub mod device_check;
pub mod dsprites;
pub mod images;
pub mod toy;
pub mod traj;
