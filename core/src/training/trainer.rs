//! Algorithm 1 of the paper: contrastive training of an energy model with
//! Langevin negatives drawn from a replay buffer.
//!
//! Each step: positives from the data; chain starts from the buffer (95%) or
//! uniform noise (5%); K Langevin steps on a frozen copy of the model (no
//! gradient through sampling, no parameter gradients); negatives written back
//! to the buffer; loss `alpha (E+^2 + E-^2) + E+ - E-` (batch means), with
//! `trainer.kl` the paper's KL term through the last step
//! ([`crate::training::kl_term`]); one Adam step. A guard stops training
//! with a clear error when energies turn non-finite or explode. Checkpoints
//! hold everything needed for exact resume: weights, spectral-norm vectors,
//! optimiser moments by name, the buffer, the step and the RNG state.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Manifest, Normalization, WEIGHTS};
use crate::energy::{EnergyFunction, EnergyModel, EnergyTerm};
use crate::error::{CoreError, Result};
use crate::params::ParamStore;
use crate::sampling::langevin::{LangevinConfig, LangevinSampler};
use crate::training::adam::{Adam, AdamConfig};
use crate::training::kl_term::{self, KlRows};
use crate::training::label_contrast::LabelContrast;
use crate::training::replay_buffer::{ReplayBuffer, ReplayConfig};
use crate::Rng;

const STATE_FILE: &str = "trainer.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    pub batch_size: usize,
    /// Weight of the energy regulariser `E+^2 + E-^2`.
    #[serde(default = "one")]
    pub alpha: f64,
    pub langevin: LangevinConfig,
    pub replay: ReplayConfig,
    pub adam: AdamConfig,
    #[serde(default)]
    pub seed: u64,
    /// Save a checkpoint every this many steps (0: never).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Step checkpoints kept in a run directory.
    #[serde(default = "ten")]
    pub keep_checkpoints: usize,
    /// The divergence guard: stop when a mean energy exceeds this magnitude.
    #[serde(default = "default_max_abs_energy")]
    pub max_abs_energy: f64,
    /// Conditional models on one-hot labels: weight of a classification
    /// term added to the loss, the cross-entropy of each positive's label
    /// under `softmax_y(-E(x+, y))` over every label (0, the default: the
    /// paper's objective alone). See [`crate::training::label_contrast`].
    #[serde(default)]
    pub label_contrast: f64,
    /// The classification term's temperature: logits `-E(x, y) / T`.
    /// Spectral norm keeps energies small (a few tenths), so a softmax over
    /// them at `T = 1` is nearly flat and its gradient weak. Default 1.
    #[serde(default = "one")]
    pub label_temperature: f64,
    /// Weight of the paper's KL term, `E_stop(x_K)` differentiated through
    /// the chain's last step (0, the default: none). See
    /// [`crate::training::kl_term`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kl: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn one() -> f64 {
    1.0
}
fn ten() -> usize {
    10
}
fn default_max_abs_energy() -> f64 {
    1e4
}

impl TrainerConfig {
    /// This trainer with the KL term's weight set to `kl`.
    pub fn with_kl(&self, kl: f64) -> TrainerConfig {
        TrainerConfig { kl, ..self.clone() }
    }

    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(CoreError::config("trainer.batch_size must be positive"));
        }
        if !(self.alpha >= 0.0) {
            return Err(CoreError::config("trainer.alpha must be >= 0"));
        }
        if !(self.label_temperature > 0.0 && self.label_temperature.is_finite()) {
            return Err(CoreError::config(
                "trainer.label_temperature must be finite and > 0",
            ));
        }
        if !(self.label_contrast >= 0.0 && self.label_contrast.is_finite()) {
            return Err(CoreError::config(
                "trainer.label_contrast must be finite and >= 0",
            ));
        }
        if !(self.kl >= 0.0 && self.kl.is_finite()) {
            return Err(CoreError::config("trainer.kl must be finite and >= 0"));
        }
        if self.kl > 0.0 && self.langevin.steps == 0 {
            return Err(CoreError::config(
                "trainer.kl needs at least one Langevin step (langevin.steps = 0)",
            ));
        }
        if !(self.max_abs_energy > 0.0) {
            return Err(CoreError::config("trainer.max_abs_energy must be positive"));
        }
        self.langevin.validate()?;
        self.replay.validate()?;
        self.adam.validate()
    }

    /// A small config for quick runs: batch 128, K steps, Adam `lr`.
    pub fn quick(langevin: LangevinConfig, replay: ReplayConfig, lr: f64) -> Self {
        Self {
            batch_size: 128,
            alpha: 1.0,
            langevin,
            replay,
            adam: AdamConfig::with_lr(lr),
            seed: 0,
            checkpoint_every: 0,
            keep_checkpoints: 10,
            max_abs_energy: default_max_abs_energy(),
            label_contrast: 0.0,
            label_temperature: 1.0,
            kl: 0.0,
        }
    }
}

/// Supplies batches of positive (data) samples.
pub trait PositiveSource {
    /// Flattened size of one sample.
    fn sample_dim(&self) -> usize;
    /// Width of the conditioning (0 for none).
    fn cond_dim(&self) -> usize;
    /// `n` samples `[n, sample_dim]` and their conditioning `[n, cond_dim]`.
    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)>;

    /// Starts `[n, sample_dim]` for chains that do not come from the replay
    /// buffer, given the batch's positives and their conditioning. `None`
    /// (the default) means uniform noise over the buffer's range; trajectory
    /// data starts near the last context state instead, as rollouts do.
    fn fresh_starts(
        &self,
        _positives: &Tensor,
        _cond: Option<&Tensor>,
        _rng: &mut Rng,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
    }
}

/// Figures of one training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: u64,
    pub loss: f64,
    pub e_pos: f64,
    pub e_neg: f64,
    /// The classification term's cross-entropy (0 without one).
    pub label_ce: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainerConfig,
    rng: Rng,
    adam_t: u64,
    replay_head: usize,
    sample_dim: usize,
    cond_dim: usize,
}

pub struct Trainer<M: EnergyModel> {
    cfg: TrainerConfig,
    model_cfg: M::Config,
    model: M,
    params: ParamStore,
    adam: Adam,
    buffer: ReplayBuffer,
    sampler: LangevinSampler,
    rng: Rng,
    step: u64,
    normalization: Option<Normalization>,
    device: Device,
}

impl<M: EnergyModel> Trainer<M> {
    /// A fresh trainer; parameters and randomness are fixed by `cfg.seed`.
    pub fn new(
        model_cfg: M::Config,
        cfg: TrainerConfig,
        sample_dim: usize,
        cond_dim: usize,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let params = ParamStore::new(cfg.seed, device);
        let model = M::init(&model_cfg, &params)?;
        Ok(Self {
            adam: Adam::new(cfg.adam.clone())?,
            buffer: ReplayBuffer::new(cfg.replay.clone(), sample_dim, cond_dim)?,
            sampler: LangevinSampler::new(cfg.langevin.clone())?,
            rng: Rng::derived(cfg.seed, "trainer"),
            step: 0,
            normalization: None,
            device: device.clone(),
            cfg,
            model_cfg,
            model,
            params,
        })
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    /// Starts a fresh run from trained weights (every parameter and buffer
    /// by name, e.g. the members of a sum from their own runs) instead of
    /// the seeded initialisation. Only before the first step.
    pub fn warm_start(&mut self, weights: &BTreeMap<String, Tensor>) -> Result<()> {
        if self.step != 0 {
            return Err(CoreError::config(format!(
                "warm start: the run is at step {}, not at its start",
                self.step
            )));
        }
        self.params.assign_from(weights)?;
        self.model.refresh()?;
        Ok(())
    }

    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.cfg
    }

    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// Statistics saved in every checkpoint (applied by the data source).
    pub fn set_normalization(&mut self, n: Option<Normalization>) {
        self.normalization = n;
    }

    /// One step of Algorithm 1. Models with dropout train with masks drawn
    /// from the seed and the step number (so a resumed run repeats them),
    /// and are left without dropout between steps.
    pub fn step(&mut self, data: &dyn PositiveSource) -> Result<StepStats> {
        let seed = self.cfg.seed ^ (self.step + 1).wrapping_mul(0xA076_1D64_78BD_642F);
        self.model.set_dropout_seed(Some(seed));
        let stats = self.step_with_dropout(data);
        self.model.set_dropout_seed(None);
        stats
    }

    fn step_with_dropout(&mut self, data: &dyn PositiveSource) -> Result<StepStats> {
        let b = self.cfg.batch_size;
        let (x_pos, c_pos) = data.batch(b, &mut self.rng, &self.device)?;
        let fresh = data.fresh_starts(&x_pos, c_pos.as_ref(), &mut self.rng)?;
        let starts = self.buffer.draw(
            b,
            c_pos.as_ref(),
            fresh.as_ref(),
            &mut self.rng,
            &self.device,
        )?;
        self.model.power_iteration()?;
        let frozen = self.model.frozen();
        let terms = [EnergyTerm::new(
            &frozen as &dyn EnergyFunction,
            starts.cond.clone(),
        )];
        let (x_neg, kl) = match self.cfg.kl > 0.0 {
            false => {
                let x = self
                    .sampler
                    .sample(&terms, &starts.x, None, &mut self.rng)?;
                (x.detach(), None)
            }
            true => self.sample_with_kl_rows(&terms, &starts.x, starts.cond.as_ref())?,
        };
        self.buffer.push(&x_neg, starts.cond.as_ref())?;

        let labels = match (&c_pos, self.cfg.label_contrast > 0.0) {
            (Some(c), true) => Some(LabelContrast::new(
                &frozen,
                &x_pos,
                c,
                self.cfg.label_temperature,
            )?),
            _ => None,
        };
        let (e_pos, e_neg, fused) = self.loss_energies(
            &x_pos,
            c_pos.as_ref(),
            &x_neg,
            starts.cond.as_ref(),
            kl.as_ref(),
        )?;
        let reg = (e_pos.sqr()?.mean_all()? + e_neg.sqr()?.mean_all()?)?;
        let loss = ((reg * self.cfg.alpha)? + (e_pos.mean_all()? - e_neg.mean_all()?)?)?;
        let label_ce = labels.as_ref().map_or(0.0, |l| l.cross_entropy);
        let stats = StepStats {
            step: self.step + 1,
            loss: f64::from(loss.to_scalar::<f32>()?) + self.cfg.label_contrast * label_ce,
            e_pos: f64::from(e_pos.mean_all()?.to_scalar::<f32>()?),
            e_neg: f64::from(e_neg.mean_all()?.to_scalar::<f32>()?),
            label_ce,
        };
        let limit = self.cfg.max_abs_energy;
        let bad = |v: f64| !v.is_finite() || v.abs() > limit;
        if bad(stats.e_pos) || bad(stats.e_neg) || !stats.loss.is_finite() {
            return Err(CoreError::Diverged {
                step: stats.step,
                e_pos: stats.e_pos,
                e_neg: stats.e_neg,
                loss: stats.loss,
                limit,
            });
        }
        let mut objective = match (fused, &kl) {
            (Some(f), _) => f,
            (None, None) => loss,
            (None, Some(k)) => {
                let w = Tensor::from_vec(k.weights.clone(), k.weights.len(), &self.device)?;
                let e = self.model.energy(&k.x, k.cond.as_ref())?;
                (loss + (e * w)?.sum_all()?)?
            }
        };
        if let Some(l) = &labels {
            objective = (objective + l.surrogate(&self.model, self.cfg.label_contrast)?)?;
        }
        let grads = objective.backward()?;
        self.adam.step(&self.params, &grads)?;
        self.model.refresh()?;
        self.step += 1;
        Ok(stats)
    }

    /// The chain's negatives with the KL term's rows (the last step taken
    /// apart, [`crate::training::kl_term`]).
    fn sample_with_kl_rows(
        &mut self,
        terms: &[EnergyTerm],
        x0: &Tensor,
        cond: Option<&Tensor>,
    ) -> Result<(Tensor, Option<KlRows>)> {
        let lcfg = &self.cfg.langevin;
        let head = LangevinConfig {
            steps: lcfg.steps - 1,
            ..lcfg.clone()
        };
        let x = LangevinSampler::new(head)?.sample(terms, x0, None, &mut self.rng)?;
        let last = kl_term::last_step(lcfg, terms, &x.detach(), &mut self.rng)?;
        let rows = kl_term::kl_rows(lcfg, terms, &last, cond, self.cfg.kl)?;
        Ok((last.end.detach(), rows))
    }

    /// The energies of the positives and negatives; where the model has a
    /// fused path, they come without a graph, together with a scalar whose
    /// parameter gradient is the loss's (one pass: each sample's term depends
    /// only on its own energy) (`dL/dE+_i = (2 alpha E+_i + 1) / B`,
    /// `dL/dE-_i = (2 alpha E-_i - 1) / B`), plus the KL term's rows at their
    /// own weights.
    pub(crate) fn loss_energies(
        &self,
        x_pos: &Tensor,
        c_pos: Option<&Tensor>,
        x_neg: &Tensor,
        c_neg: Option<&Tensor>,
        kl: Option<&KlRows>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (np, nn) = (x_pos.dim(0)?, x_neg.dim(0)?);
        let mut xs = vec![x_pos.clone(), x_neg.clone()];
        let mut cs = vec![c_pos.cloned(), c_neg.cloned()];
        if let Some(k) = kl {
            xs.push(k.x.clone());
            cs.push(k.cond.clone());
        }
        let conds = match cs.iter().all(Option::is_some) {
            true => Some(Some(Tensor::cat(
                &cs.into_iter().flatten().collect::<Vec<_>>(),
                0,
            )?)),
            false if cs.iter().all(Option::is_none) => Some(None),
            false => None,
        };
        if let (Some(c_all), true) = (conds, x_pos.dims()[1..] == x_neg.dims()[1..]) {
            let alpha = self.cfg.alpha as f32;
            let weight = |i: usize, e: f32| match i {
                i if i < np => (2.0 * alpha * e + 1.0) / np as f32,
                i if i < np + nn => (2.0 * alpha * e - 1.0) / nn as f32,
                i => kl.map_or(0.0, |k| k.weights[i - np - nn]),
            };
            let x_all = Tensor::cat(&xs, 0)?;
            if let Some(r) = self.model.fused_energy_vjp(&x_all, c_all.as_ref(), &weight) {
                let (e, surrogate) = r?;
                return Ok((e.narrow(0, 0, np)?, e.narrow(0, np, nn)?, Some(surrogate)));
            }
        }
        Ok((
            self.model.energy(x_pos, c_pos)?,
            self.model.energy(x_neg, c_neg)?,
            None,
        ))
    }

    /// Runs `steps` steps, checkpointing into `run_dir` every
    /// `checkpoint_every` steps and at the end; `on_step` sees each step's figures.
    pub fn train(
        &mut self,
        data: &dyn PositiveSource,
        steps: u64,
        run_dir: Option<&Path>,
        mut on_step: impl FnMut(&StepStats),
    ) -> Result<()> {
        for _ in 0..steps {
            let stats = self.step(data)?;
            on_step(&stats);
            if let Some(run) = run_dir {
                let every = self.cfg.checkpoint_every;
                if every > 0 && self.step.is_multiple_of(every) {
                    self.checkpoint_into(run)?;
                }
            }
        }
        if let Some(run) = run_dir {
            if checkpoint::latest(run)? != Some(checkpoint::step_dir(run, self.step)) {
                self.checkpoint_into(run)?;
            }
        }
        Ok(())
    }

    /// Saves `<run>/step-<N>` and points `<run>/latest` at it.
    pub fn checkpoint_into(&self, run: &Path) -> Result<()> {
        let dir = checkpoint::step_dir(run, self.step);
        self.save(&dir)?;
        checkpoint::mark_latest(run, &dir, self.cfg.keep_checkpoints)
    }

    /// Writes a full training checkpoint to `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut manifest = Manifest::new::<M>(&self.model_cfg, self.step)?;
        manifest.normalization = self.normalization.clone();
        let state = TrainerState {
            config: self.cfg.clone(),
            rng: self.rng.clone(),
            adam_t: self.adam.t(),
            replay_head: self.buffer.head(),
            sample_dim: self.buffer.sample_dim(),
            cond_dim: self.buffer.cond_dim(),
        };
        manifest.trainer =
            Some(serde_json::to_value(&state).map_err(|e| CoreError::config(e.to_string()))?);
        let mut trainer_tensors = self.adam.to_tensors();
        trainer_tensors.extend(self.buffer.to_tensors(&self.device)?);
        let mut files = BTreeMap::new();
        files.insert(WEIGHTS.to_string(), self.params.tensors());
        files.insert(STATE_FILE.to_string(), trainer_tensors);
        checkpoint::save(dir, manifest, &files)
    }

    /// Restores a trainer from a checkpoint directory, or from a run directory's
    /// latest checkpoint (the newest intact earlier step if that one is
    /// damaged, see [`checkpoint::load_latest`]), exactly as it was saved.
    pub fn resume(path: &Path, device: &Device) -> Result<Self> {
        let loaded = match checkpoint::load_latest(path, device)? {
            Some(loaded) => loaded,
            None => checkpoint::load(path, device)?,
        };
        let dir = loaded.dir.clone();
        let state: TrainerState = match &loaded.manifest.trainer {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                CoreError::checkpoint(&dir, format!("trainer state does not parse: {e}"))
            })?,
            None => {
                return Err(CoreError::checkpoint(
                    &dir,
                    "is an inference export without trainer state; cannot resume",
                ))
            }
        };
        let model_cfg = loaded.model_config::<M>()?;
        let (model, params) = loaded.model::<M>(device)?;
        let tensors = loaded
            .files
            .get(STATE_FILE)
            .ok_or_else(|| CoreError::checkpoint(&dir, format!("has no {STATE_FILE}")))?;
        let mut adam = Adam::new(state.config.adam.clone())?;
        adam.restore(tensors, state.adam_t);
        let mut buffer = ReplayBuffer::new(
            state.config.replay.clone(),
            state.sample_dim,
            state.cond_dim,
        )?;
        buffer.restore(tensors, state.replay_head)?;
        Ok(Self {
            sampler: LangevinSampler::new(state.config.langevin.clone())?,
            cfg: state.config,
            model_cfg,
            model,
            params,
            adam,
            buffer,
            rng: state.rng,
            step: loaded.manifest.step,
            normalization: loaded.manifest.normalization.clone(),
            device: device.clone(),
        })
    }
}
