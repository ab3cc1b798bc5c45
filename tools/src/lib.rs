//! `ebm-tools`: what is built around the runtime daemon but is not the
//! daemon (which a Jetson runs, and which links no simulator). On
//! `ebm-runtime` (an in-process daemon, its Zenoh configuration), the
//! simulator and the recordings:
//!
//! - [`demo`]: the daemon serving two robots of different kinds at once, the
//!   live simulated hand and a replayed recording of another robot, with a
//!   live table of each one's forecast error and OOD score;
//! - [`replay`]: a recording's states published over Zenoh as its robot
//!   would send them;
//! - [`replay_eval`]: test episodes of a recording replayed into the daemon,
//!   its forecasts scored against the recording;
//! - [`ood_eval`]: AUROC of the daemon's OOD scores on perturbed simulators;
//! - [`latency_bench`]: state-to-forecast latency and robots served per thread;
//! - [`soak`]: the daemon under mixed traffic, every output accounted for.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod demo;
pub mod latency_bench;
pub mod ood_eval;
pub mod replay;
pub mod replay_eval;
pub mod soak;
