//! Statistics shared by training, evaluation and serving: the Frechet
//! distance ([`frechet`]) and forecast errors over a horizon
//! ([`forecast_error`]), AUROC and percentiles ([`metrics`]), small dense
//! linear algebra ([`linalg`]) and the Stein window test for OOD scores
//! ([`stein`]).

pub mod forecast_error;
pub mod frechet;
pub mod linalg;
pub mod metrics;
pub mod stein;
