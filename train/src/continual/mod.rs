//! Continual class learning on split MNIST (the paper's Section 6, Table 1):
//! class-incremental, five tasks of disjoint digit pairs seen one after the
//! other, then every test digit classified among all ten classes.
//!
//! Three learners of the same size (two hidden layers of 400), trained the
//! same way (same tasks, order, epochs, batches and Adam settings):
//! - the energy-based model `E(x, y)` of Li, Du and Mordatch ("Energy-Based
//!   Models for Continual Learning"): the label enters the network (per-class
//!   biases on both hidden layers, as the official image network conditions
//!   on labels), and training contrasts each digit's label against the
//!   *current task's* other labels only: the cross-entropy of
//!   `softmax_{y in task}(-E(x, y))`; it classifies by the lowest energy;
//! - a softmax classifier over all ten classes (the forgetting baseline);
//! - the same softmax classifier normalised over the current task's classes
//!   only (the "labels trick"): the help the EBM's contrast gets, given to
//!   the baseline;
//! - any of them with dreams (`dreams`): Langevin samples of the earlier
//!   tasks' classes drawn on the learner itself and replayed beside each
//!   batch, no digit stored.

pub mod config;
pub mod data;
pub mod dreams;
pub mod learner;
pub mod report;
pub mod run;

pub use config::ContinualConfig;
pub use run::{run_continual, ContinualReport};

#[cfg(test)]
mod tests;
