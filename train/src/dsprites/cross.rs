//! `ebm-train dsprites cross-*`: the paper's zero-shot cross-product
//! generalisation (Section 7, Figure 16) as the paper sets it up
//! (`cross_data`): independent energies trained on D1 (sizes at the
//! centre) and D2 (the smallest square everywhere), summed to ask for the
//! sizes everywhere; D2 and D3 (shapes at the centre) for the shapes
//! everywhere; against one model conditioned on both latents trained on
//! both sets, each read back by the latent reader.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::Rng;
use serde::Serialize;

use super::compose::{comparison_grid, ComposeRow, ComposeSettings, Models};
pub use super::cross_config::{CrossConfig, CrossModel, Panel};
use super::cross_data::{Space, Subset, SubsetData};
use super::cross_scores::{panel_scores, PanelScores};
use super::data::Holdout;
use super::finetune::{finetune_panel, finetuned_dir};
use super::reader::{images, latent_errors, LatentReader};
use super::render::Latents;
use super::train::train_model;

/// One sampler's errors on one panel, and its scores (`cross_scores`).
#[derive(Debug, Clone, Serialize)]
pub struct CrossRow {
    #[serde(flatten)]
    pub row: ComposeRow,
    #[serde(flatten)]
    pub scores: PanelScores,
}

/// Which draw of combinations: settings are chosen on `Validation`,
/// reported on `Test` (the same kinds of novel combination, other draws).
/// `Trained` asks for the combinations the composed models were trained
/// on (each of their sets equally often), to tell a model that did not
/// learn a latent from a sum that does not generalise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Validation,
    Test,
    Trained,
}

impl Split {
    fn suffix(self) -> &'static str {
        match self {
            Split::Validation => " validation",
            Split::Test => "",
            Split::Trained => " trained",
        }
    }

    /// `n` combinations for this split: from the `trained` sets for
    /// `Trained`, else of `space` and in none of them.
    fn asked(
        self,
        space: Space,
        n: usize,
        trained: &[Subset],
        rng: &mut Rng,
    ) -> Result<Vec<Latents>> {
        match self {
            Split::Trained => {
                anyhow::ensure!(!trained.is_empty(), "no training set to ask from");
                Ok((0..n)
                    .map(|_| trained[rng.below(trained.len())].draw(rng))
                    .collect())
            }
            Split::Validation | Split::Test => space.novel(n, trained, rng),
        }
    }
}

/// Trains (or resumes) every model to `cfg.steps`, each in `out/<name>`,
/// then fine-tunes the sums of the panels that ask for it.
pub fn train_all(cfg: &CrossConfig, out: &Path, device: &Device) -> Result<()> {
    for m in &cfg.models {
        let data = SubsetData {
            concept: m.concept,
            subsets: m.data.clone(),
        };
        let dir = out.join(&m.name);
        train_model(
            &dir,
            &m.name,
            &cfg.network(m),
            &cfg.trainer,
            &data,
            cfg.steps,
            device,
        )?;
    }
    for p in &cfg.panels {
        if let Some(steps) = p.finetune {
            finetune_panel(cfg, p, steps, out, device)?;
        }
    }
    Ok(())
}

/// Samples every panel's novel combinations by its composed models'
/// summed energy, by each composed model alone, and by each baseline;
/// reads them back; draws `cross_<panel>.png` (rows: truth, composed,
/// baselines) into `figures`.
pub fn evaluate(
    cfg: &CrossConfig,
    out: &Path,
    reader: &LatentReader,
    n: usize,
    split: Split,
    figures: &Path,
    device: &Device,
) -> Result<Vec<CrossRow>> {
    std::fs::create_dir_all(figures).with_context(|| format!("creating {}", figures.display()))?;
    let settings = ComposeSettings {
        holdout: Holdout { large_scales: 0 },
        langevin: cfg.trainer.langevin.clone(),
        start: [cfg.trainer.replay.init_low, cfg.trainer.replay.init_high],
        n,
    };
    let mut rows = Vec::new();
    for p in &cfg.panels {
        let mut rng = Rng::derived(0, &format!("dsprites cross {}{}", p.name, split.suffix()));
        let want = split.asked(p.space, n, &cfg.trained_sets(p)?, &mut rng)?;
        let truth = images(&want, device)?;
        let row = |sampler: String, x: &Tensor| -> Result<CrossRow> {
            let readings = reader.read(x)?;
            Ok(CrossRow {
                row: ComposeRow {
                    sampler,
                    combinations: p.name.clone(),
                    errors: latent_errors(&readings, &want),
                },
                scores: panel_scores(&readings, &want),
            })
        };
        rows.push(row(
            "true renderings (the reader's own error)".into(),
            &truth,
        )?);
        rows.push(row(
            "blank images (nothing drawn)".into(),
            &truth.zeros_like()?,
        )?);
        let mut pictures = vec![truth.clone()];
        let mut composed = cfg.load_models(out, &p.composed, device)?;
        composed.weights = p.weights.clone().unwrap_or_default();
        let x = composed.sample(&want, &settings, &mut rng, device)?;
        rows.push(row(format!("composed: {}", p.composed.join(" + ")), &x)?);
        pictures.push(x);
        if p.finetune.is_some() {
            let dir = finetuned_dir(out, p);
            let dirs = p
                .composed
                .iter()
                .map(|n| Ok((cfg.model_named(n)?.concept, dir.join(n))))
                .collect::<Result<Vec<_>>>()?;
            let mut tuned = Models::load_dirs(&dirs, device)?;
            tuned.weights = p.weights.clone().unwrap_or_default();
            // Its own noise, so the other samplers' draws stay as without it.
            let mut own = Rng::derived(
                0,
                &format!("dsprites cross {} fine-tuned{}", p.name, split.suffix()),
            );
            let x = tuned.sample(&want, &settings, &mut own, device)?;
            let name = format!(
                "composed, fine-tuned as one sum: {}",
                p.composed.join(" + ")
            );
            rows.push(row(name, &x)?);
            pictures.push(x);
        }
        for name in &p.baselines {
            let x = cfg
                .load_models(out, std::slice::from_ref(name), device)?
                .sample(&want, &settings, &mut rng, device)?;
            rows.push(row(format!("baseline: {name}"), &x)?);
            pictures.push(x);
        }
        if p.composed.len() > 1 {
            for name in &p.composed {
                let x = cfg
                    .load_models(out, std::slice::from_ref(name), device)?
                    .sample(&want, &settings, &mut rng, device)?;
                rows.push(row(format!("{name} alone"), &x)?);
            }
        }
        let firsts: Vec<Tensor> = pictures
            .iter()
            .map(|x| x.narrow(0, 0, n.min(10)))
            .collect::<candle_core::Result<_>>()?;
        comparison_grid(
            &firsts.iter().collect::<Vec<_>>(),
            &figures.join(format!("cross_{}.png", p.name)),
        )?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsprites::render::POSITIONS;

    /// The trained split asks only for the sets' own combinations, from
    /// every set; the test split never does.
    #[test]
    fn the_trained_split_asks_for_the_training_sets() -> Result<()> {
        let sets = [Subset::CentralShapes, Subset::SmallPositions];
        let mut rng = Rng::new(3);
        let trained = Split::Trained.asked(Space::ShapePosition, 300, &sets, &mut rng)?;
        for set in sets {
            let k = trained.iter().filter(|l| set.contains(l)).count();
            assert!(k > 100, "{set:?}: {k} of 300");
        }
        assert!(trained.iter().all(|l| sets.iter().any(|s| s.contains(l))));
        let novel = Split::Test.asked(Space::ShapePosition, 300, &sets, &mut rng)?;
        assert!(!novel.iter().any(|l| sets.iter().any(|s| s.contains(l))));
        assert!(Split::Trained
            .asked(Space::ShapePosition, 3, &[], &mut rng)
            .is_err());
        Ok(())
    }

    /// True renderings are hits far more often than the same images asked
    /// for another place or size, which are almost never hits; asked for
    /// shapes, their read shapes carry most of the asked shape's bit, blank
    /// images none.
    #[test]
    fn true_renderings_score_and_moved_or_blank_ones_do_not() -> Result<()> {
        let dev = Device::Cpu;
        let reader = LatentReader::train(&[256], 1500, 1, &dev)?;
        let want = Space::SizePosition.novel(200, &[], &mut Rng::new(8))?;
        let x = images(&want, &dev)?;
        let scores =
            |want: &[Latents]| -> Result<PanelScores> { Ok(panel_scores(&reader.read(&x)?, want)) };
        let truth = scores(&want)?;
        let moved: Vec<Latents> = want
            .iter()
            .map(|l| Latents {
                x: (l.x + POSITIONS / 2) % POSITIONS,
                ..*l
            })
            .collect();
        let resized: Vec<Latents> = want
            .iter()
            .map(|l| Latents {
                scale: (l.scale + 3) % 6,
                ..*l
            })
            .collect();
        let (moved, resized) = (scores(&moved)?, scores(&resized)?);
        eprintln!("truth {truth:?}, moved {moved:?}, resized {resized:?}");
        assert!(truth.hits > 0.08, "truth {truth:?}");
        assert!(truth.placed_and_sized >= truth.hits);
        for s in [moved, resized] {
            assert!(s.hits < 0.02 && s.placed_and_sized < 0.02, "{s:?}");
        }

        let want = Space::ShapePosition.novel(200, &[], &mut Rng::new(9))?;
        let x = images(&want, &dev)?;
        let truth = panel_scores(&reader.read(&x)?, &want).shape_bits;
        let blank = panel_scores(&reader.read(&x.zeros_like()?)?, &want).shape_bits;
        eprintln!("shape bits: truth {truth}, blank {blank}");
        assert!(truth > 0.4 && blank < 1e-9, "truth {truth}, blank {blank}");
        Ok(())
    }
}
