//! Training, sampling and figures of the toy run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::{EnergyFunction, EnergyModel, EnergyTerm, LangevinSampler, MlpEnergy, Rng, Trainer};
use serde::Serialize;

use super::{EvalConfig, ModeReport, RingMixture, ToyConfig};
use crate::plot::{energy_maps, EnergyMap};

/// Energy grid cells per side of a landscape panel.
const GRID: usize = 64;

/// Trains one energy on `ring` with the toy's trainer settings (seed offset
/// by `seed_offset`), checkpointing into `run_dir` when given.
pub fn train_ring_model(
    cfg: &ToyConfig,
    ring: &RingMixture,
    seed_offset: u64,
    run_dir: Option<&Path>,
    device: &Device,
) -> Result<Trainer<MlpEnergy>> {
    let mut tcfg = cfg.trainer.clone();
    tcfg.seed = tcfg.seed.wrapping_add(seed_offset);
    let mut trainer = Trainer::<MlpEnergy>::new(cfg.model.clone(), tcfg, 2, 0, device)?;
    let mut last = None;
    trainer.train(ring, cfg.steps, run_dir, |s| {
        if s.step % 250 == 0 {
            tracing::info!(
                step = s.step,
                loss = s.loss,
                e_pos = s.e_pos,
                e_neg = s.e_neg,
                "toy training"
            );
        }
        last = Some(*s);
    })?;
    if let Some(s) = last {
        tracing::info!(?s, "toy model trained");
    }
    Ok(trainer)
}

/// Draws `cfg.samples` Langevin samples of the summed energy from uniform
/// noise in the clamp box (or `[-box_half, box_half]^2`).
pub fn sample_terms(
    terms: &[EnergyTerm],
    cfg: &EvalConfig,
    box_half: f64,
    seed: u64,
    device: &Device,
) -> Result<Vec<[f64; 2]>> {
    let sampler = LangevinSampler::new(cfg.langevin.clone())?;
    let mut rng = Rng::derived(seed, "toy-eval");
    let (lo, hi) = cfg
        .langevin
        .clamp
        .map_or((-box_half, box_half), |[a, b]| (a, b));
    let x0 = Tensor::from_vec(
        rng.uniform_vec(2 * cfg.samples, lo, hi),
        (cfg.samples, 2),
        device,
    )?;
    let x = sampler.sample(terms, &x0, None, &mut rng)?;
    let rows: Vec<Vec<f32>> = x.to_vec2()?;
    Ok(rows
        .into_iter()
        .map(|r| [f64::from(r[0]), f64::from(r[1])])
        .collect())
}

/// Summed energy on a `n x n` grid over `[-half, half]^2`, row 0 at the top.
pub fn energy_grid(terms: &[EnergyTerm], half: f64, n: usize, device: &Device) -> Result<Vec<f64>> {
    let mut pts = Vec::with_capacity(2 * n * n);
    for r in 0..n {
        let y = half - 2.0 * half * (r as f64 + 0.5) / n as f64;
        for c in 0..n {
            let x = -half + 2.0 * half * (c as f64 + 0.5) / n as f64;
            pts.push(x as f32);
            pts.push(y as f32);
        }
    }
    let x = Tensor::from_vec(pts, (n * n, 2), device)?;
    let e = ebm_core::total_energy(terms, &x)?;
    Ok(e.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
}

/// One landscape panel: the summed energy of `terms` on a grid, the ring's
/// modes (3 sigma circles) and the samples.
struct Panel {
    title: String,
    energy: Vec<f64>,
    samples: Vec<[f64; 2]>,
}

impl Panel {
    fn new(
        title: &str,
        terms: &[EnergyTerm],
        samples: &[[f64; 2]],
        half: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            title: title.into(),
            energy: energy_grid(terms, half, GRID, device)?,
            samples: samples.to_vec(),
        })
    }
}

/// `panels` side by side with the ring's modes, as an SVG at `path`.
fn draw(path: &Path, title: &str, panels: &[Panel], ring: &RingMixture, half: f64) -> Result<()> {
    let circles: Vec<(f64, f64, f64)> = (0..ring.modes)
        .map(|i| {
            let c = ring.center(i);
            (c[0], c[1], 3.0 * ring.sigma)
        })
        .collect();
    let maps: Vec<EnergyMap> = panels
        .iter()
        .map(|p| EnergyMap {
            title: &p.title,
            values: &p.energy,
            n: GRID,
            half,
            circles: &circles,
            points: &p.samples,
        })
        .collect();
    energy_maps(path, title, &maps)
}

/// Figures of a whole toy run.
#[derive(Debug, Clone, Serialize)]
pub struct ToyOutcome {
    /// Samples of the energy trained on every mode.
    pub ring: ModeReport,
    pub subset_a: ModeReport,
    pub subset_b: ModeReport,
    /// Samples of `E_a + E_b`.
    pub sum: ModeReport,
    pub intersection: Vec<usize>,
    /// Fraction of `E_a + E_b` samples within 3 sigma of an intersection mode.
    pub sum_in_intersection: f64,
    pub train_seconds: f64,
    pub figures: Vec<PathBuf>,
}

pub struct ToyRun {
    pub cfg: ToyConfig,
    pub device: Device,
}

impl ToyRun {
    /// Trains the ring model and the two subset models under `out/`, samples
    /// them, writes `landscape.svg`, `composition.svg` and `report.json`.
    pub fn run(&self, out: &Path) -> Result<ToyOutcome> {
        let cfg = &self.cfg;
        let d = &cfg.data;
        let ring = RingMixture::new(d.modes, d.radius, d.sigma);
        let half = cfg
            .eval
            .langevin
            .clamp
            .map_or(d.radius * 1.5, |[a, b]| a.abs().max(b.abs()));
        let t0 = Instant::now();
        let full = train_ring_model(cfg, &ring, 0, Some(&out.join("ring")), &self.device)?;
        let a = train_ring_model(
            cfg,
            &ring.subset(&d.subset_a),
            1,
            Some(&out.join("subset_a")),
            &self.device,
        )?;
        let b = train_ring_model(
            cfg,
            &ring.subset(&d.subset_b),
            2,
            Some(&out.join("subset_b")),
            &self.device,
        )?;
        let train_seconds = t0.elapsed().as_secs_f64();

        let (mf, ma, mb) = (
            full.model().frozen(),
            a.model().frozen(),
            b.model().frozen(),
        );
        let t_full = [EnergyTerm::new(&mf as &dyn EnergyFunction, None)];
        let t_a = [EnergyTerm::new(&ma as &dyn EnergyFunction, None)];
        let t_b = [EnergyTerm::new(&mb as &dyn EnergyFunction, None)];
        let t_sum = [
            EnergyTerm::new(&ma as &dyn EnergyFunction, None),
            EnergyTerm::new(&mb as &dyn EnergyFunction, None),
        ];
        let seed = cfg.trainer.seed;
        let s_full = sample_terms(&t_full, &cfg.eval, half, seed, &self.device)?;
        let s_a = sample_terms(&t_a, &cfg.eval, half, seed + 1, &self.device)?;
        let s_b = sample_terms(&t_b, &cfg.eval, half, seed + 2, &self.device)?;
        let s_sum = sample_terms(&t_sum, &cfg.eval, half, seed + 3, &self.device)?;

        let dev = &self.device;
        let landscape = out.join("landscape.svg");
        draw(
            &landscape,
            "Learned energy of the ring (dark = low), its modes (3 sigma) and samples",
            &[Panel::new(
                "E, trained on every mode",
                &t_full,
                &s_full,
                half,
                dev,
            )?],
            &ring,
            half,
        )?;
        let composition = out.join("composition.svg");
        draw(
            &composition,
            "Composition: E_A + E_B samples where both subsets' modes meet",
            &[
                Panel::new("E_A (subset A)", &t_a, &s_a, half, dev)?,
                Panel::new("E_B (subset B)", &t_b, &s_b, half, dev)?,
                Panel::new("E_A + E_B", &t_sum, &s_sum, half, dev)?,
            ],
            &ring,
            half,
        )?;

        let intersection = cfg.intersection();
        let sum = ModeReport::of(&s_sum, &ring);
        let outcome = ToyOutcome {
            ring: ModeReport::of(&s_full, &ring),
            subset_a: ModeReport::of(&s_a, &ring),
            subset_b: ModeReport::of(&s_b, &ring),
            sum_in_intersection: sum.fraction_in(&intersection),
            sum,
            intersection,
            train_seconds,
            figures: vec![landscape, composition],
        };
        let report = out.join("report.json");
        std::fs::write(&report, serde_json::to_vec_pretty(&outcome)?)
            .with_context(|| format!("writing {}", report.display()))?;
        Ok(outcome)
    }
}
