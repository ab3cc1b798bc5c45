//! Trainer and checkpoint behaviour: round trips, exact resume, corruption.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::checkpoint::{self, WEIGHTS};
use crate::energy::{EnergyFunction, EnergyModel};
use crate::models::{MlpEnergy, MlpEnergyConfig, ResNetEnergy, ResNetEnergyConfig};
use crate::sampling::langevin::LangevinConfig;
use crate::training::kl_term::KlRows;
use crate::training::replay_buffer::ReplayConfig;
use crate::training::trainer::{PositiveSource, Trainer, TrainerConfig};
use crate::CoreError;
use crate::Rng;

/// Data: an isotropic Gaussian blob at (1, -1) with conditioning equal to a
/// one-hot of which half-plane the sample fell in (so conditioning is stored).
struct Blob;

impl PositiveSource for Blob {
    fn sample_dim(&self) -> usize {
        2
    }
    fn cond_dim(&self) -> usize {
        2
    }
    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let mut x = Vec::new();
        let mut c = Vec::new();
        for _ in 0..n {
            let (a, b) = (1.0 + 0.3 * rng.normal(), -1.0 + 0.3 * rng.normal());
            x.extend([a as f32, b as f32]);
            c.extend(if a > 1.0 { [1f32, 0.0] } else { [0.0, 1.0] });
        }
        Ok((
            Tensor::from_vec(x, (n, 2), dev)?,
            Some(Tensor::from_vec(c, (n, 2), dev)?),
        ))
    }
}

fn config(seed: u64) -> (MlpEnergyConfig, TrainerConfig) {
    let mut m = MlpEnergyConfig::new(2);
    m.action_dim = 2; // the one-hot rides in the action slot
    m.hidden = vec![32, 32];
    let mut t = TrainerConfig::quick(
        LangevinConfig {
            steps: 10,
            step_size: 0.5,
            noise_scale: 0.01,
            grad_clip: Some(0.1),
            clamp: Some([-3.0, 3.0]),
            tolerance: None,
        },
        ReplayConfig {
            capacity: 100,
            replay_prob: 0.95,
            init_low: -3.0,
            init_high: 3.0,
            quantize_u8: false,
            labels: Default::default(),
        },
        1e-3,
    );
    t.batch_size = 32;
    t.seed = seed;
    (m, t)
}

fn weights_of(t: &Trainer<MlpEnergy>) -> Vec<f32> {
    t.params()
        .tensors()
        .values()
        .flat_map(|v| {
            v.flatten_all()
                .and_then(|v| v.to_vec1::<f32>())
                .unwrap_or_default()
        })
        .collect()
}

fn probe_energies(m: &MlpEnergy) -> candle_core::Result<Vec<f32>> {
    let x = Tensor::new(&[[0.5f32, -0.5], [1.0, -1.0], [-2.0, 2.0]], &Device::Cpu)?;
    let c = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 0.0]], &Device::Cpu)?;
    m.frozen().energy(&x, Some(&c))?.to_vec1()
}

#[test]
fn resume_matches_an_uninterrupted_run() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir()?;
    let (m, t) = config(3);
    let mut straight = Trainer::<MlpEnergy>::new(m.clone(), t.clone(), 2, 2, &dev)?;
    straight.train(&Blob, 30, None, |_| {})?;

    let mut first = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    first.train(&Blob, 15, Some(tmp.path()), |_| {})?;
    drop(first);
    let mut resumed = Trainer::<MlpEnergy>::resume(tmp.path(), &dev)?;
    assert_eq!(resumed.step_count(), 15);
    assert_eq!(resumed.buffer().len(), 100);
    resumed.train(&Blob, 15, None, |_| {})?;

    let (a, b) = (weights_of(&straight), weights_of(&resumed));
    assert_eq!(a.len(), b.len());
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff == 0.0, "weights differ by up to {max_diff}");
    // Training did move the weights, so the comparison is not vacuous.
    let fresh = Trainer::<MlpEnergy>::new(config(3).0, config(3).1, 2, 2, &dev)?;
    assert_ne!(weights_of(&fresh), a);
    Ok(())
}

#[test]
fn checkpoint_round_trip_gives_identical_energies() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir()?;
    let (m, t) = config(4);
    let mut tr = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    tr.train(&Blob, 5, None, |_| {})?;
    let dir = tmp.path().join("ckpt");
    tr.save(&dir)?;
    let loaded = checkpoint::load(&dir, &dev)?;
    let (model, _) = loaded.model::<MlpEnergy>(&dev)?;
    assert_eq!(probe_energies(&model)?, probe_energies(tr.model())?);
    assert_eq!(loaded.manifest.step, 5);

    // A ResNet exported for inference round-trips too.
    let cfg = ResNetEnergyConfig::mnist_small(10);
    let store = crate::ParamStore::new(5, &dev);
    let net = ResNetEnergy::init(&cfg, &store)?;
    let rdir = tmp.path().join("resnet");
    checkpoint::save_model(
        &rdir,
        checkpoint::Manifest::new::<ResNetEnergy>(&cfg, 0)?,
        &store,
    )?;
    let (back, _) = checkpoint::load(&rdir, &dev)?.model::<ResNetEnergy>(&dev)?;
    let x = Tensor::from_vec(Rng::new(1).uniform_vec(2 * 784, 0.0, 1.0), (2, 784), &dev)?;
    let y = Tensor::new(
        &[
            [1f32, 0., 0., 0., 0., 0., 0., 0., 0., 0.],
            [0., 0., 0., 0., 0., 0., 0., 0., 0., 1.],
        ],
        &dev,
    )?;
    let e1: Vec<f32> = net.frozen().energy(&x, Some(&y))?.to_vec1()?;
    let e2: Vec<f32> = back.frozen().energy(&x, Some(&y))?.to_vec1()?;
    assert_eq!(e1, e2);
    Ok(())
}

fn expect_error(dir: &Path, needle: &str) {
    let got = checkpoint::load(dir, &Device::Cpu)
        .and_then(|l| l.model::<MlpEnergy>(&Device::Cpu).map(|_| ()));
    match got {
        Ok(()) => panic!(
            "loading {} succeeded; wanted an error about {needle:?}",
            dir.display()
        ),
        Err(e) => {
            let msg = format!("{e}");
            assert!(
                msg.contains(needle),
                "error {msg:?} does not mention {needle:?}"
            );
        }
    }
}

#[test]
fn corrupt_checkpoints_give_clear_errors() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir()?;
    let (m, t) = config(5);
    let tr = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    let good = tmp.path().join("good");
    tr.save(&good)?;
    let copy = |name: &str| -> anyhow::Result<std::path::PathBuf> {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d)?;
        for e in std::fs::read_dir(&good)? {
            let e = e?;
            std::fs::copy(e.path(), d.join(e.file_name()))?;
        }
        Ok(d)
    };

    expect_error(&tmp.path().join("absent"), "does not exist");

    let truncated = copy("truncated")?;
    let w = truncated.join(WEIGHTS);
    let bytes = std::fs::read(&w)?;
    std::fs::write(&w, &bytes[..bytes.len() / 2])?;
    expect_error(&truncated, "truncated");

    let flipped = copy("flipped")?;
    let w = flipped.join(WEIGHTS);
    let mut bytes = std::fs::read(&w)?;
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55;
    std::fs::write(&w, &bytes)?;
    expect_error(&flipped, "CRC-32");

    let no_manifest = copy("no_manifest")?;
    std::fs::remove_file(no_manifest.join(checkpoint::MANIFEST))?;
    expect_error(&no_manifest, "manifest.json");

    let garbled = copy("garbled")?;
    std::fs::write(garbled.join(checkpoint::MANIFEST), b"{ not json")?;
    expect_error(&garbled, "manifest");

    // A checkpoint of another model kind is refused by name.
    let err = checkpoint::load(&good, &dev)?
        .model::<ResNetEnergy>(&dev)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("mlp_energy"), "{err}");

    // A config that does not match the stored shapes names the tensor.
    let mismatched = copy("mismatched")?;
    let mpath = mismatched.join(checkpoint::MANIFEST);
    let text = std::fs::read_to_string(&mpath)?.replacen("32,", "48,", 1);
    std::fs::write(&mpath, text)?;
    expect_error(&mismatched, "layer0.weight");
    Ok(())
}

#[test]
fn divergence_guard_stops_with_a_clear_error() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, mut t) = config(6);
    t.max_abs_energy = 1e-9; // any energy counts as exploded
    let mut tr = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    match tr.step(&Blob) {
        Err(CoreError::Diverged { step: 1, .. }) => {}
        other => panic!("expected divergence at step 1, got {other:?}"),
    }
    Ok(())
}

#[test]
fn replay_buffer_keeps_conditioning_with_samples() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, t) = config(7);
    let mut tr = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    tr.train(&Blob, 6, None, |_| {})?;
    let tensors = tr.buffer().to_tensors(&dev)?;
    let cond: Vec<Vec<f32>> = tensors["replay.cond"].to_vec2()?;
    assert_eq!(cond.len(), 100);
    assert!(cond
        .iter()
        .all(|r| (r[0] + r[1] - 1.0).abs() < 1e-6 && (r[0] == 0.0 || r[0] == 1.0)));
    Ok(())
}

/// The KL term's rows join the fused weighted gradient at their own weights:
/// the fused surrogate with them minus the one without has the parameter
/// gradient of `sum_j w_j E(rows_j)` by autograd.
#[test]
fn kl_rows_add_their_weighted_gradient_to_the_fused_loss() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, t) = config(8);
    let tr = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)?;
    let mut rng = Rng::new(1);
    let mut rand = |n: usize| Tensor::from_vec(rng.normal_vec(n * 2), (n, 2), &dev);
    let (x_pos, c_pos, x_neg, c_neg) = (rand(4)?, rand(4)?, rand(5)?, rand(5)?);
    let rows = KlRows {
        x: rand(6)?,
        cond: Some(rand(6)?),
        weights: vec![0.7, -1.3, 2.0, 0.1, -0.4, 1.1],
    };
    let (_, _, with) = tr.loss_energies(&x_pos, Some(&c_pos), &x_neg, Some(&c_neg), Some(&rows))?;
    let (_, _, without) = tr.loss_energies(&x_pos, Some(&c_pos), &x_neg, Some(&c_neg), None)?;
    let (with, without) = (with.expect("fused"), without.expect("fused"));
    let g_fused = (with - without)?.backward()?;
    let w = Tensor::from_vec(rows.weights.clone(), 6, &dev)?;
    let g_auto = (tr.model().energy(&rows.x, rows.cond.as_ref())? * w)?
        .sum_all()?
        .backward()?;
    for (name, var) in tr.params().trainable() {
        let a: Vec<f32> = g_fused
            .get(var.as_tensor())
            .expect(&name)
            .flatten_all()?
            .to_vec1()?;
        let b: Vec<f32> = g_auto
            .get(var.as_tensor())
            .expect(&name)
            .flatten_all()?
            .to_vec1()?;
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{name}: {x} vs {y}"
            );
        }
    }
    Ok(())
}

/// A run with the KL term trains (finite energies), and `kl < 0` is refused.
#[test]
fn training_with_the_kl_term_runs_and_a_negative_weight_is_refused() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, mut t) = config(9);
    t.kl = 1.0;
    let mut tr = Trainer::<MlpEnergy>::new(m.clone(), t.clone(), 2, 2, &dev)?;
    tr.train(&Blob, 5, None, |s| {
        assert!(s.e_pos.is_finite() && s.e_neg.is_finite())
    })?;
    t.kl = -1.0;
    let err = Trainer::<MlpEnergy>::new(m, t, 2, 2, &dev)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("trainer.kl"), "{err}");
    Ok(())
}
