//! `ebm-runtime`: the daemon that subscribes to robot state over Zenoh and
//! publishes multistep Langevin forecasts, OOD scores and denoised states,
//! using `ebm-core`'s models and sampler.
//!
//! A robot's state goes one way through the daemon: wire -> decode
//! ([`daemon`], [`ros2`]) -> the robot's slot in its model's engine
//! ([`engine::inbox`]) -> the model, in the robot's units in and out
//! ([`model::RobotModel`]: normalisation, conditioning, calibration) and the
//! OOD side ([`ood`]) -> messages -> encode ([`reply_encoding`]: as the
//! robot's state came) -> wire.
//!
//! - [`config`]: `configs/runtime.toml`, parsed strictly;
//! - [`model`]: a served model of one robot in its units: loading, units,
//!   forecasts, transition scores and denoising;
//! - [`ood`]: OOD scores of transitions and windows, their calibration
//!   (stored or online) and the OOD models of a served model;
//! - [`binding`]: a model bound to a robot-id pattern with its OOD models
//!   and denoiser settings;
//! - [`fleet`]: several bindings in one daemon, each on its own engine;
//! - [`engine`]: a model's dedicated inference thread: the robot slots and
//!   query queue ([`engine::inbox`], latest state wins per robot), batching,
//!   and the time shared between queries and streaming robots;
//! - [`daemon`]: Zenoh subscriber, queryable, publishers, status and liveliness;
//! - [`ros2`]: ROS 2 robots over rmw_zenoh (joint states in; forecasts,
//!   denoised states and OOD diagnostics out as ROS 2 topics);
//! - [`transport`]: the one place Zenoh is configured;
//! - [`reply_encoding`]: the encoding each robot's outputs go out in;
//! - [`counters`]: every input, drop, error and output, published as status;
//! - [`local`]: an in-process daemon with a connected client;
//! - [`cli_support`]: the command-line overrides shared with `ebm-tools`.
//!
//! The demo and evaluation tools live in `ebm-tools`: this crate (and the
//! daemon binary a Jetson runs) depends on `ebm-msgs`, `ebm-core` and Zenoh
//! only, never on the simulator.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod binding;
pub mod cli_support;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod local;
pub mod model;
pub mod ood;
pub mod reply_encoding;
pub mod ros2;
pub mod transport;

pub use config::RuntimeConfig;
pub use daemon::{run, run_with_model, serve};
pub use error::RuntimeError;
pub use model::RobotModel;
