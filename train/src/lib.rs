//! `ebm-train`: offline training of energy-based models.
//!
//! - [`toy`]: the 2-D ring of Gaussians, landscapes and composition.
//! - [`figure`]: PNG figures.

pub mod bench;
pub mod config_file;
pub mod figure;
pub mod images;
pub mod toy;
pub mod trajectory;
