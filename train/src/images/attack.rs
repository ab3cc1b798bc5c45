//! Adversarial attacks on classification by lowest conditional energy (the
//! paper's Section 4.3, Figure 8): PGD (Madry et al.) on the logits
//! `-E(x, y) / T`, under an L-inf or L2 budget, and the paper's defence
//! (Langevin refinement of the attacked image under every label).
//!
//! The gradient of the cross-entropy with respect to the image is
//! `(dE_y/dx - sum_k p_k dE_k/dx) / T` (`y` the true label, `p` the
//! softmax), from one energy-and-gradient pass per label.

use anyhow::Result;
use candle_core::Tensor;
use ebm_core::energy::energy_and_grad;
use ebm_core::{EnergyFunction, EnergyTerm, LangevinConfig, LangevinSampler, Rng};

use super::dataset::{ImageData, NUM_CLASSES};

/// An attack's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// `|x' - x|_inf <= eps`, steps of `alpha * sign(g)`.
    Linf { eps: f64 },
    /// `|x' - x|_2 <= eps` per image, steps of `alpha * g / |g|_2`.
    L2 { eps: f64 },
}

/// PGD settings: `steps` steps of size `alpha` from a random start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pgd {
    pub budget: Budget,
    pub steps: usize,
    pub alpha: f64,
}

/// The paper's defence: from the attacked image, `langevin` steps under each
/// label, kept within `max_change` (L-inf) of it; then the lowest energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Defence {
    pub langevin: LangevinConfig,
    pub max_change: f64,
}

/// Each image's energy under each label, `[n][10]`.
type ClassEnergies = Vec<[f32; NUM_CLASSES]>;

/// Energies `[n][10]` and input gradients `[10][n * d]`, label `k` taken
/// at `points[k]` (or at `points[0]` for every label when there is one).
fn class_energy_grads(
    model: &dyn EnergyFunction,
    points: &[&Tensor],
) -> Result<(ClassEnergies, Vec<Vec<f32>>)> {
    let n = points[0].dim(0)?;
    let mut e = vec![[0f32; NUM_CLASSES]; n];
    let mut g = Vec::with_capacity(NUM_CLASSES);
    for class in 0..NUM_CLASSES {
        let x = points[class.min(points.len() - 1)];
        let y = ImageData::one_hot(&vec![class as u8; n], x.device())?;
        let (ek, gk) = energy_and_grad(&[EnergyTerm::new(model, Some(y))], x)?;
        for (row, v) in e.iter_mut().zip(ek.to_vec1::<f32>()?) {
            row[class] = v;
        }
        g.push(gk.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((e, g))
}

/// Adds each image's cross-entropy gradient, `(dE_y - sum_k p_k dE_k) / t`
/// from energies `e` and gradients `g` (of [`class_energy_grads`]), to
/// `grad`; returns the mean cross-entropy.
fn add_cross_entropy_grad(
    e: &ClassEnergies,
    g: &[Vec<f32>],
    labels: &[u8],
    t: f64,
    grad: &mut [f32],
) -> f64 {
    let d = grad.len() / labels.len().max(1);
    let mut loss = 0.0;
    for (i, (row, &y)) in e.iter().zip(labels).enumerate() {
        // p = softmax(-E / t), stably.
        let lo = row.iter().copied().fold(f32::INFINITY, f32::min);
        let z: Vec<f64> = row.iter().map(|&v| (f64::from(lo - v) / t).exp()).collect();
        let sum: f64 = z.iter().sum();
        loss -= (z[usize::from(y)] / sum).ln();
        for (k, zk) in z.iter().enumerate() {
            let w = ((if k == usize::from(y) { 1.0 } else { 0.0 }) - zk / sum) / t;
            for (gi, gk) in grad[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&g[k][i * d..(i + 1) * d])
            {
                *gi += (w as f32) * gk;
            }
        }
    }
    loss / labels.len().max(1) as f64
}

/// Mean cross-entropy of `labels` under `softmax(-E / t)` and its gradient
/// with respect to each image (`[n * d]`, not averaged over images).
pub fn loss_and_grad(
    model: &dyn EnergyFunction,
    x: &Tensor,
    labels: &[u8],
    t: f64,
) -> Result<(f64, Vec<f32>)> {
    let (e, g) = class_energy_grads(model, &[x])?;
    let mut grad = vec![0f32; x.elem_count()];
    let loss = add_cross_entropy_grad(&e, &g, labels, t, &mut grad);
    Ok((loss, grad))
}

/// Projects `adv` onto the budget around `x` and onto [0, 1].
fn project(adv: &mut [f32], x: &[f32], d: usize, budget: Budget) {
    match budget {
        Budget::Linf { eps } => {
            let eps = eps as f32;
            for (a, &c) in adv.iter_mut().zip(x) {
                *a = a.clamp(c - eps, c + eps);
            }
        }
        Budget::L2 { eps } => {
            for (ar, xr) in adv.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let norm = ar
                    .iter()
                    .zip(xr)
                    .map(|(a, c)| f64::from(a - c).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm > eps {
                    let s = (eps / norm) as f32;
                    for (a, &c) in ar.iter_mut().zip(xr) {
                        *a = c + (*a - c) * s;
                    }
                }
            }
        }
    }
    adv.iter_mut().for_each(|a| *a = a.clamp(0.0, 1.0));
}

/// The attacked images. `grad_at` gives the loss gradient the attack
/// follows at a point (the model's own, or through a defence).
pub fn pgd(
    x: &Tensor,
    pgd: &Pgd,
    rng: &mut Rng,
    mut grad_at: impl FnMut(&Tensor, &mut Rng) -> Result<Vec<f32>>,
) -> Result<Tensor> {
    let (n, d) = x.dims2()?;
    let clean: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let start = match pgd.budget {
        Budget::Linf { eps } | Budget::L2 { eps } => eps,
    };
    let mut adv: Vec<f32> = clean
        .iter()
        .zip(rng.uniform_vec(n * d, -start, start))
        .map(|(c, u)| c + u)
        .collect();
    project(&mut adv, &clean, d, pgd.budget);
    for _ in 0..pgd.steps {
        let at = Tensor::from_vec(adv.clone(), (n, d), x.device())?;
        let g = grad_at(&at, rng)?;
        match pgd.budget {
            Budget::Linf { .. } => {
                for (a, gi) in adv.iter_mut().zip(&g) {
                    *a += (pgd.alpha as f32) * gi.signum() * f32::from(*gi != 0.0);
                }
            }
            Budget::L2 { .. } => {
                for (ar, gr) in adv.chunks_exact_mut(d).zip(g.chunks_exact(d)) {
                    let norm = gr.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                    if norm > 0.0 {
                        let s = (pgd.alpha / norm) as f32;
                        ar.iter_mut().zip(gr).for_each(|(a, gi)| *a += s * gi);
                    }
                }
            }
        }
        project(&mut adv, &clean, d, pgd.budget);
    }
    Ok(Tensor::from_vec(adv, (n, d), x.device())?)
}

/// The defence's refined image under each label, `[10]` tensors `[n, d]`.
pub fn refine(
    model: &dyn EnergyFunction,
    x: &Tensor,
    defence: &Defence,
    rng: &mut Rng,
) -> Result<Vec<Tensor>> {
    let n = x.dim(0)?;
    let mut lc = defence.langevin.clone();
    let steps = lc.steps;
    lc.steps = 1;
    let sampler = LangevinSampler::new(lc)?;
    let m = defence.max_change;
    let (lo, hi) = ((x - m)?, (x + m)?);
    let mut out = Vec::with_capacity(NUM_CLASSES);
    for class in 0..NUM_CLASSES {
        let y = ImageData::one_hot(&vec![class as u8; n], x.device())?;
        let terms = [EnergyTerm::new(model, Some(y))];
        let mut z = x.clone();
        for _ in 0..steps {
            z = sampler.sample(&terms, &z, None, rng)?;
            z = z.maximum(&lo)?.minimum(&hi)?;
        }
        out.push(z);
    }
    Ok(out)
}

/// Predictions by lowest energy, without (`None`) or with the defence.
pub fn predict(
    model: &dyn EnergyFunction,
    x: &Tensor,
    defence: Option<&Defence>,
    rng: &mut Rng,
) -> Result<Vec<usize>> {
    let n = x.dim(0)?;
    let mut e = vec![[f32::INFINITY; NUM_CLASSES]; n];
    let refined = match defence {
        Some(d) => Some(refine(model, x, d, rng)?),
        None => None,
    };
    for class in 0..NUM_CLASSES {
        let xc = refined.as_ref().map_or(x, |r| &r[class]);
        let y = ImageData::one_hot(&vec![class as u8; n], x.device())?;
        for (row, v) in e
            .iter_mut()
            .zip(model.energy(xc, Some(&y))?.to_vec1::<f32>()?)
        {
            row[class] = v;
        }
    }
    Ok(e.iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::INFINITY),
                    |b, (k, &v)| if v < b.1 { (k, v) } else { b },
                )
                .0
        })
        .collect())
}

/// The loss gradient through the defence, BPDA-style: each label's logit is
/// taken at its refined image and its gradient passed straight through the
/// refinement to the attacked image (averaged over `samples` draws of the
/// refinement's noise: expectation over transformation).
pub fn defended_grad(
    model: &dyn EnergyFunction,
    x: &Tensor,
    labels: &[u8],
    t: f64,
    defence: &Defence,
    samples: usize,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let mut total = vec![0f32; x.elem_count()];
    for _ in 0..samples.max(1) {
        let refined = refine(model, x, defence, rng)?;
        let points: Vec<&Tensor> = refined.iter().collect();
        let (e, g) = class_energy_grads(model, &points)?;
        add_cross_entropy_grad(&e, &g, labels, t, &mut total);
    }
    Ok(total)
}

/// Accuracy of `pred` against `labels`.
pub fn accuracy_of(pred: &[usize], labels: &[u8]) -> f64 {
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(p, &l)| **p == usize::from(l))
        .count();
    hits as f64 / labels.len().max(1) as f64
}
