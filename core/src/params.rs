//! The parameter store: every tensor of a model by name, seeded initialisation,
//! and strict loading.
//!
//! It plays the part of candle's `VarMap` (a `VarBuilder` backend) with three
//! differences that training needs: names are kept in a sorted map so iteration
//! order is stable, fresh tensors are drawn from our seeded [`Rng`] keyed by
//! name (candle's CPU RNG cannot be seeded), and loading from a checkpoint
//! checks every name and shape and says which one is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::Rng;

/// Suffix of persistent buffers that live with the weights but are not
/// trained by the optimiser (spectral-norm power-iteration vectors).
pub const BUFFER_SUFFIX: &str = "sn_u";

/// True for names of non-trainable buffers.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(BUFFER_SUFFIX)
}

#[derive(Default)]
struct Inner {
    vars: BTreeMap<String, Var>,
    /// Names that were present before the model was built (loaded from a file).
    preloaded: BTreeSet<String>,
    /// Names the model asked for.
    requested: BTreeSet<String>,
}

/// Shared, thread-safe map from parameter name to variable.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    seed: u64,
    device: Device,
}

impl ParamStore {
    /// An empty store: every parameter a model asks for is freshly initialised
    /// from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            seed,
            device: device.clone(),
        }
    }

    /// A store pre-filled with loaded tensors. Building a model on it takes
    /// these values; [`ParamStore::check_all_used`] then reports leftovers.
    pub fn from_tensors(
        tensors: BTreeMap<String, Tensor>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let store = Self::new(0, device);
        {
            let mut inner = store.lock();
            for (name, t) in tensors {
                let t = t.to_device(device)?.to_dtype(DType::F32)?;
                inner.preloaded.insert(name.clone());
                inner.vars.insert(name, Var::from_tensor(&t)?);
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of the
        // map; the map itself is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A `VarBuilder` over this store (f32).
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, self.device.clone())
    }

    /// True if `name` was loaded rather than freshly initialised.
    pub fn was_loaded(&self, name: &str) -> bool {
        self.lock().preloaded.contains(name)
    }

    /// All variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock()
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Trainable variables (buffers excluded), sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.vars()
            .into_iter()
            .filter(|(k, _)| !is_buffer(k))
            .collect()
    }

    /// Every tensor by name, for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.lock()
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Names that were loaded but never asked for by the model: a sign that the
    /// checkpoint belongs to another architecture.
    pub fn unused_loaded(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .preloaded
            .difference(&inner.requested)
            .cloned()
            .collect()
    }

    /// Copies every value of `other` into this store's variables (same names and
    /// shapes), keeping the variables themselves so built models see the change.
    pub fn assign_from(&self, other: &BTreeMap<String, Tensor>) -> candle_core::Result<()> {
        let inner = self.lock();
        for (name, var) in &inner.vars {
            let src = other
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
            var.set(&src.to_device(&self.device)?.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

fn fresh_tensor(
    shape: &Shape,
    init: &Init,
    rng: &mut Rng,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let n = shape.elem_count();
    let data: Vec<f32> = match *init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => rng
            .normal_vec(n)
            .into_iter()
            .map(|z| (mean + stdev * f64::from(z)) as f32)
            .collect(),
        Init::Uniform { lo, up } => rng.uniform_vec(n, lo, up),
        Init::Kaiming { .. } => {
            // Kaiming-uniform for fan-in, linear gain: U(-sqrt(3/fan_in), +).
            let dims = shape.dims();
            let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
            let bound = (3.0 / fan_in as f64).sqrt();
            rng.uniform_vec(n, -bound, bound)
        }
    };
    Tensor::from_vec(data, shape.clone(), dev)
}

impl candle_nn::var_builder::SimpleBackend for ParamStore {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        inner.requested.insert(name.to_string());
        if let Some(var) = inner.vars.get(name) {
            let t = var.as_tensor();
            if t.shape() != &s {
                candle_core::bail!(
                    "tensor {name}: the model expects shape {:?}, the store holds {:?}",
                    s.dims(),
                    t.dims()
                );
            }
            return t.to_dtype(dtype)?.to_device(dev);
        }
        if !inner.preloaded.is_empty() {
            candle_core::bail!(
                "tensor {name} (shape {:?}) is missing from the checkpoint",
                s.dims()
            );
        }
        let mut rng = Rng::derived(self.seed, name);
        let t = fresh_tensor(&s, &h, &mut rng, &self.device)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        inner.vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        inner.requested.insert(name.to_string());
        match inner.vars.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("tensor {name} is not in the store"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_whatever_the_order() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let a = ParamStore::new(5, &dev);
        let b = ParamStore::new(5, &dev);
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let a1 = a.var_builder().get_with_hints((3, 2), "x", init)?;
        let _ = a.var_builder().get_with_hints((4,), "y", init)?;
        let _ = b.var_builder().get_with_hints((4,), "y", init)?;
        let b1 = b.var_builder().get_with_hints((3, 2), "x", init)?;
        let diff = (a1 - b1)?.abs()?.sum_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }

    #[test]
    fn loaded_store_rejects_missing_and_misshapen_tensors() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut m = BTreeMap::new();
        m.insert("w".to_string(), Tensor::zeros((2, 2), DType::F32, &dev)?);
        let s = ParamStore::from_tensors(m, &dev)?;
        let vb = s.var_builder();
        let err = vb
            .get_with_hints((3, 2), "w", Init::Const(0.0))
            .unwrap_err();
        assert!(err.to_string().contains("tensor w"), "{err}");
        let err = vb.get_with_hints((1,), "b", Init::Const(0.0)).unwrap_err();
        assert!(
            err.to_string().contains("missing from the checkpoint"),
            "{err}"
        );
        Ok(())
    }
}
