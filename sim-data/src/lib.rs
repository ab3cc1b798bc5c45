//! `ebm-sim-data`: the hand-cube simulator and the recordings made from it,
//! and the import of ROS 2 bags into recordings. On `ebm-msgs` (recordings)
//! and rapier3d; no network: publishing a recording over Zenoh is
//! `ebm-tools replay`.
//!
//! - The robot: [`layout`] (the state and action layout, the only place
//!   that knows the hand's sizes), [`hand`] (its kinematic tree), [`sim`]
//!   (the rapier3d world), [`wrist`] (the kinematic wrist), [`config`].
//! - Its data: [`policy`] (scripted behaviours), [`episode`] (one simulated
//!   trajectory and the rule for those that go wrong), [`generate`] (a
//!   dataset written as a recording), [`inspect`] (a recording's statistics),
//!   [`plot`] (futures of one start state, SVG), [`sim_speed`] (frames per
//!   second).
//! - Other robots' data: [`ros2_import`] (rosbag2 MCAP to a recording).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod episode;
pub mod error;
pub mod generate;
pub mod hand;
pub mod inspect;
pub mod layout;
pub mod plot;
pub mod policy;
pub mod ros2_import;
pub mod sim;
pub mod sim_speed;
pub mod wrist;

pub use config::SimConfig;
pub use error::SimError;
pub use layout::{
    robot_spec as hand_robot_spec, ACTION_DIM as HAND_ACTION_DIM, STATE_DIM as HAND_STATE_DIM,
};
pub use sim::{CubeStatus, HandCubeSim};

#[cfg(test)]
mod physics_tests;

#[cfg(test)]
mod data_tests;
