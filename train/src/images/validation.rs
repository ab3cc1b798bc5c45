//! The validation curve of conditional image models: classification
//! accuracy by lowest energy on training images held out of training
//! (`data.validation`), recorded while training into `<run>/validation.json`
//! and drawn as `<run>/validation.svg`.

use std::path::Path;

use anyhow::Result;
use candle_core::Tensor;
use ebm_core::EnergyFunction;
use serde::{Deserialize, Serialize};

use super::eval::class_energies;
use super::restore::argmin;
use crate::plot::{line_chart, Axes, Line, BLUE};

pub const CURVE: &str = "validation.json";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: u64,
    pub accuracy: f64,
}

/// Share of `x: [N, D]` whose lowest-energy label is `labels[i]`.
pub fn accuracy(model: &dyn EnergyFunction, x: &Tensor, labels: &[u8]) -> Result<f64> {
    let hits = class_energies(model, x)?
        .iter()
        .zip(labels)
        .filter(|(e, &l)| argmin(e.as_slice()) == usize::from(l))
        .count();
    Ok(hits as f64 / labels.len().max(1) as f64)
}

/// The points recorded in `run` so far (none when there is no curve).
pub fn load_curve(run: &Path) -> Result<Vec<ValidationPoint>> {
    match std::fs::read(run.join(CURVE)) {
        Ok(b) => Ok(serde_json::from_slice(&b)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Adds `p` to `run`'s curve (replacing points from a resumed run's later
/// steps), written atomically, and redraws the figure.
pub fn record(run: &Path, p: ValidationPoint) -> Result<()> {
    let mut curve = load_curve(run)?;
    curve.retain(|q| q.step < p.step);
    curve.push(p);
    let tmp = run.join(format!("{CURVE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&curve)?)?;
    std::fs::rename(&tmp, run.join(CURVE))?;
    let x: Vec<f64> = curve.iter().map(|q| q.step as f64).collect();
    let y: Vec<f64> = curve.iter().map(|q| 100.0 * q.accuracy).collect();
    line_chart(
        &run.join("validation.svg"),
        &[Line {
            name: "held-out training digits",
            color: BLUE,
            x: &x,
            y: &y,
            band: None,
            thin: false,
        }],
        &Axes {
            title: "Classification by lowest conditional energy during training",
            x: "training step",
            y: "accuracy (%)",
        },
    )
}
