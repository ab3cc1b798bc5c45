//! Algorithm 1: the contrastive trainer ([`trainer`]), its replay buffer of
//! past negatives ([`replay_buffer`]) and Adam with state kept by parameter name
//! ([`adam`]), all resumable exactly from a checkpoint; the optional
//! classification term of conditional models ([`label_contrast`]).

pub mod adam;
pub mod kl_term;
pub mod label_contrast;
pub mod replay_buffer;
pub mod trainer;

#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod trainer_tests;
