//! `ebm-train`: offline training of energy-based models.
//!
//! - [`toy`]: the 2-D ring of Gaussians, landscapes and composition.
//! - [`figure`]: PNG canvases (image grids, heat maps, histograms).
//! - [`plot`]: charts with axes, labels, legends and titles (plotters, SVG).

pub mod bench_workloads;
pub mod config_file;
pub mod figure;
pub mod images;
pub mod plot;
pub mod toy;
pub mod trajectory;
