//! Statistics shared by training, evaluation and serving: the Frechet
//! distance ([`frechet`]), AUROC and percentiles ([`metrics`]), small dense
//! linear algebra ([`linalg`]) and the Stein window test for OOD scores
//! ([`stein`]).

pub mod frechet;
pub mod linalg;
pub mod metrics;
pub mod stein;
