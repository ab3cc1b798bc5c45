//! dSprites, rendered procedurally (`render`), for the paper's compositional
//! generation experiments (Section 7, Figures 15 and 16).

pub mod compose;
pub mod cross;
pub mod cross_config;
pub mod cross_data;
pub mod cross_scores;
pub mod data;
pub mod finetune;
pub mod reader;
pub mod render;
pub mod train;

pub use render::{render, Latents, Shape};

#[cfg(test)]
mod compose_tests;
