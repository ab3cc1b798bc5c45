//! The replay buffer of Algorithm 1: past negatives, with their conditioning,
//! from which most new chains start.
//!
//! A chain starts from a uniformly chosen stored sample with probability
//! `replay_prob` (0.95) once the buffer holds a batch, else from uniform noise
//! in `[init_low, init_high]` under the caller's conditioning. Samples are
//! written back FIFO. With `quantize_u8`, samples are stored as bytes over
//! `[init_low, init_high]` and read back with uniform dequantisation noise
//! (the official image recipe).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub capacity: usize,
    #[serde(default = "default_replay_prob")]
    pub replay_prob: f64,
    /// Range of fresh uniform starts (and of the u8 quantisation).
    pub init_low: f64,
    pub init_high: f64,
    #[serde(default)]
    pub quantize_u8: bool,
    /// The labels replayed chains run under: `kept` (the default), the ones
    /// they were sampled under; `data`, the current batch's, as the official
    /// code does (it stores images only), so a replayed image usually
    /// restarts under another class.
    #[serde(default)]
    pub labels: ReplayLabels,
}

/// See [`ReplayConfig::labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayLabels {
    #[default]
    Kept,
    Data,
}

fn default_replay_prob() -> f64 {
    0.95
}

impl ReplayConfig {
    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if self.capacity == 0 {
            return Err(CoreError::config("replay.capacity must be positive"));
        }
        if !(0.0..=1.0).contains(&self.replay_prob) {
            return Err(CoreError::config("replay.replay_prob must be in [0, 1]"));
        }
        if !(self.init_low < self.init_high) {
            return Err(CoreError::config(
                "replay.init_low must be below replay.init_high",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Store {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

/// Where each row of a drawn batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Replay(usize),
    Fresh,
}

#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    cfg: ReplayConfig,
    sample_dim: usize,
    cond_dim: usize,
    samples: Store,
    conds: Vec<f32>,
    len: usize,
    head: usize,
}

/// A batch of chain starts and their conditioning.
#[derive(Debug)]
pub struct Starts {
    /// `[B, sample_dim]`.
    pub x: Tensor,
    /// `[B, cond_dim]`, `None` when `cond_dim == 0`.
    pub cond: Option<Tensor>,
    pub origin: Vec<Origin>,
}

impl ReplayBuffer {
    pub fn new(
        cfg: ReplayConfig,
        sample_dim: usize,
        cond_dim: usize,
    ) -> std::result::Result<Self, CoreError> {
        cfg.validate()?;
        let samples = if cfg.quantize_u8 {
            Store::U8(Vec::new())
        } else {
            Store::F32(Vec::new())
        };
        Ok(Self {
            cfg,
            sample_dim,
            cond_dim,
            samples,
            conds: Vec::new(),
            len: 0,
            head: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn config(&self) -> &ReplayConfig {
        &self.cfg
    }

    pub fn sample_dim(&self) -> usize {
        self.sample_dim
    }

    pub fn cond_dim(&self) -> usize {
        self.cond_dim
    }

    fn read_row(&self, i: usize, rng: &mut Rng, out: &mut Vec<f32>) {
        let d = self.sample_dim;
        match &self.samples {
            Store::F32(v) => out.extend_from_slice(&v[i * d..(i + 1) * d]),
            Store::U8(v) => {
                let (lo, hi) = (self.cfg.init_low, self.cfg.init_high);
                let scale = (hi - lo) / 256.0;
                out.extend(
                    v[i * d..(i + 1) * d]
                        .iter()
                        .map(|&q| (lo + (f64::from(q) + rng.uniform()) * scale) as f32),
                );
            }
        }
    }

    /// Draws `batch` chain starts. `fresh_cond: [batch, cond_dim]` conditions
    /// the rows that do not come from the buffer (required when `cond_dim > 0`);
    /// those rows start at the matching row of `fresh_x: [batch, sample_dim]`
    /// when given, else at uniform noise over the configured range.
    pub fn draw(
        &self,
        batch: usize,
        fresh_cond: Option<&Tensor>,
        fresh_x: Option<&Tensor>,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Starts> {
        let fresh_x: Option<Vec<f32>> = match fresh_x {
            None => None,
            Some(f) if f.dims() == [batch, self.sample_dim] => {
                Some(f.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            }
            Some(f) => candle_core::bail!(
                "replay draw: fresh starts of shape {:?}, expected [{batch}, {}]",
                f.dims(),
                self.sample_dim
            ),
        };
        let fresh_rows: Option<Vec<Vec<f32>>> = match (fresh_cond, self.cond_dim) {
            (_, 0) => None,
            (Some(c), k) if c.dims() == [batch, k] => Some(c.to_dtype(DType::F32)?.to_vec2()?),
            (c, k) => candle_core::bail!(
                "replay draw: conditioning of shape {:?} given, expected [{batch}, {k}]",
                c.map(|c| c.dims().to_vec())
            ),
        };
        let use_replay = self.len >= batch.max(1);
        let mut xs = Vec::with_capacity(batch * self.sample_dim);
        let mut cs = Vec::with_capacity(batch * self.cond_dim);
        let mut origin = Vec::with_capacity(batch);
        for row in 0..batch {
            if use_replay && rng.uniform() < self.cfg.replay_prob {
                let i = rng.below(self.len);
                self.read_row(i, rng, &mut xs);
                match (&fresh_rows, self.cfg.labels) {
                    (Some(rows), ReplayLabels::Data) => cs.extend_from_slice(&rows[row]),
                    _ => cs
                        .extend_from_slice(&self.conds[i * self.cond_dim..(i + 1) * self.cond_dim]),
                }
                origin.push(Origin::Replay(i));
            } else {
                match &fresh_x {
                    Some(f) => {
                        xs.extend_from_slice(&f[row * self.sample_dim..(row + 1) * self.sample_dim])
                    }
                    None => xs.extend(rng.uniform_vec(
                        self.sample_dim,
                        self.cfg.init_low,
                        self.cfg.init_high,
                    )),
                }
                if let Some(rows) = &fresh_rows {
                    cs.extend_from_slice(&rows[row]);
                }
                origin.push(Origin::Fresh);
            }
        }
        let x = Tensor::from_vec(xs, (batch, self.sample_dim), device)?;
        let cond = if self.cond_dim > 0 {
            Some(Tensor::from_vec(cs, (batch, self.cond_dim), device)?)
        } else {
            None
        };
        Ok(Starts { x, cond, origin })
    }

    /// Appends samples `x: [B, ...]` with conditioning `cond: [B, cond_dim]`,
    /// overwriting the oldest once full.
    pub fn push(&mut self, x: &Tensor, cond: Option<&Tensor>) -> Result<()> {
        let b = x.dim(0)?;
        let x: Vec<f32> = x
            .reshape((b, ()))?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        if x.len() != b * self.sample_dim {
            candle_core::bail!(
                "replay push: rows of {} values, expected {}",
                x.len() / b.max(1),
                self.sample_dim
            );
        }
        let c: Vec<f32> = match (cond, self.cond_dim) {
            (_, 0) => Vec::new(),
            (Some(c), k) if c.dims() == [b, k] => {
                c.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?
            }
            (c, k) => candle_core::bail!(
                "replay push: conditioning of shape {:?}, expected [{b}, {k}]",
                c.map(|c| c.dims().to_vec())
            ),
        };
        let (d, k, cap) = (self.sample_dim, self.cond_dim, self.cfg.capacity);
        let (lo, hi) = (self.cfg.init_low, self.cfg.init_high);
        for r in 0..b {
            let row = &x[r * d..(r + 1) * d];
            let slot = if self.len < cap { self.len } else { self.head };
            match &mut self.samples {
                Store::F32(v) => write_row(v, slot, d, row.iter().copied()),
                Store::U8(v) => write_row(v, slot, d, row.iter().map(|&f| quantize(f, lo, hi))),
            }
            write_row(
                &mut self.conds,
                slot,
                k,
                c[r * k..(r + 1) * k].iter().copied(),
            );
            if self.len < cap {
                self.len += 1;
            } else {
                self.head = (self.head + 1) % cap;
            }
        }
        Ok(())
    }

    /// The stored contents as tensors, for checkpoints.
    pub fn to_tensors(&self, device: &Device) -> Result<BTreeMap<String, Tensor>> {
        let mut m = BTreeMap::new();
        let samples = match &self.samples {
            Store::F32(v) => Tensor::from_vec(v.clone(), (self.len, self.sample_dim), device)?,
            Store::U8(v) => Tensor::from_vec(v.clone(), (self.len, self.sample_dim), device)?,
        };
        m.insert("replay.samples".to_string(), samples);
        m.insert(
            "replay.cond".to_string(),
            Tensor::from_vec(self.conds.clone(), (self.len, self.cond_dim), device)?,
        );
        Ok(m)
    }

    /// The FIFO head, saved in the manifest beside the tensors.
    pub fn head(&self) -> usize {
        self.head
    }

    /// Restores the contents written by [`ReplayBuffer::to_tensors`].
    pub fn restore(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        head: usize,
    ) -> std::result::Result<(), CoreError> {
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| CoreError::config(format!("trainer state lacks tensor {name}")))
        };
        let s = get("replay.samples")?;
        let c = get("replay.cond")?;
        let (n, d) = s.dims2()?;
        let (nc, k) = c.dims2()?;
        if d != self.sample_dim
            || k != self.cond_dim
            || nc != n
            || n > self.cfg.capacity
            || (head >= n && n > 0)
        {
            return Err(CoreError::config(format!(
                "replay buffer in checkpoint is [{n}, {d}] / [{nc}, {k}] with head {head}; \
                 expected rows of {} and {} within capacity {}",
                self.sample_dim, self.cond_dim, self.cfg.capacity
            )));
        }
        self.samples = match (&self.samples, s.dtype()) {
            (Store::U8(_), DType::U8) => Store::U8(s.flatten_all()?.to_vec1()?),
            (Store::F32(_), DType::F32) => Store::F32(s.flatten_all()?.to_vec1()?),
            (_, dt) => {
                return Err(CoreError::config(format!(
                    "replay samples stored as {dt:?} do not match the config"
                )))
            }
        };
        self.conds = c.flatten_all()?.to_vec1()?;
        self.len = n;
        self.head = head;
        Ok(())
    }
}

fn quantize(f: f32, lo: f64, hi: f64) -> u8 {
    let q = ((f64::from(f) - lo) / (hi - lo) * 256.0).floor();
    q.clamp(0.0, 255.0) as u8
}

fn write_row<T: Copy>(v: &mut Vec<T>, slot: usize, width: usize, row: impl Iterator<Item = T>) {
    let start = slot * width;
    if v.len() < start + width {
        v.extend(row);
    } else {
        for (dst, src) in v[start..start + width].iter_mut().zip(row) {
            *dst = src;
        }
    }
}

#[cfg(test)]
#[path = "replay_buffer_tests.rs"]
mod tests;
