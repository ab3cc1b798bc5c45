//! `ebm-train dsprites compose`: sampling sprites of given latents by
//! summing the concept models' energies (the paper's Section 7, Figure 15),
//! against the single model conditioned on every latent, on seen and
//! held-out combinations (Figure 16), measured by the latent reader.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::{EnergyFunction, EnergyTerm, LangevinConfig, LangevinSampler, Rng};
use serde::Serialize;

use super::data::{draw_latents, Concept, Holdout};
use super::reader::{images, LatentErrors, LatentReader};
use super::render::{Latents, SIZE};
use crate::images::eval::load_latest;
use crate::images::grid::image_grid;

/// The concept models to sum (or the one baseline model), loaded.
pub struct Models {
    pub models: Vec<(Concept, ebm_core::ResNetEnergy)>,
    /// Each model's weight in the sum (1 for all if empty).
    pub weights: Vec<f64>,
}

impl Models {
    /// The latest checkpoint of each concept's run under `out`.
    pub fn load(out: &Path, concepts: &[Concept], device: &Device) -> Result<Self> {
        let dirs: Vec<_> = concepts
            .iter()
            .map(|&c| (c, super::train::run_dir(out, c)))
            .collect();
        Self::load_dirs(&dirs, device)
    }

    /// The latest checkpoint in each directory, conditioned on its concept.
    pub fn load_dirs(dirs: &[(Concept, PathBuf)], device: &Device) -> Result<Self> {
        let models = dirs
            .iter()
            .map(|(c, dir)| {
                let m = load_latest(dir, device)
                    .with_context(|| format!("the {c:?} model in {}", dir.display()))?;
                Ok((*c, m.model))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            models,
            weights: Vec::new(),
        })
    }

    /// Samples of `latents` from uniform noise in `settings.start` (where
    /// training's chains start), every model's energy under its own
    /// conditioning summed.
    pub fn sample(
        &self,
        latents: &[Latents],
        settings: &ComposeSettings,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let n = latents.len();
        let conds = self
            .models
            .iter()
            .map(|(c, _)| {
                let mut v = Vec::new();
                for l in latents {
                    c.encode(l, &mut v);
                }
                Tensor::from_vec(v, (n, c.dim()), device)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let terms: Vec<EnergyTerm> = self
            .models
            .iter()
            .zip(&conds)
            .enumerate()
            .map(|(i, ((_, m), c))| {
                let w = self.weights.get(i).copied().unwrap_or(1.0);
                EnergyTerm::new(m as &dyn EnergyFunction, Some(c.clone())).weighted(w)
            })
            .collect();
        let [lo, hi] = settings.start;
        let start = rng.uniform_vec(n * SIZE * SIZE, lo, hi);
        let x0 = Tensor::from_vec(start, (n, SIZE * SIZE), device)?;
        Ok(LangevinSampler::new(settings.langevin.clone())?.sample(&terms, &x0, None, rng)?)
    }
}

/// The latent errors of one sampler on one set of combinations.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeRow {
    pub sampler: String,
    pub combinations: String,
    pub errors: LatentErrors,
}

/// Draws `n` latents: seen combinations, or only held-out ones.
pub fn combinations(n: usize, holdout: Holdout, held_out: bool, rng: &mut Rng) -> Vec<Latents> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let l = draw_latents(rng, None);
        if holdout.holds_out(&l) == held_out {
            out.push(l);
        }
    }
    out
}

/// A picture of rows of `[truth, samples...]` images, 64 x 64 each.
pub fn comparison_grid(rows: &[&Tensor], path: &Path) -> Result<()> {
    let n = rows[0].dim(0)?;
    let mut values = Vec::with_capacity(rows.len() * n * SIZE * SIZE);
    for r in rows {
        values.extend(r.flatten_all()?.to_vec1::<f32>()?);
    }
    image_grid(&values, rows.len() * n, 1, SIZE, SIZE, n, 2).save_png(path)
}

/// One sampler of `evaluate`.
pub struct Sampler<'a> {
    pub name: &'a str,
    /// The models whose energies it sums.
    pub models: &'a Models,
    /// Whether it draws Langevin noise of its own, so that adding it
    /// leaves the other samplers' draws (and the combinations) unchanged.
    pub own_noise: bool,
}

/// How samples are drawn and how many.
pub struct ComposeSettings {
    pub holdout: Holdout,
    pub langevin: LangevinConfig,
    /// The uniform noise chains start from, `[lo, hi]`.
    pub start: [f64; 2],
    /// Combinations per set (seen, held out).
    pub n: usize,
}

/// Samples `n` seen and `n` held-out combinations with each of
/// `samplers`, reads them back, and draws `compose_{seen,held-out}.png`
/// (rows: truth, then each sampler) into `out`.
pub fn evaluate(
    samplers: &[Sampler],
    reader: &LatentReader,
    settings: &ComposeSettings,
    out: &Path,
    device: &Device,
) -> Result<Vec<ComposeRow>> {
    let (holdout, n) = (settings.holdout, settings.n);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut rng = Rng::derived(0, "dsprites compose");
    let mut rows = Vec::new();
    for held_out in [false, true] {
        let want = combinations(n, holdout, held_out, &mut rng);
        let truth = images(&want, device)?;
        let which = if held_out { "held-out" } else { "seen" };
        rows.push(ComposeRow {
            sampler: "true renderings (the reader's own error)".into(),
            combinations: which.into(),
            errors: reader.errors(&truth, &want)?,
        });
        rows.push(ComposeRow {
            sampler: "blank images (nothing drawn)".into(),
            combinations: which.into(),
            errors: reader.errors(&truth.zeros_like()?, &want)?,
        });
        let mut pictures = vec![truth.clone()];
        for sampler in samplers {
            let x = if sampler.own_noise {
                let label = format!("dsprites compose {} {which}", sampler.name);
                let mut own = Rng::derived(0, &label);
                sampler.models.sample(&want, settings, &mut own, device)?
            } else {
                sampler.models.sample(&want, settings, &mut rng, device)?
            };
            rows.push(ComposeRow {
                sampler: sampler.name.into(),
                combinations: which.into(),
                errors: reader.errors(&x, &want)?,
            });
            pictures.push(x);
        }
        let firsts: Vec<Tensor> = pictures
            .iter()
            .map(|p| p.narrow(0, 0, n.min(10)))
            .collect::<candle_core::Result<_>>()?;
        comparison_grid(
            &firsts.iter().collect::<Vec<_>>(),
            &out.join(format!("compose_{which}.png")),
        )?;
    }
    Ok(rows)
}

/// The paper's Figure 15: the same seen combinations sampled by the sum of
/// the first 1, 2, ... of `concepts`' models (loaded from `run`), each
/// read back; `compose_progressive.png` has rows truth, then one row per
/// sum.
pub fn progressive(
    run: &Path,
    concepts: &[Concept],
    reader: &LatentReader,
    settings: &ComposeSettings,
    out: &Path,
    device: &Device,
) -> Result<Vec<ComposeRow>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut rng = Rng::derived(0, "dsprites progressive");
    let n = settings.n;
    let want = combinations(n, settings.holdout, false, &mut rng);
    let shown = n.min(10);
    let mut pictures = vec![images(&want, device)?.narrow(0, 0, shown)?];
    let mut rows = Vec::new();
    for k in 1..=concepts.len() {
        let models = Models::load(run, &concepts[..k], device)?;
        let x = models.sample(&want, settings, &mut rng, device)?;
        let names: Vec<String> = concepts[..k]
            .iter()
            .map(|c| format!("{c:?}").to_lowercase())
            .collect();
        rows.push(ComposeRow {
            sampler: format!("composed: {}", names.join(" + ")),
            combinations: "seen".into(),
            errors: reader.errors(&x, &want)?,
        });
        pictures.push(x.narrow(0, 0, shown)?);
    }
    comparison_grid(
        &pictures.iter().collect::<Vec<_>>(),
        &out.join("compose_progressive.png"),
    )?;
    Ok(rows)
}
