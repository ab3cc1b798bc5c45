//! `ebm-train images robustness`: accuracy under PGD against the budget
//! (the paper's Figure 8) for the EBM, the EBM with the paper's defence
//! (attacked as the official code attacks it, through the undefended
//! energy), the same defence under an adaptive attack (BPDA with
//! expectation over the refinement's noise), and the softmax classifier of
//! the same network; `robustness.json` and `robustness.svg`.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use ebm_core::Rng;
use serde::{Deserialize, Serialize};

use super::attack::{
    accuracy_of, defended_grad, loss_and_grad, pgd, predict, Budget, Defence, Pgd,
};
use super::config::ImageConfig;
use super::dataset::ImageData;
use super::eval::load_latest;
use super::loaders::Split;
use crate::plot::{panels, Axes, Line, BLUE, GREEN, ORANGE, RED};
use plotters::prelude::RGBColor;

/// One curve: accuracy at each budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    pub name: String,
    pub norm: String,
    pub eps: Vec<f64>,
    pub accuracy: Vec<f64>,
}

/// What `robustness` measures on.
#[derive(Debug, Clone)]
pub struct RobustnessPlan {
    pub images: usize,
    pub pgd_steps: usize,
    pub linf: Vec<f64>,
    pub l2: Vec<f64>,
    pub defence_steps: usize,
    pub max_change: f64,
    pub eot_samples: usize,
}

/// Every curve of the study; `ebm_run` a conditional EBM, `softmax_run` the
/// same network trained by `images softmax`.
pub fn robustness(
    cfg: &ImageConfig,
    base: &Path,
    ebm_run: &Path,
    softmax_run: &Path,
    out: &Path,
    plan: &RobustnessPlan,
    device: &Device,
) -> Result<Vec<Curve>> {
    let ebm = load_latest(ebm_run, device)?;
    let soft = load_latest(softmax_run, device)?;
    anyhow::ensure!(
        ebm.conditional && soft.conditional,
        "both models must be conditional"
    );
    let test = cfg.load(base, Split::Test)?.truncated(plan.images);
    let labels = test.labels.clone();
    let data = ImageData {
        set: test,
        conditional: true,
    };
    let x = data.clean(&(0..labels.len()).collect::<Vec<_>>(), device)?;
    let t = cfg.trainer.label_temperature;
    let mut lc = cfg.eval.langevin.clone();
    lc.steps = plan.defence_steps;
    let defence = Defence {
        langevin: lc,
        max_change: plan.max_change,
    };
    let mut rng = Rng::derived(cfg.trainer.seed, "robustness");
    let mut curves = Vec::new();
    for (norm, grid) in [("L-inf", &plan.linf), ("L2", &plan.l2)] {
        let mut acc = vec![Vec::new(); 4];
        for &eps in grid {
            let budget = match norm {
                "L-inf" => Budget::Linf { eps },
                _ => Budget::L2 { eps },
            };
            let attack = Pgd {
                budget,
                steps: if eps > 0.0 { plan.pgd_steps } else { 0 },
                alpha: 2.5 * eps / plan.pgd_steps.max(1) as f64,
            };
            // The EBM, and the defence as the official code attacks it.
            let adv = pgd(&x, &attack, &mut rng, |z, _| {
                Ok(loss_and_grad(&ebm.model, z, &labels, t)?.1)
            })?;
            acc[0].push(accuracy_of(
                &predict(&ebm.model, &adv, None, &mut rng)?,
                &labels,
            ));
            acc[1].push(accuracy_of(
                &predict(&ebm.model, &adv, Some(&defence), &mut rng)?,
                &labels,
            ));
            // The adaptive attack, through the defence.
            let adv = pgd(&x, &attack, &mut rng, |z, r| {
                defended_grad(&ebm.model, z, &labels, t, &defence, plan.eot_samples, r)
            })?;
            acc[2].push(accuracy_of(
                &predict(&ebm.model, &adv, Some(&defence), &mut rng)?,
                &labels,
            ));
            // The softmax classifier on its own gradient.
            let adv = pgd(&x, &attack, &mut rng, |z, _| {
                Ok(loss_and_grad(&soft.model, z, &labels, t)?.1)
            })?;
            acc[3].push(accuracy_of(
                &predict(&soft.model, &adv, None, &mut rng)?,
                &labels,
            ));
            tracing::info!(
                norm,
                eps,
                ebm = acc[0].last(),
                defended = acc[1].last(),
                adaptive = acc[2].last(),
                softmax = acc[3].last(),
                "robustness"
            );
        }
        let names = [
            "EBM",
            "EBM + defence",
            "EBM + defence, adaptive attack",
            "softmax, same network",
        ];
        for (name, a) in names.iter().zip(acc) {
            curves.push(Curve {
                name: (*name).into(),
                norm: norm.into(),
                eps: grid.clone(),
                accuracy: a,
            });
        }
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("robustness.json"),
        serde_json::to_vec_pretty(&curves)?,
    )?;
    draw(&curves, &out.join("robustness.svg"))?;
    Ok(curves)
}

/// Redraws `out/robustness.svg` from the curves stored in
/// `out/robustness.json` (no attack is run).
pub fn redraw(out: &Path) -> Result<Vec<Curve>> {
    let curves: Vec<Curve> = serde_json::from_slice(&std::fs::read(out.join("robustness.json"))?)?;
    draw(&curves, &out.join("robustness.svg"))?;
    Ok(curves)
}

fn draw(curves: &[Curve], path: &Path) -> Result<()> {
    let colours = [BLUE, GREEN, RED, ORANGE];
    let pct: Vec<Vec<f64>> = curves
        .iter()
        .map(|c| c.accuracy.iter().map(|a| 100.0 * a).collect())
        .collect();
    let key: Vec<(&str, RGBColor)> = curves
        .iter()
        .filter(|c| c.norm == "L-inf")
        .zip(colours)
        .map(|(c, col)| (c.name.as_str(), col))
        .collect();
    let mut charts = Vec::new();
    for (norm, title) in [
        ("L-inf", "PGD, L-inf budget (pixels in [0, 1])"),
        ("L2", "PGD, L2 budget (per image)"),
    ] {
        let lines: Vec<Line> = curves
            .iter()
            .zip(&pct)
            .filter(|(c, _)| c.norm == norm)
            .zip(colours)
            .map(|((c, y), color)| Line {
                name: &c.name,
                color,
                x: &c.eps,
                y,
                band: None,
                thin: false,
            })
            .collect();
        let axes = Axes {
            title,
            x: "attack budget epsilon",
            y: "test accuracy (%)",
        };
        charts.push((lines, axes));
    }
    panels(
        path,
        "Adversarial robustness of classification by lowest energy",
        &key,
        &charts,
        2,
    )
}
