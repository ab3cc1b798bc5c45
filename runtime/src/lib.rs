//! `ebm-runtime`: the daemon that subscribes to robot state over Zenoh and
//! publishes multistep Langevin forecasts, OOD scores and denoised states,
//! using `ebm-core`'s models and sampler.
//!
//! - [`config`]: `configs/runtime.toml`, parsed strictly;
//! - [`model`]: a served checkpoint, its robot, normalisation and OOD percentiles;
//! - [`fleet`]: several models in one daemon, bound to robot-id patterns,
//!   each on its own inference engine;
//! - [`infer`]: forecast, OOD energy and denoising, batched over robots;
//! - [`engine`]: a model's dedicated inference thread, its bounded inbox (latest
//!   state wins per robot), batching and the query queue; its worker
//!   (`worker`) runs the inference, sharing its time between queries and
//!   streaming robots (`query_share`);
//! - [`daemon`]: Zenoh subscriber, queryable, publishers, status and liveliness;
//! - [`ros2`]: ROS 2 robots over rmw_zenoh (joint states in; forecasts,
//!   denoised states and OOD diagnostics out as ROS 2 topics);
//! - [`transport`]: the one place Zenoh is configured;
//! - [`counters`]: every input, drop, error and output, published as status;
//! - [`local`]: an in-process daemon with a connected client;
//! - [`cli_support`]: the command-line overrides shared with `ebm-tools`.
//!
//! The demo and evaluation tools live in `ebm-tools`: this crate (and the
//! daemon binary a Jetson runs) depends on `ebm-msgs`, `ebm-core` and Zenoh
//! only, never on the simulator.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli_support;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod infer;
pub mod local;
pub mod model;
pub mod ood_score;
mod query_share;
pub mod ros2;
pub mod transport;
mod worker;

pub use config::RuntimeConfig;
pub use daemon::{run, run_with_model, serve};
pub use error::RuntimeError;
pub use model::ModelBundle;
