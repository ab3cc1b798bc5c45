//! Composition of two learned conditional energies on tiny images: one
//! model knows only a bright pixel's row, the other only its column; their
//! summed energy samples the pixel where both agree.

use candle_core::{Device, Tensor};
use ebm_core::{
    EnergyFunction, EnergyModel, EnergyTerm, LangevinConfig, LangevinSampler, MlpEnergy,
    MlpEnergyConfig, PositiveSource, ReplayConfig, Rng, Trainer, TrainerConfig,
};

const SIDE: usize = 6;
/// Langevin steps per chain, in training and sampling alike.
const CHAIN: usize = 40;

/// Images of one bright pixel on a dim background, conditioned on its row
/// (`by_row`) or its column, one-hot; the other coordinate is uniform.
struct Dots {
    by_row: bool,
}

impl PositiveSource for Dots {
    fn sample_dim(&self) -> usize {
        SIDE * SIDE
    }

    fn cond_dim(&self) -> usize {
        SIDE
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (mut x, mut c) = (vec![0.1f32; n * SIDE * SIDE], vec![0f32; n * SIDE]);
        for i in 0..n {
            let (r, col) = (rng.below(SIDE), rng.below(SIDE));
            x[i * SIDE * SIDE + r * SIDE + col] = 0.9;
            c[i * SIDE + if self.by_row { r } else { col }] = 1.0;
        }
        Ok((
            Tensor::from_vec(x, (n, SIDE * SIDE), dev)?,
            Some(Tensor::from_vec(c, (n, SIDE), dev)?),
        ))
    }
}

fn langevin(steps: usize) -> LangevinConfig {
    LangevinConfig {
        steps,
        step_size: 1.0,
        noise_scale: 0.005,
        grad_clip: Some(0.05),
        clamp: Some([0.0, 1.0]),
        tolerance: None,
    }
}

fn train(by_row: bool) -> anyhow::Result<MlpEnergy> {
    let mut m = MlpEnergyConfig::new(SIDE * SIDE);
    m.action_dim = SIDE; // the one-hot rides in the action slot
    m.hidden = vec![64, 64];
    let mut t = TrainerConfig::quick(
        langevin(CHAIN),
        ReplayConfig {
            capacity: 2000,
            replay_prob: 0.0, // short-run chains from noise, as sampled below
            init_low: 0.0,
            init_high: 1.0,
            quantize_u8: false,
            labels: Default::default(),
        },
        1e-3,
    );
    t.batch_size = 64;
    t.seed = u64::from(by_row);
    let mut trainer = Trainer::<MlpEnergy>::new(m, t, SIDE * SIDE, SIDE, &Device::Cpu)?;
    trainer.train(&Dots { by_row }, 1500, None, |_| {})?;
    Ok(trainer.model().frozen())
}

fn one_hot(n: usize, k: usize) -> candle_core::Result<Tensor> {
    let mut v = vec![0f32; n * SIDE];
    for i in 0..n {
        v[i * SIDE + k] = 1.0;
    }
    Tensor::from_vec(v, (n, SIDE), &Device::Cpu)
}

/// Share of samples whose brightest pixel is at `(row, col)`, and whose
/// brightest pixel is in `row`.
fn brightest(x: &Tensor, row: usize, col: usize) -> candle_core::Result<(f64, f64)> {
    let rows: Vec<Vec<f32>> = x.to_vec2()?;
    let n = rows.len() as f64;
    let (mut both, mut in_row) = (0.0, 0.0);
    for r in &rows {
        let best = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
        in_row += f64::from(u8::from(best / SIDE == row));
        both += f64::from(u8::from(best == row * SIDE + col));
    }
    Ok((both / n, in_row / n))
}

/// Two models trained apart, one on the row of a bright pixel, one on its
/// column, sampled by their summed energy put the pixel where both agree far
/// more often than the row model alone does (which spreads it along the row).
#[test]
fn summed_energies_sample_where_both_models_agree() -> anyhow::Result<()> {
    let (rows, cols) = (train(true)?, train(false)?);
    let (row, col, n) = (1, 4, 100);
    let sampler = LangevinSampler::new(langevin(CHAIN))?;
    let mut rng = Rng::new(5);
    let x0 = Tensor::from_vec(
        rng.uniform_vec(n * SIDE * SIDE, 0.0, 1.0),
        (n, SIDE * SIDE),
        &Device::Cpu,
    )?;
    let both = [
        EnergyTerm::new(&rows as &dyn EnergyFunction, Some(one_hot(n, row)?)),
        EnergyTerm::new(&cols as &dyn EnergyFunction, Some(one_hot(n, col)?)),
    ];
    let composed = sampler.sample(&both, &x0, None, &mut rng)?;
    let alone = sampler.sample(&both[..1], &x0, None, &mut rng)?;
    let (at, in_row) = brightest(&composed, row, col)?;
    let (alone_at, alone_row) = brightest(&alone, row, col)?;
    // Chance: 1 in 36 at the pixel, 1 in 6 in the row.
    assert!(
        at > 0.25 && at > 2.5 * alone_at,
        "composed: {at} at ({row}, {col}) ({in_row} in the row); the row model alone: {alone_at}"
    );
    assert!(
        alone_row > 0.6,
        "the row model alone: {alone_row} in the row"
    );
    assert!(
        alone_at < 0.25,
        "the row model alone picks no column: {alone_at} at ({row}, {col})"
    );
    Ok(())
}
