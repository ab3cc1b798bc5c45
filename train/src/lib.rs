//! `ebm-train`: offline training of energy-based models.
//!
//! - [`toy`]: the 2-D ring of Gaussians, landscapes and composition.
//! - [`figure`]: PNG figures.
//! - [`svg_chart`]: line charts with axes, labels and legends, as SVG.

pub mod bench;
pub mod config_file;
pub mod figure;
pub mod images;
pub mod plot;
pub mod svg_chart;
pub mod toy;
pub mod trajectory;
