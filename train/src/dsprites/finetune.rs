//! The paper's fine-tuning of a summed energy before zero-shot composition
//! (Section 7: "we first finetune the summation energy to generate both
//! training datasets"): a panel's composed models, each trained on its own
//! set, are trained further as one sum by Algorithm 1 on the union of
//! their sets, each member reading its own latents. The paper adds a KL
//! term (its appendix); this is Algorithm 1 alone.
//!
//! Layout under `--out`: `<panel>-finetuned/sum` (the run, resumable) and
//! `<panel>-finetuned/<member>` (each member's weights after fine-tuning,
//! an ordinary model that `cross-compose` sums like the others).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::checkpoint::{self, Manifest};
use ebm_core::{
    ParamStore, PositiveSource, ResNetEnergy, ResNetEnergyConfig, Rng, Summed, SummedConfig,
    SummedMember, Trainer, TrainerConfig,
};

use super::cross_config::{CrossConfig, Panel};
use super::cross_data::Subset;
use super::data::{draw_latents, sprite_batch, Concept, Holdout};
use super::render::SIZE;
use super::train::DspritesConfig;

/// Which sprites a sum is fine-tuned on.
pub enum Sprites {
    /// A union of the cross experiment's sets, each drawn equally often.
    Subsets(Vec<Subset>),
    /// Every combination but the held-out ones (the data of `dsprites
    /// train`).
    AllBut(Option<Holdout>),
}

/// Sprites conditioned on several concepts at once: each concept's
/// encoding in turn, as the sum's members read them.
pub struct JointData {
    pub concepts: Vec<Concept>,
    pub sprites: Sprites,
}

impl PositiveSource for JointData {
    fn sample_dim(&self) -> usize {
        SIZE * SIZE
    }

    fn cond_dim(&self) -> usize {
        self.concepts.iter().map(|c| c.dim()).sum()
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        sprite_batch(&self.concepts, n, device, || match &self.sprites {
            Sprites::Subsets(sets) => sets[rng.below(sets.len())].draw(rng),
            Sprites::AllBut(holdout) => draw_latents(rng, *holdout),
        })
    }
}

/// Where a panel's fine-tuned models live under `out`.
pub fn finetuned_dir(out: &Path, p: &Panel) -> PathBuf {
    out.join(format!("{}-finetuned", p.name))
}

/// The sum of `members` (each a name and its concept), in that order,
/// every member's network from `network`.
pub fn summed_config(
    members: &[(String, Concept)],
    network: impl Fn(&str, Concept) -> Result<ResNetEnergyConfig>,
) -> Result<SummedConfig<ResNetEnergyConfig>> {
    let mut start = 0;
    let mut out = Vec::new();
    for (name, concept) in members {
        out.push(SummedMember {
            name: name.clone(),
            cond_start: start,
            cond_dim: concept.dim(),
            model: network(name, *concept)?,
        });
        start += concept.dim();
    }
    Ok(SummedConfig { members: out })
}

/// Fine-tunes the panel's sum for `steps` steps (resuming where it
/// stopped), starting from its members' trained weights in `out/<name>`,
/// then writes each member's weights to `finetuned_dir/<name>`.
pub fn finetune_panel(
    cfg: &CrossConfig,
    p: &Panel,
    steps: u64,
    out: &Path,
    device: &Device,
) -> Result<()> {
    let members = p
        .composed
        .iter()
        .map(|n| Ok((n.clone(), cfg.model_named(n)?.concept)))
        .collect::<Result<Vec<_>>>()?;
    let sum_cfg = summed_config(&members, |n, _| Ok(cfg.network(cfg.model_named(n)?)))?;
    let data = JointData {
        concepts: members.iter().map(|(_, c)| *c).collect(),
        sprites: Sprites::Subsets(cfg.trained_sets(p)?),
    };
    let dir = finetuned_dir(out, p);
    let trainer = cfg.trainer.with_kl(cfg.finetune_kl);
    finetune_sum(&sum_cfg, &data, &trainer, steps, out, &dir, device)
}

/// Where `dsprites finetune` writes the fine-tuned concept models under
/// `out` (each in its concept's folder, as `dsprites train` names them).
pub fn parts_finetuned_dir(out: &Path) -> PathBuf {
    out.join("finetuned")
}

/// Fine-tunes the sum of the concept models `parts` (trained by `dsprites
/// train` in `out`) for `steps` steps on the data they were trained on,
/// each member reading its own concept, into `parts_finetuned_dir(out)`.
pub fn finetune_parts(
    cfg: &DspritesConfig,
    parts: &[Concept],
    steps: u64,
    out: &Path,
    device: &Device,
) -> Result<()> {
    let members: Vec<(String, Concept)> = parts
        .iter()
        .map(|&c| (format!("{c:?}").to_lowercase(), c))
        .collect();
    let sum_cfg = summed_config(&members, |_, c| Ok(cfg.model_for(c)))?;
    let data = JointData {
        concepts: parts.to_vec(),
        sprites: Sprites::AllBut(cfg.holdout),
    };
    let dir = parts_finetuned_dir(out);
    let trainer = cfg.trainer.with_kl(cfg.finetune_kl);
    finetune_sum(&sum_cfg, &data, &trainer, steps, out, &dir, device)
}

/// Fine-tunes the sum `sum_cfg` on `data` for `steps` steps of Algorithm 1
/// (resuming where it stopped, in `dir/sum`), starting from each member's
/// trained weights in `from/<member>`, then writes each member's weights
/// to `dir/<member>`.
pub fn finetune_sum(
    sum_cfg: &SummedConfig<ResNetEnergyConfig>,
    data: &impl PositiveSource,
    trainer: &TrainerConfig,
    steps: u64,
    from: &Path,
    dir: &Path,
    device: &Device,
) -> Result<()> {
    let run_dir = dir.join("sum");
    let mut run = if checkpoint::latest(&run_dir)?.is_some() {
        Trainer::<Summed<ResNetEnergy>>::resume(&run_dir, device)
            .with_context(|| format!("resuming {}", run_dir.display()))?
    } else {
        let mut run = Trainer::<Summed<ResNetEnergy>>::new(
            sum_cfg.clone(),
            trainer.clone(),
            SIZE * SIZE,
            data.cond_dim(),
            device,
        )?;
        run.warm_start(&member_weights(sum_cfg, from, device)?)?;
        run
    };
    let left = steps.saturating_sub(run.step_count());
    run.train(data, left, Some(&run_dir), |s| {
        if s.step % 50 == 0 {
            tracing::info!(
                sum = %dir.display(),
                step = s.step,
                e_pos = s.e_pos,
                e_neg = s.e_neg,
                "fine-tuning the sum"
            );
        }
    })?;
    let weights = run.params().tensors();
    save_members(sum_cfg, &weights, run.step_count(), dir, device)
}

/// Writes each member's part of the sum's `weights` as a model of its own
/// in `dir/<member>`.
fn save_members(
    sum: &SummedConfig<ResNetEnergyConfig>,
    weights: &BTreeMap<String, Tensor>,
    step: u64,
    dir: &Path,
    device: &Device,
) -> Result<()> {
    for m in &sum.members {
        let prefix = format!("{}.", m.name);
        let own: BTreeMap<String, Tensor> = weights
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        let params = ParamStore::from_tensors(own, device)?;
        let manifest = Manifest::new::<ResNetEnergy>(&m.model, step)?;
        checkpoint::save_model(&dir.join(&m.name), manifest, &params)?;
    }
    Ok(())
}

/// Every member's latest trained weights, named as the sum names them.
fn member_weights(
    sum: &SummedConfig<ResNetEnergyConfig>,
    out: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let mut all = BTreeMap::new();
    for m in &sum.members {
        let from = out.join(&m.name);
        let context = || format!("{}: the model to fine-tune", from.display());
        // A training run's latest checkpoint, or an exported model.
        let loaded = match checkpoint::load_latest(&from, device).with_context(context)? {
            Some(l) => l,
            None => checkpoint::load(&from, device).with_context(context)?,
        };
        let (_, params) = loaded.model::<ResNetEnergy>(device)?;
        for (k, v) in params.tensors() {
            all.insert(format!("{}.{k}", m.name), v);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{EnergyFunction, EnergyModel};

    /// The fine-tuning data of `dsprites finetune` hold each concept's
    /// encoding in turn and never a held-out combination.
    #[test]
    fn full_data_keep_the_held_out_combinations_out() -> Result<()> {
        use crate::dsprites::render::{POSITIONS, SCALES};
        let data = JointData {
            concepts: vec![Concept::Position, Concept::Scale],
            sprites: Sprites::AllBut(Some(Holdout { large_scales: 2 })),
        };
        assert_eq!(data.cond_dim(), 4);
        let (_, c) = data.batch(600, &mut Rng::new(8), &Device::Cpu)?;
        let rows: Vec<Vec<f32>> = c.expect("conditioned").to_vec2()?;
        let (mut large_right, mut small_left) = (0, 0);
        for r in &rows {
            let x = (f64::from(r[0]) * (POSITIONS - 1) as f64).round() as usize;
            let scale = (f64::from(r[2]) * (SCALES - 1) as f64).round() as usize;
            assert!((r[2] + r[3] - 1.0).abs() < 1e-6, "scale columns: {r:?}");
            let large = scale + 2 >= SCALES;
            assert!(!(large && x < POSITIONS / 2), "held out: {r:?}");
            large_right += usize::from(large);
            small_left += usize::from(!large && x < POSITIONS / 2);
        }
        assert!(
            large_right > 50 && small_left > 50,
            "{large_right} {small_left}"
        );
        Ok(())
    }

    /// The sum's energy is its members' energies under their own columns,
    /// its trainer starts from the members' weights, and the members it
    /// writes back load as models whose energies add up to the sum's.
    #[test]
    fn the_sum_starts_as_its_members() -> Result<()> {
        let dev = Device::Cpu;
        let tiny = |classes| ResNetEnergyConfig {
            stem_channels: 4,
            stages: vec![ebm_core::models::StageConfig {
                channels: 4,
                downsample: true,
            }],
            num_classes: classes,
            image_size: SIZE,
            in_channels: 1,
            ..ResNetEnergyConfig::mnist_small(classes)
        };
        let (a, b) = (Concept::PositionGrid, Concept::Scale);
        let stores = [ParamStore::new(1, &dev), ParamStore::new(2, &dev)];
        let ma = ResNetEnergy::init(&tiny(a.dim()), &stores[0])?;
        let mb = ResNetEnergy::init(&tiny(b.dim()), &stores[1])?;
        let sum_cfg = SummedConfig {
            members: vec![
                SummedMember {
                    name: "a".into(),
                    cond_start: 0,
                    cond_dim: a.dim(),
                    model: tiny(a.dim()),
                },
                SummedMember {
                    name: "b".into(),
                    cond_start: a.dim(),
                    cond_dim: b.dim(),
                    model: tiny(b.dim()),
                },
            ],
        };
        let mut weights = BTreeMap::new();
        for (name, s) in [("a", &stores[0]), ("b", &stores[1])] {
            for (k, v) in s.tensors() {
                weights.insert(format!("{name}.{k}"), v);
            }
        }
        let trainer = ebm_core::TrainerConfig::quick(
            ebm_core::LangevinConfig {
                steps: 2,
                step_size: 1.0,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
            ebm_core::ReplayConfig {
                capacity: 10,
                replay_prob: 0.0,
                init_low: 0.0,
                init_high: 1.0,
                quantize_u8: false,
                labels: Default::default(),
            },
            1e-3,
        );
        let data = JointData {
            concepts: vec![a, b],
            sprites: Sprites::Subsets(vec![Subset::CentralSizes, Subset::SmallPositions]),
        };
        let mut run = Trainer::<Summed<ResNetEnergy>>::new(
            sum_cfg.clone(),
            trainer,
            SIZE * SIZE,
            data.cond_dim(),
            &dev,
        )?;
        run.warm_start(&weights)?;
        let (x, c) = data.batch(6, &mut Rng::new(4), &dev)?;
        let c = c.expect("conditioned");
        let sum: Vec<f32> = run.model().frozen().energy(&x, Some(&c))?.to_vec1()?;
        let ea: Vec<f32> = ma
            .frozen()
            .energy(&x, Some(&c.narrow(1, 0, a.dim())?.contiguous()?))?
            .to_vec1()?;
        let eb: Vec<f32> = mb
            .frozen()
            .energy(&x, Some(&c.narrow(1, a.dim(), b.dim())?.contiguous()?))?
            .to_vec1()?;
        for i in 0..6 {
            let want = ea[i] + eb[i];
            assert!(
                (sum[i] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{i}: {} vs {want}",
                sum[i]
            );
        }
        Ok(())
    }
}
