//! Cross-crate integration tests, built into one binary to save link time.

mod configs;
mod fleet;
mod harness;
mod models;
mod models_shadow;
mod module_graph;
mod recordings;
mod replay;
mod ros2_bridge;
mod ros2_import;
mod runtime;
mod runtime_fail_closed;
mod runtime_fairness;
mod runtime_ingest_fuzz;
mod runtime_load;
mod runtime_ood;
mod secure_transport;
mod soak;
mod toy;
mod trajectory;
mod trajectory_fairness;
