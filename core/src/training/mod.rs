//! Algorithm 1: the contrastive trainer ([`trainer`]), its replay buffer of
//! past negatives ([`replay_buffer`]) and Adam with state kept by parameter name
//! ([`adam`]), all resumable exactly from a checkpoint.

pub mod adam;
pub mod replay_buffer;
pub mod trainer;

#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod trainer_tests;
