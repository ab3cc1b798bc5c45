//! Adam with state keyed by parameter name, so that it can be saved and
//! restored exactly (candle's `AdamW` keeps its moments private).
//!
//! Defaults follow the official IGEBM code: `beta1 = 0`, `beta2 = 0.999`,
//! `eps = 1e-8`, and an optional per-element gradient clip to
//! `+-(3 sqrt(v_hat) + 0.1)` against the running second moment before the update
//! (`custom_adam.py`), which keeps single bad batches from blowing up training.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::params::ParamStore;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    #[serde(default)]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Clip each gradient element to `3 sqrt(v_hat) + 0.1` (official code).
    #[serde(default = "default_true")]
    pub clip_to_second_moment: bool,
}

fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_true() -> bool {
    true
}

impl AdamConfig {
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.0,
            beta2: default_beta2(),
            eps: default_eps(),
            clip_to_second_moment: true,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(CoreError::config("adam.lr must be positive"));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(CoreError::config("adam betas must be in [0, 1)"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Adam {
    cfg: AdamConfig,
    t: u64,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
}

impl Adam {
    pub fn new(cfg: AdamConfig) -> std::result::Result<Self, CoreError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            t: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        })
    }

    /// Steps taken so far.
    pub fn t(&self) -> u64 {
        self.t
    }

    /// One update of every trainable parameter that has a gradient.
    pub fn step(&mut self, params: &ParamStore, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = &self.cfg;
        let t = self.t as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let bc2_prev = 1.0 - c.beta2.powi(t - 1);
        for (name, var) in params.trainable() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Candle may hand back a gradient that still carries its backward
            // graph; detached, the moments built from it hold no graph, which
            // would otherwise chain every step's activations together (a leak
            // of several MB per step).
            let g = g.detach();
            let v_prev = match self.v.get(&name) {
                Some(v) => v.clone(),
                None => g.zeros_like()?,
            };
            let m_prev = match self.m.get(&name) {
                Some(m) => m.clone(),
                None => g.zeros_like()?,
            };
            let g = if c.clip_to_second_moment {
                let bound = if t > 1 {
                    ((v_prev.clone() / bc2_prev)?.sqrt()? * 3.0)?.affine(1.0, 0.1)?
                } else {
                    g.ones_like()?.affine(0.1, 0.0)?
                };
                g.minimum(&bound)?.maximum(&bound.neg()?)?
            } else {
                g.clone()
            };
            let m = ((m_prev * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((v_prev * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            var.set(&(var.as_tensor() - (update * c.lr)?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name, v);
        }
        Ok(())
    }

    /// Moments as tensors named `adam.m.<param>` and `adam.v.<param>`.
    pub fn to_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (k, t) in &self.m {
            out.insert(format!("adam.m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("adam.v.{k}"), t.clone());
        }
        out
    }

    /// Restores moments saved by [`Adam::to_tensors`] and the step count.
    pub fn restore(&mut self, tensors: &BTreeMap<String, Tensor>, t: u64) {
        self.t = t;
        self.m.clear();
        self.v.clear();
        for (k, v) in tensors {
            if let Some(name) = k.strip_prefix("adam.m.") {
                self.m.insert(name.to_string(), v.clone());
            } else if let Some(name) = k.strip_prefix("adam.v.") {
                self.v.insert(name.to_string(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient_sign() -> Result<()> {
        let dev = Device::Cpu;
        let store = ParamStore::new(0, &dev);
        let w = store
            .var_builder()
            .get_with_hints(3, "w", candle_nn::Init::Const(1.0))?;
        // loss = sum(w * [2, -3, 0.05]); gradient = the constants.
        let k = Tensor::new(&[2f32, -3.0, 0.05], &dev)?;
        let grads = (&w * &k)?.sum_all()?.backward()?;
        let mut adam = Adam::new(AdamConfig::with_lr(0.1))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        adam.step(&store, &grads)?;
        let got: Vec<f32> = Var::from_tensor(&w)?.as_tensor().to_vec1()?;
        // beta1 = 0: m = g, v = (1 - b2) g^2; m_hat / sqrt(v_hat) = sign(g) for the
        // clipped g (bound 0.1 on the first step), so each moves by lr.
        for (g, want) in got.iter().zip([0.9f32, 1.1, 0.9]) {
            assert!((g - want).abs() < 1e-4, "{got:?}");
        }
        Ok(())
    }

    /// Two steps against a reference written out in f64: the second step's
    /// gradient spike is clipped to `3 sqrt(v_hat) + 0.1` of the first
    /// step's second moment, and the update uses the bias-corrected moments.
    #[test]
    fn later_steps_clip_to_the_running_second_moment() -> Result<()> {
        let dev = Device::Cpu;
        let store = ParamStore::new(0, &dev);
        let w = store
            .var_builder()
            .get_with_hints(3, "w", candle_nn::Init::Const(1.0))?;
        let (lr, b2, eps) = (0.1f64, 0.999f64, 1e-8f64);
        let mut adam = Adam::new(AdamConfig::with_lr(lr))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let g1 = [0.05f64, -0.05, 0.02];
        let g2 = [10.0f64, 0.01, -0.3];
        for g in [g1, g2] {
            let k = Tensor::new(&[g[0] as f32, g[1] as f32, g[2] as f32], &dev)?;
            let grads = (&w * &k)?.sum_all()?.backward()?;
            adam.step(&store, &grads)?;
        }
        let got: Vec<f32> = Var::from_tensor(&w)?.as_tensor().to_vec1()?;
        let mut want = [1.0f64; 3];
        for j in 0..3 {
            // Step 1: bound 0.1 (none of g1 is clipped); m = g, v = (1 - b2) g^2.
            let g1c = g1[j].clamp(-0.1, 0.1);
            let v1 = (1.0 - b2) * g1c * g1c;
            want[j] -= lr * g1c / ((v1 / (1.0 - b2)).sqrt() + eps);
            // Step 2: bound from v1 bias-corrected by step 1's factor.
            let bound = 3.0 * (v1 / (1.0 - b2)).sqrt() + 0.1;
            let g2c = g2[j].clamp(-bound, bound);
            let v2 = b2 * v1 + (1.0 - b2) * g2c * g2c;
            want[j] -= lr * g2c / ((v2 / (1.0 - b2 * b2)).sqrt() + eps);
        }
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 2e-5, "{got:?} vs {want:?}");
        }
        // The spike was clipped (0.25 instead of 10): unclipped, the first
        // weight would have moved measurably further.
        let v2_raw = b2 * (1.0 - b2) * g1[0] * g1[0] + (1.0 - b2) * 100.0;
        let unclipped = 1.0 - lr - lr * 10.0 / ((v2_raw / (1.0 - b2 * b2)).sqrt() + eps);
        assert!((f64::from(got[0]) - unclipped).abs() > 1e-3);
        Ok(())
    }
}
