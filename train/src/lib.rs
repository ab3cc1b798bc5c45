//! `ebm-train`: offline training and evaluation of energy-based models, on
//! `ebm-core` (models, sampler, trainer) and `ebm-msgs` (recordings). The
//! `ebm-train` binary's subcommands (`src/commands/`) map onto the modules:
//!
//! - [`trajectory`]: robot dynamics from recordings: data and normalisation,
//!   training the EBM and the FC baseline, OOD calibration of the export,
//!   tuning on a validation split, evaluation over the horizon and its
//!   report, summaries over seeds.
//! - [`images`]: image EBMs (MNIST): datasets, training, sampling,
//!   restoration, OOD scores, classification; picture grids (`grid`).
//! - [`toy`]: the 2-D ring of Gaussians, landscapes and composition.
//! - [`plot`]: every chart (plotters, SVG: axes with labels and units,
//!   ticks, legends, titles).
//! - [`bench_workloads`]: the benchmark workloads timed against the
//!   PyTorch peer (`ebm-train bench`).
//! - [`device_check`]: a device's arithmetic against the CPU's fused
//!   kernels (`ebm-train device-check`).
//! - [`config_file`]: parsing and validating the TOML configs.

pub mod bench_workloads;
pub mod config_file;
pub mod continual;
pub mod device_check;
pub mod dsprites;
pub mod images;
pub mod plot;
pub mod toy;
pub mod trajectory;
