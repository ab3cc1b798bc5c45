//! `ebm-train images ...`: image EBMs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ebm_train::images::{
    classify, ood, restore, sample_grid, train_images, train_softmax, ImageConfig,
};

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Train (or resume) with Algorithm 1.
    Train {
        /// TOML config (configs/mnist_uncond.toml, configs/mnist_cond.toml).
        #[arg(long)]
        config: PathBuf,
        /// Run directory for checkpoints (resumes when it holds one).
        #[arg(long)]
        run: PathBuf,
        /// Override the total number of training steps.
        #[arg(long)]
        steps: Option<u64>,
    },
    /// Sample a 10 x 10 grid from uniform noise (one class per row when conditional).
    Sample {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        /// Output directory for the PNG.
        #[arg(long)]
        out: PathBuf,
        /// Historical ensemble: sample with the last N checkpoints in turn.
        #[arg(long, default_value_t = 1)]
        ensemble: usize,
    },
    /// Salt-and-pepper denoising, inpainting, cross-class sampling: PNGs and MSE.
    Restore {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// An independent classifier (an `images softmax` run) that grades
        /// cross-class samples; unset: the model grades its own.
        #[arg(long)]
        judge: Option<PathBuf>,
    },
    /// Accuracy under PGD (L-inf and L2) for the EBM, the EBM with the
    /// paper's defence (under the official attack and an adaptive one) and
    /// the softmax classifier: robustness.json and robustness.svg.
    Robustness {
        #[arg(long)]
        config: PathBuf,
        /// The conditional EBM (a run or an export).
        #[arg(long)]
        run: PathBuf,
        /// The softmax classifier (`images softmax`).
        #[arg(long)]
        softmax: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Test digits attacked.
        #[arg(long, default_value_t = 100)]
        images: usize,
        #[arg(long, default_value_t = 20)]
        pgd_steps: usize,
        /// L-inf budgets.
        #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2,0.3")]
        linf: Vec<f64>,
        /// L2 budgets.
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
        l2: Vec<f64>,
        /// Expectation over the defence's noise in the adaptive attack.
        #[arg(long, default_value_t = 1)]
        eot: usize,
        /// Only redraw the figure from `--out`'s robustness.json.
        #[arg(long)]
        redraw: bool,
    },
    /// The weights of a run's latest checkpoint without the trainer state
    /// (about 160 KB): what `configs/models/mnist_*` hold.
    Export {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Also export the last N step checkpoints (weights only), for
        /// `sample --ensemble N` from the export.
        #[arg(long, default_value_t = 1)]
        ensemble: usize,
    },
    /// The same conditional network trained as a plain classifier by
    /// cross-entropy on `-E(x, y) / T` (the cross-class judge, the softmax
    /// baseline); saves the model to `--run`.
    Softmax {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long, default_value_t = 2000)]
        steps: u64,
    },
    /// AUROC of the energy score against OOD sets, and an energy histogram.
    Ood {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Test accuracy of classification by the lowest conditional energy.
    Classify {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
    },
}

fn load_image_config(path: &std::path::Path) -> Result<(ImageConfig, PathBuf)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = ImageConfig::parse(&text).with_context(|| format!("config {}", path.display()))?;
    let base = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    Ok((cfg, base))
}

pub fn run(command: ImagesCommand, device: candle_core::Device) -> Result<()> {
    match command {
        ImagesCommand::Train { config, run, steps } => {
            let (mut cfg, base) = load_image_config(&config)?;
            if let Some(s) = steps {
                cfg.steps = s;
            }
            let s = train_images(&cfg, &base, &run, &device)?;
            println!(
                "trained {} steps in {:.0} s: {:.1} images/s, {} parameters; last E+ {:.4}, E- {:.4}",
                s.steps, s.seconds, s.images_per_second, s.parameters, s.last_e_pos, s.last_e_neg
            );
            Ok(())
        }
        ImagesCommand::Sample {
            config,
            run,
            out,
            ensemble,
        } => {
            let (cfg, _) = load_image_config(&config)?;
            let path = sample_grid(&cfg, &run, &out, ensemble, &device)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        ImagesCommand::Robustness {
            config,
            run,
            softmax,
            out,
            images,
            pgd_steps,
            linf,
            l2,
            eot,
            redraw,
        } => {
            if redraw {
                ebm_train::images::robustness::redraw(&out)?;
                println!("figure: {}", out.join("robustness.svg").display());
                return Ok(());
            }
            let (cfg, base) = load_image_config(&config)?;
            let plan = ebm_train::images::robustness::RobustnessPlan {
                images,
                pgd_steps,
                linf,
                l2,
                defence_steps: 10,
                max_change: 0.03,
                eot_samples: eot,
            };
            let curves = ebm_train::images::robustness::robustness(
                &cfg, &base, &run, &softmax, &out, &plan, &device,
            )?;
            println!("| model | budget | epsilon -> accuracy |\n|---|---|---|");
            for c in curves {
                let v: Vec<String> = c
                    .eps
                    .iter()
                    .zip(&c.accuracy)
                    .map(|(e, a)| format!("{e}: {:.1}%", 100.0 * a))
                    .collect();
                println!("| {} | {} | {} |", c.name, c.norm, v.join(", "));
            }
            println!("figure: {}", out.join("robustness.svg").display());
            Ok(())
        }
        ImagesCommand::Export { run, out, ensemble } => {
            let step = ebm_train::images::eval::export_model(&run, &out, ensemble, &device)?;
            println!(
                "exported step {step} of {} to {}",
                run.display(),
                out.display()
            );
            Ok(())
        }
        ImagesCommand::Softmax { config, run, steps } => {
            let (cfg, base) = load_image_config(&config)?;
            let s = train_softmax(&cfg, &base, &run, steps, &device)?;
            println!(
                "softmax classifier: {} steps in {:.0} s; validation accuracy {}; saved to {}",
                s.steps,
                s.seconds,
                s.validation_accuracy
                    .map_or("-".into(), |a| format!("{:.1}%", 100.0 * a)),
                run.display()
            );
            Ok(())
        }
        ImagesCommand::Restore {
            config,
            run,
            out,
            judge,
        } => {
            let (cfg, base) = load_image_config(&config)?;
            let report = restore(&cfg, &base, &run, &out, judge.as_deref(), &device)?;
            let rows = report.rows;
            println!("| task | images | MSE corrupted | MSE restored | baselines (MSE) |\n|---|---|---|---|---|");
            for r in rows {
                let b: Vec<String> = r
                    .baselines
                    .iter()
                    .map(|b| format!("{} {:.4}", b.method, b.mse))
                    .collect();
                println!(
                    "| {} | {} | {:.4} | {:.4} | {} |",
                    r.task,
                    r.images,
                    r.mse_corrupted,
                    r.mse_restored,
                    b.join("; ")
                );
            }
            if let Some(c) = report.cross {
                println!(
                    "cross-class: {:.1}% of {} digits sampled under the next class are classified as it by {}",
                    100.0 * c.share,
                    c.images,
                    c.graded_by
                );
            }
            println!("PNGs in {}", out.display());
            Ok(())
        }
        ImagesCommand::Ood { config, run, out } => {
            let (cfg, base) = load_image_config(&config)?;
            let rows = ood(&cfg, &base, &run, &out, &device)?;
            println!("| OOD set | images | AUROC |\n|---|---|---|");
            for r in rows {
                println!("| {} | {} | {:.3} |", r.ood_set, r.images, r.auroc);
            }
            println!("histogram: {}", out.join("energy_histogram.svg").display());
            Ok(())
        }
        ImagesCommand::Classify { config, run } => {
            let (cfg, base) = load_image_config(&config)?;
            let (n, acc) = classify(&cfg, &base, &run, &device)?;
            println!(
                "classification by lowest energy: {:.1}% of {n} test digits",
                100.0 * acc
            );
            Ok(())
        }
    }
}
