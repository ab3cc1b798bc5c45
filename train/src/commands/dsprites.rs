//! `ebm-train dsprites`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Subcommand;
use ebm_train::dsprites::compose::{
    evaluate, progressive, ComposeRow, ComposeSettings, Models, Sampler,
};
use ebm_train::dsprites::cross::{self, CrossConfig};
use ebm_train::dsprites::data::{Concept, Holdout};
use ebm_train::dsprites::finetune::{
    finetune_panel, finetune_parts, finetuned_dir, parts_finetuned_dir,
};
use ebm_train::dsprites::reader::LatentReader;
use ebm_train::dsprites::train::{run_dir, train_concepts, DspritesConfig};
use ebm_train::images::eval::export_model;

#[derive(Subcommand, Debug)]
pub enum DspritesCommand {
    /// Train (or resume) one conditional EBM per concept and the model on
    /// all latents, on procedurally rendered sprites.
    Train {
        #[arg(long, default_value = "configs/dsprites.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites")]
        out: PathBuf,
    },
    /// Copy each concept model's latest weights (no trainer state) from a
    /// run to `--to`, which `compose --out` then reads (the fine-tuned sum's
    /// members too, if the config fine-tunes).
    Export {
        #[arg(long, default_value = "configs/dsprites.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites")]
        out: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
    /// Fine-tune the sum of the concept models (not `all`) in `--out` as
    /// one energy on their training data for the config's `finetune` steps
    /// (resumable), into `<out>/finetuned`.
    Finetune {
        #[arg(long, default_value = "configs/dsprites.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites")]
        out: PathBuf,
    },
    /// Sample seen and held-out combinations by summing the concept models'
    /// energies and with the all-latent model (if the config has one); read
    /// the latents back with an independent reader; sample seen
    /// combinations by the sum of the first 1, 2, ... concept models; write
    /// `compose.json` and pictures.
    Compose {
        #[arg(long, default_value = "configs/dsprites.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites")]
        out: PathBuf,
        /// Where the tables and pictures go (default `<out>/figures`).
        #[arg(long)]
        figures: Option<PathBuf>,
        /// Combinations per set.
        #[arg(long, default_value_t = 200)]
        n: usize,
        /// Training steps of the latent reader.
        #[arg(long, default_value_t = 4000)]
        reader_steps: usize,
        /// Langevin steps per sample, instead of the config's.
        #[arg(long)]
        langevin_steps: Option<usize>,
    },
    /// The paper's zero-shot cross product (Figure 16): train (or resume)
    /// every model of a cross config on its small training sets.
    CrossTrain {
        #[arg(long, default_value = "configs/dsprites_cross.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites_cross")]
        out: PathBuf,
    },
    /// Fine-tune the sum of each panel's composed models that sets
    /// `finetune` (run by `cross-train` too), from the models in `--out`
    /// (training runs or exported weights).
    CrossFinetune {
        #[arg(long, default_value = "configs/dsprites_cross.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites_cross")]
        out: PathBuf,
    },
    /// Copy each cross model's latest weights (no trainer state) to `--to`.
    CrossExport {
        #[arg(long, default_value = "configs/dsprites_cross.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites_cross")]
        out: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
    /// Ask every panel's composed models and baselines for the combinations
    /// no composed model saw; read them back; write `cross.json` and
    /// pictures.
    CrossCompose {
        #[arg(long, default_value = "configs/dsprites_cross.toml")]
        config: PathBuf,
        #[arg(long, default_value = "out/dsprites_cross")]
        out: PathBuf,
        /// Where the tables and pictures go (default `<out>/figures`).
        #[arg(long)]
        figures: Option<PathBuf>,
        /// Combinations per panel.
        #[arg(long, default_value_t = 200)]
        n: usize,
        /// Training steps of the latent reader.
        #[arg(long, default_value_t = 4000)]
        reader_steps: usize,
        /// Which draw of combinations: choose settings on `validation`;
        /// `trained` asks for the training sets' own combinations instead.
        #[arg(long, value_enum, default_value = "test")]
        split: cross::Split,
    },
}

pub fn run(command: DspritesCommand, device: Device) -> Result<()> {
    match command {
        DspritesCommand::Train { config, out } => {
            let cfg = DspritesConfig::load(&config)?;
            train_concepts(&cfg, &out, &device)
        }
        DspritesCommand::Export { config, out, to } => {
            let cfg = DspritesConfig::load(&config)?;
            let mut runs: Vec<_> = cfg
                .concepts
                .iter()
                .map(|&c| (format!("{c:?}"), run_dir(&out, c), run_dir(&to, c)))
                .collect();
            if cfg.finetune.is_some() {
                let (from, dest) = (parts_finetuned_dir(&out), parts_finetuned_dir(&to));
                runs.extend(concept_parts(&cfg, &config)?.into_iter().map(|c| {
                    (
                        format!("{c:?} fine-tuned"),
                        run_dir(&from, c),
                        run_dir(&dest, c),
                    )
                }));
            }
            export_runs(runs.into_iter(), &device)
        }
        DspritesCommand::Finetune { config, out } => {
            let cfg = DspritesConfig::load(&config)?;
            let steps = cfg
                .finetune
                .with_context(|| format!("{}: no `finetune` steps to run", config.display()))?;
            finetune_parts(&cfg, &concept_parts(&cfg, &config)?, steps, &out, &device)
        }
        DspritesCommand::Compose {
            config,
            out,
            figures,
            n,
            reader_steps,
            langevin_steps,
        } => {
            let cfg = DspritesConfig::load(&config)?;
            let parts = concept_parts(&cfg, &config)?;
            let composed = Models::load(&out, &parts, &device)?;
            let finetuned = match cfg.finetune {
                Some(_) => Some(
                    Models::load(&parts_finetuned_dir(&out), &parts, &device).with_context(
                        || "the config sets `finetune`: run `ebm-train dsprites finetune` first",
                    )?,
                ),
                None => None,
            };
            let baseline = if cfg.concepts.contains(&Concept::All) {
                Some(Models::load(&out, &[Concept::All], &device)?)
            } else {
                None
            };
            let reader = LatentReader::train(&[512, 256], reader_steps, 0, &device)
                .context("training the latent reader")?;
            let mut langevin = cfg.compose_langevin();
            langevin.steps = langevin_steps.unwrap_or(langevin.steps);
            let settings = ComposeSettings {
                holdout: cfg.holdout.unwrap_or(Holdout { large_scales: 0 }),
                langevin,
                start: [cfg.trainer.replay.init_low, cfg.trainer.replay.init_high],
                n,
            };
            let figures = figures.unwrap_or_else(|| out.join("figures"));
            let sampler = |name, models, own_noise| Sampler {
                name,
                models,
                own_noise,
            };
            let mut samplers = vec![sampler("composed concept EBMs", &composed, false)];
            samplers.extend(
                baseline
                    .as_ref()
                    .map(|b| sampler("one EBM on all latents", b, false)),
            );
            samplers.extend(finetuned.as_ref().map(|f| sampler(FINETUNED, f, true)));
            let mut rows = evaluate(&samplers, &reader, &settings, &figures, &device)?;
            rows.extend(progressive(
                &out, &parts, &reader, &settings, &figures, &device,
            )?);
            write_rows(&rows, &figures.join("compose.json"))
        }
        DspritesCommand::CrossTrain { config, out } => {
            cross::train_all(&CrossConfig::load(&config)?, &out, &device)
        }
        DspritesCommand::CrossFinetune { config, out } => {
            let cfg = CrossConfig::load(&config)?;
            for p in &cfg.panels {
                if let Some(steps) = p.finetune {
                    finetune_panel(&cfg, p, steps, &out, &device)?;
                }
            }
            Ok(())
        }
        DspritesCommand::CrossExport { config, out, to } => {
            let cfg = CrossConfig::load(&config)?;
            let mut runs: Vec<_> = cfg
                .models
                .iter()
                .map(|m| (m.name.clone(), out.join(&m.name), to.join(&m.name)))
                .collect();
            for p in cfg.panels.iter().filter(|p| p.finetune.is_some()) {
                let (from, dest) = (finetuned_dir(&out, p), finetuned_dir(&to, p));
                runs.extend(p.composed.iter().map(|n| {
                    (
                        format!("{} fine-tuned: {n}", p.name),
                        from.join(n),
                        dest.join(n),
                    )
                }));
            }
            export_runs(runs.into_iter(), &device)
        }
        DspritesCommand::CrossCompose {
            config,
            out,
            figures,
            n,
            reader_steps,
            split,
        } => {
            let cfg = CrossConfig::load(&config)?;
            let reader = LatentReader::train(&[512, 256], reader_steps, 0, &device)
                .context("training the latent reader")?;
            let figures = figures.unwrap_or_else(|| out.join("figures"));
            let rows = cross::evaluate(&cfg, &out, &reader, n, split, &figures, &device)?;
            let report = figures.join("cross.json");
            std::fs::write(&report, serde_json::to_vec_pretty(&rows)?)
                .with_context(|| format!("writing {}", report.display()))?;
            println!(
                "| sampler | panel | hits | placed and sized | shape bits | shape wrong | position (px) | scale |"
            );
            println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
            for r in rows {
                let (e, s) = (r.row.errors, r.scores);
                println!(
                    "| {} | {} | {:.1}% | {:.1}% | {:.3} | {:.1}% | {:.2} | {:.3} |",
                    r.row.sampler,
                    r.row.combinations,
                    100.0 * s.hits,
                    100.0 * s.placed_and_sized,
                    s.shape_bits,
                    100.0 * e.shape_error,
                    e.position_px,
                    e.scale,
                );
            }
            Ok(())
        }
    }
}

/// The sampler name of the fine-tuned sum in `compose`'s rows.
const FINETUNED: &str = "composed concept EBMs, fine-tuned as one sum";

/// The concept models of `cfg` that `compose` sums (every one but `all`),
/// in the paper's order.
fn concept_parts(cfg: &DspritesConfig, config: &std::path::Path) -> Result<Vec<Concept>> {
    let parts: Vec<Concept> = Concept::PARTS
        .into_iter()
        .filter(|c| cfg.concepts.contains(c))
        .collect();
    anyhow::ensure!(
        !parts.is_empty(),
        "compose needs at least one concept model (not only `all`) in {}",
        config.display()
    );
    Ok(parts)
}

/// Copies each run's latest weights (no trainer state) from `from` to
/// `dest`, named `name`.
fn export_runs(
    runs: impl Iterator<Item = (String, PathBuf, PathBuf)>,
    device: &Device,
) -> Result<()> {
    for (name, from, dest) in runs {
        let step = export_model(&from, &dest, 1, device)?;
        println!(
            "{name}: step {step} of {} to {}",
            from.display(),
            dest.display()
        );
    }
    Ok(())
}

/// Writes `rows` as JSON to `report` and prints them as a table.
fn write_rows(rows: &[ComposeRow], report: &std::path::Path) -> Result<()> {
    std::fs::write(report, serde_json::to_vec_pretty(rows)?)
        .with_context(|| format!("writing {}", report.display()))?;
    println!(
        "| sampler | combinations | shape wrong | position (px) | scale | orientation (deg) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let e = r.errors;
        println!(
            "| {} | {} | {:.1}% | {:.2} | {:.3} | {:.1} |",
            r.sampler,
            r.combinations,
            100.0 * e.shape_error,
            e.position_px,
            e.scale,
            e.orientation_deg
        );
    }
    Ok(())
}
