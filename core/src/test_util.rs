//! Helpers shared by the fused paths' tests.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::params::ParamStore;

/// Sample mean and (population) variance, in f64.
pub(crate) fn mean_and_variance(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var)
}

/// `||a - b|| / ||b||` over all elements.
pub(crate) fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    rel_err_slices(&a, &b)
}

/// [`rel_err`] of two slices of equal length.
pub(crate) fn rel_err_slices(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "rel_err: lengths differ");
    let num: f32 = a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum();
    let den: f32 = b.iter().map(|q| q * q).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Asserts that both gradient stores reach every trainable parameter with
/// relative error below `tol`; returns how many parameters were compared.
pub(crate) fn assert_param_grads_match(
    params: &ParamStore,
    fused: &GradStore,
    autograd: &GradStore,
    tol: f32,
    label: &str,
) -> usize {
    let mut checked = 0;
    for (name, var) in params.trainable() {
        let a = autograd
            .get(var.as_tensor())
            .expect("autograd reaches every parameter");
        let f = fused
            .get(var.as_tensor())
            .expect("fused reaches every parameter");
        let r = rel_err(f, a);
        assert!(r < tol, "{label} {name}: {r}");
        checked += 1;
    }
    checked
}

/// Slope scale of [`quadratic_well`]'s hidden units: small, so that
/// `silu(u) + silu(-u) = u tanh(u / 2)` is `u^2 / 2` to a relative
/// `u^2 / 12` over the distances the tests use.
pub(crate) const WELL_SLOPE: f64 = 0.02;

/// A frozen `MlpEnergy` of `cfg`'s sizes (its `hidden` and `activation` are
/// replaced) whose energy is, to a relative `(WELL_SLOPE z)^2 / 12`,
/// `E(x | c) = (lambda / 2) |z|^2`, `z = x - M c - b`: one SiLU layer of
/// `2 D` units, a pair `+-WELL_SLOPE z_j` per dimension, and a head of
/// `lambda / WELL_SLOPE^2`. Its minimiser in `x` is exactly `M c + b` (each
/// pair is even and increasing in `|z_j|`). `m` is `D x C`, row-major.
pub(crate) fn quadratic_well(
    cfg: &crate::models::MlpEnergyConfig,
    m: &[f64],
    b: &[f64],
    lambda: f64,
) -> crate::models::MlpEnergy {
    use crate::energy::EnergyModel;
    let (d, c) = (cfg.state_dim, cfg.cond_dim());
    assert_eq!((m.len(), b.len()), (d * c, d), "quadratic_well: M is D x C");
    let s = WELL_SLOPE;
    let (mut w, mut bias) = (vec![0f32; 2 * d * (c + d)], vec![0f32; 2 * d]);
    for j in 0..d {
        for sign in [1.0, -1.0] {
            let row = if sign > 0.0 { j } else { d + j };
            let r = &mut w[row * (c + d)..(row + 1) * (c + d)];
            for (i, v) in r[..c].iter_mut().enumerate() {
                *v = (-sign * s * m[j * c + i]) as f32;
            }
            r[c + j] = (sign * s) as f32;
            bias[row] = (-sign * s * b[j]) as f32;
        }
    }
    let dev = candle_core::Device::Cpu;
    let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &dev).expect("tensor");
    let tensors = [
        ("layer0.weight", t(w, &[2 * d, c + d])),
        ("layer0.bias", t(bias, &[2 * d])),
        (
            "head.weight",
            t(vec![(lambda / (s * s)) as f32; 2 * d], &[1, 2 * d]),
        ),
        ("head.bias", t(vec![0.0], &[1])),
    ];
    let store = ParamStore::from_tensors(
        tensors
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        &dev,
    )
    .expect("store");
    let mut cfg = cfg.clone();
    cfg.hidden = vec![2 * d];
    cfg.activation = crate::Activation::Silu;
    cfg.spectral_norm = false;
    let model = crate::models::MlpEnergy::init(&cfg, &store).expect("the well's model");
    assert!(store.unused_loaded().is_empty());
    model.frozen()
}
