//! The 2-D toy run: energies trained on a ring of Gaussians, Langevin samples
//! drawn on their landscapes, and the sum of two energies trained on different
//! modes sampled into their intersection (the paper's Figure 14).

mod config;
mod ring;
mod run;

pub use config::{EvalConfig, RingConfig, ToyConfig, DEFAULT_TOY_TOML};
pub use ring::{ModeReport, RingMixture};
pub use run::{energy_grid, sample_terms, train_ring_model, ToyOutcome, ToyRun};
