//! `ebm-sim-data`: the hand-cube simulator on rapier3d (a Shadow-hand-like
//! hand with 24 joints and 20 actuators, a free cube on the upturned palm), a
//! scripted multimodal manipulation policy, dataset generation into MCAP
//! recordings (through `ebm-msgs`), replay of recordings over Zenoh, and the
//! import of ROS 2 bags into recordings ([`ros2_import`]).

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
