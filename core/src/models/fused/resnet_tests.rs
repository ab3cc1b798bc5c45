//! Tests of the fused image path against candle autograd.

use super::*;
use crate::energy::{energy_and_grad, EnergyFunction, EnergyModel, EnergyTerm};
use crate::models::{BlockKind, HeadKind, ResNetEnergy, ResNetEnergyConfig, StageConfig};
use crate::params::ParamStore;
use crate::test_util::{assert_param_grads_match, rel_err};
use crate::Rng;
use candle_core::Device;

fn config(act: Activation, classes: usize, size: usize, channels: usize) -> ResNetEnergyConfig {
    sized_config(act, classes, size, channels, [8, 8, 12, 12])
}

/// Stem and stage widths `[stem, s1, s2, s3]`: from 16 channels the
/// convolutions run tap by tap on the packed kernel, below through im2col.
fn sized_config(
    act: Activation,
    classes: usize,
    size: usize,
    channels: usize,
    [stem, s1, s2, s3]: [usize; 4],
) -> ResNetEnergyConfig {
    let stage = |c, d| StageConfig {
        channels: c,
        downsample: d,
    };
    ResNetEnergyConfig {
        in_channels: channels,
        image_size: size,
        num_classes: classes,
        stem_channels: stem,
        stages: vec![stage(s1, true), stage(s2, true), stage(s3, false)],
        activation: act,
        spectral_norm: true,
        block: BlockKind::PreActivation,
        dropout: 0.0,
        final_activation: None,
        head_spectral_norm: None,
        head: Default::default(),
    }
}

/// The official block with a ReLU before the sum, as the official
/// unconditional network.
fn official(mut cfg: ResNetEnergyConfig) -> ResNetEnergyConfig {
    cfg.block = BlockKind::Official;
    cfg.final_activation = Some(Activation::Relu);
    cfg.head_spectral_norm = Some(false);
    cfg
}

/// The networks the fused path is checked on.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Plain,
    Official,
    /// The plain network with a spatial head (a weight per pixel).
    Spatial,
}

impl Variant {
    fn apply(self, cfg: ResNetEnergyConfig) -> ResNetEnergyConfig {
        match self {
            Self::Plain => cfg,
            Self::Official => official(cfg),
            Self::Spatial => ResNetEnergyConfig {
                head: HeadKind::Spatial,
                ..cfg
            },
        }
    }
}

/// Moves class tables away from their initial values, and the official
/// block's near-zero second convolutions to full size, so that every
/// parameter shapes the energy.
fn perturb(params: &ParamStore, rng: &mut Rng) -> Result<()> {
    for (name, var) in params.vars() {
        let noise = Tensor::from_vec(rng.normal_vec(var.elem_count()), var.shape(), var.device())?;
        if name.contains("class_") {
            var.set(&(var.as_tensor() + noise * 0.3)?)?;
        } else if name.contains("conv2.weight") && !name.contains("_u") {
            var.set(&(noise * 0.2)?)?;
        }
    }
    Ok(())
}

/// Narrow (im2col) and wide (tap-wise, partial 16-lane panels) networks.
const NARROW: [usize; 4] = [8, 8, 12, 12];
const WIDE: [usize; 4] = [16, 16, 24, 40];

/// Fused energies and input gradients equal candle autograd's on the same
/// frozen model: odd sizes (pooling drops a row), one and three channels,
/// class tables away from their initial values, batches of one image and
/// of several groups over several threads.
#[test]
fn fused_path_matches_autograd() -> Result<()> {
    let dev = Device::Cpu;
    for ((act, classes, size, ch, n, widths), variant) in [
        (Activation::LeakyRelu, 10, 12, 1, 21, NARROW),
        (Activation::Silu, 1, 11, 3, 5, NARROW),
        (Activation::Relu, 3, 9, 1, 1, NARROW),
        (Activation::Silu, 10, 28, 1, 17, NARROW),
        (Activation::Silu, 10, 28, 1, 9, WIDE),
        (Activation::LeakyRelu, 1, 11, 3, 5, WIDE),
    ]
    .into_iter()
    .flat_map(|c| {
        [
            (c, Variant::Plain),
            (c, Variant::Official),
            (c, Variant::Spatial),
        ]
    }) {
        let cfg = variant.apply(sized_config(act, classes, size, ch, widths));
        let params = ParamStore::new(7, &dev);
        let mut model = ResNetEnergy::init(&cfg, &params)?;
        let mut rng = Rng::new(11);
        perturb(&params, &mut rng)?;
        model.refresh()?;
        let m = model.frozen();
        let plain = m.without_fused_path();
        let d = ch * size * size;
        let x = Tensor::from_vec(rng.normal_vec(n * d), (n, ch, size, size), &dev)?;
        let y = (classes > 1)
            .then(|| {
                let mut v = vec![0f32; n * classes];
                for i in 0..n {
                    v[i * classes + (i * 7) % classes] = 1.0;
                }
                Tensor::from_vec(v, (n, classes), &dev)
            })
            .transpose()?;
        let (ef, gf) = m
            .fast_energy_and_grad(&x, y.as_ref())
            .expect("a frozen CPU model has the fused path")?;
        let (ea, ga) = energy_and_grad(&[EnergyTerm::new(&plain, y.clone())], &x)?;
        let (re, rg) = (rel_err(&ef, &ea), rel_err(&gf, &ga));
        assert!(re < 1e-5, "{act:?} {size}x{size} {variant:?}: energy {re}");
        assert!(rg < 1e-5, "{act:?} {size}x{size} {variant:?}: grad {rg}");
        assert_eq!(gf.dims(), x.dims());
        assert!(ga.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
    }
    Ok(())
}

/// Labels pick different class tables, so energies differ by label; the
/// wrong label width takes the autograd path, which names the problem.
#[test]
fn labels_matter_and_bad_shapes_fall_back() -> Result<()> {
    let dev = Device::Cpu;
    let cfg = config(Activation::LeakyRelu, 4, 8, 1);
    let params = ParamStore::new(3, &dev);
    let model = ResNetEnergy::init(&cfg, &params)?;
    for (name, var) in params.vars() {
        if name.contains("class_bias1") {
            let r = Rng::new(5).normal_vec(var.elem_count());
            var.set(&Tensor::from_vec(r, var.shape(), &dev)?)?;
        }
    }
    let m = model.frozen();
    let x = Tensor::from_vec(Rng::new(1).normal_vec(2 * 64), (2, 1, 8, 8), &dev)?;
    let x = Tensor::cat(&[&x.narrow(0, 0, 1)?, &x.narrow(0, 0, 1)?], 0)?;
    let y = Tensor::from_vec(vec![1f32, 0., 0., 0., 0., 0., 1., 0.], (2, 4), &dev)?;
    let (e, _) = m.fast_energy_and_grad(&x, Some(&y)).expect("fused")?;
    let e: Vec<f32> = e.to_vec1()?;
    assert!(
        (e[0] - e[1]).abs() > 1e-4,
        "same image, labels 0 and 2: {e:?}"
    );
    let bad = Tensor::zeros((2, 3), candle_core::DType::F32, &dev)?;
    assert!(m.fast_energy_and_grad(&x, Some(&bad)).is_none());
    assert!(m.fast_energy_and_grad(&x, None).is_none());
    let err = m.energy(&x, Some(&bad)).unwrap_err().to_string();
    assert!(err.contains("labels"), "{err}");
    Ok(())
}

/// The fused parameter gradient of `sum_i w_i E_i` (through spectral
/// normalisation, class tables and head) equals autograd's for every
/// trainable parameter, with weights that depend on the energies.
#[test]
fn fused_parameter_gradients_match_autograd() -> Result<()> {
    let dev = Device::Cpu;
    for ((act, classes, size, n, widths), variant) in [
        (Activation::LeakyRelu, 10, 12, 19, NARROW),
        (Activation::Silu, 1, 9, 4, NARROW),
        (Activation::Silu, 10, 12, 11, WIDE),
    ]
    .into_iter()
    .flat_map(|c| {
        [
            (c, Variant::Plain),
            (c, Variant::Official),
            (c, Variant::Spatial),
        ]
    }) {
        let cfg = variant.apply(sized_config(act, classes, size, 1, widths));
        let params = ParamStore::new(5, &dev);
        let mut model = ResNetEnergy::init(&cfg, &params)?;
        let mut rng = Rng::new(2);
        perturb(&params, &mut rng)?;
        model.refresh()?;
        let x = Tensor::from_vec(rng.normal_vec(n * size * size), (n, 1, size, size), &dev)?;
        let y = (classes > 1)
            .then(|| {
                let v = (0..n * classes)
                    .map(|j| f32::from(j % classes == (j / classes * 3) % classes))
                    .collect();
                Tensor::from_vec(v, (n, classes), &dev)
            })
            .transpose()?;
        let weight = |i: usize, e: f32| {
            if i.is_multiple_of(2) {
                2.0 * e + 1.0
            } else {
                0.5 * e - 1.0
            }
        };
        let (ef, surrogate) = model
            .fused_energy_vjp(&x, y.as_ref(), &weight)
            .expect("a CPU model has the fused path")?;
        let gf = surrogate.backward()?;

        let ea = model.energy(&x, y.as_ref())?;
        assert!(rel_err(&ef, &ea) < 1e-5, "energies {}", rel_err(&ef, &ea));
        let w: Vec<f32> = ea
            .to_vec1::<f32>()?
            .iter()
            .enumerate()
            .map(|(i, &e)| weight(i, e))
            .collect();
        let w = Tensor::from_vec(w, n, &dev)?;
        let ga = (ea * w)?.sum_all()?.backward()?;
        let label = format!("{act:?} {variant:?}");
        let checked = assert_param_grads_match(&params, &gf, &ga, 1e-4, &label);
        assert!(checked >= 15, "only {checked} parameters");
    }
    Ok(())
}

/// Dropout acts only in training copies: a seeded copy's fused energies
/// differ from the evaluation model's, repeat for the same seed and call, and
/// its input gradient is the derivative of the energy under the same masks
/// (central differences along a random direction, each on a fresh copy so
/// the masks are those of the first call).
#[test]
fn dropout_masks_only_training_copies_and_keeps_gradients_exact() -> Result<()> {
    let dev = Device::Cpu;
    let mut cfg = official(sized_config(Activation::Silu, 1, 12, 1, NARROW));
    cfg.dropout = 0.5;
    cfg.final_activation = None; // smooth throughout, for finite differences
    let params = ParamStore::new(9, &dev);
    let mut model = ResNetEnergy::init(&cfg, &params)?;
    let mut rng = Rng::new(4);
    perturb(&params, &mut rng)?;
    model.refresh()?;
    let n = 6;
    let x = Tensor::from_vec(rng.uniform_vec(n * 144, 0.0, 1.0), (n, 1, 12, 12), &dev)?;
    let copy = |seed: Option<u64>| {
        let mut m = model.clone();
        m.set_dropout_seed(seed);
        m.frozen()
    };
    let energies =
        |m: &ResNetEnergy, x: &Tensor| -> Result<Vec<f32>> { m.energy(x, None)?.to_vec1() };
    let eval = energies(&copy(None), &x)?;
    let trained = energies(&copy(Some(3)), &x)?;
    assert_eq!(
        trained,
        energies(&copy(Some(3)), &x)?,
        "same seed, same masks"
    );
    let moved = eval
        .iter()
        .zip(&trained)
        .filter(|(a, b)| (*a - *b).abs() > 1e-4)
        .count();
    assert_eq!(
        moved, n,
        "dropout changed {moved} of {n} energies: {eval:?} {trained:?}"
    );
    assert_eq!(eval, energies(&model.frozen(), &x)?, "no seed, no dropout");

    let (_, g) = copy(Some(3))
        .fast_energy_and_grad(&x, None)
        .expect("fused")?;
    let v = Tensor::from_vec(rng.normal_vec(n * 144), x.shape(), &dev)?;
    let eps = 1e-2;
    let plus = energies(&copy(Some(3)), &(&x + (&v * eps)?)?)?;
    let minus = energies(&copy(Some(3)), &(&x - (&v * eps)?)?)?;
    let along: Vec<f32> = (g * &v)?.sum(1)?.sum(1)?.sum(1)?.to_vec1()?;
    for i in 0..n {
        let fd = (plus[i] - minus[i]) / (2.0 * eps as f32);
        let err = (fd - along[i]).abs() / along[i].abs().max(1e-3);
        assert!(
            err < 2e-2,
            "image {i}: finite difference {fd}, gradient {}",
            along[i]
        );
    }
    Ok(())
}
