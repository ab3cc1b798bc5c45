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
