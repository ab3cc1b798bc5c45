//! `ebm-train traj ...`: trajectory EBMs and the FC baseline.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ebm_train::trajectory::{
    calibrate_export, evaluate, migrate_export, train_trajectory, TrajectoryConfig,
};

#[derive(Subcommand)]
pub enum TrajCommand {
    /// Train the EBM (Algorithm 1) and the FC baseline of one setting.
    Train {
        /// configs/traj_uncond.toml or configs/traj_cond.toml
        #[arg(long)]
        config: PathBuf,
        /// Run directory: `ebm/` checkpoints and `fc/`.
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        steps: Option<u64>,
        /// The recording to use instead of the config's.
        #[arg(long)]
        recording: Option<PathBuf>,
        /// The training seed instead of the config's `[trainer] seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Take both models' context lengths and context noise from a
        /// `traj tune` result (its tune.json) instead of the config's.
        #[arg(long)]
        tuned: Option<PathBuf>,
    },
    /// Recompute an export's OOD statistics (energy percentiles, window
    /// statistics, the Stein window test) on the recording's training split,
    /// keeping its weights.
    Calibrate {
        #[arg(long)]
        config: PathBuf,
        /// The export to recalibrate (a run's `model/`, or configs/models/...).
        #[arg(long)]
        model: PathBuf,
        /// The recording to use instead of the config's.
        #[arg(long)]
        recording: Option<PathBuf>,
    },
    /// Rewrite an export of an earlier format in the current one (OOD
    /// statistics as a typed field, the robot's description), weights untouched.
    Migrate {
        /// The export (a run's `model/`, or configs/models/...).
        #[arg(long)]
        model: PathBuf,
        /// A recording of the robot, for its kind and dimension names.
        #[arg(long)]
        recording: Option<PathBuf>,
    },
    /// Several seeds' evaluation reports of one setting as one table (per
    /// seed and mean +- sd) and one figure (FD over the horizon, with bands).
    Summary {
        /// `report.json` files written by `traj eval`, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        reports: Vec<PathBuf>,
        #[arg(long)]
        title: String,
        /// The paper's EBM / FC ratio for this setting, shown beside ours.
        #[arg(long)]
        paper_ratio: Option<f64>,
        /// Folder for summary.md and fd.svg.
        #[arg(long)]
        out: PathBuf,
    },
    /// Choose each model's context length and context noise on a validation
    /// split carved from the training split: every `[tune]` candidate is
    /// trained and scored for both models; writes tune.md and tune.json into
    /// `--run`.
    Tune {
        #[arg(long)]
        config: PathBuf,
        /// Folder of the candidates' runs (`k<len>-noise-<level>/`); an interrupted
        /// tuning resumes there.
        #[arg(long)]
        run: PathBuf,
        /// The recording to use instead of the config's.
        #[arg(long)]
        recording: Option<PathBuf>,
        /// The training seed instead of the config's `[trainer] seed`.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Roll the EBM, the FC baseline and the noisy FC out on the test split;
    /// Frechet distance and error per step.
    Eval {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The recording to use instead of the config's.
        #[arg(long)]
        recording: Option<PathBuf>,
        /// The seed the run was trained with (`traj train --seed`); it also
        /// seeds the evaluation's sampler.
        #[arg(long)]
        seed: Option<u64>,
        /// The tune.json the run was trained with (`traj train --tuned`).
        #[arg(long)]
        tuned: Option<PathBuf>,
    },
}

pub fn run(command: TrajCommand, device: candle_core::Device) -> Result<()> {
    // The config and the folder its relative paths start from; `recording`
    // replaces the config's.
    let load =
        |p: &std::path::Path, recording: Option<PathBuf>| -> Result<(TrajectoryConfig, PathBuf)> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let mut cfg = TrajectoryConfig::parse(&text)
                .with_context(|| format!("config {}", p.display()))?;
            if let Some(r) = recording {
                cfg.recording = std::path::absolute(r)?;
            }
            Ok((
                cfg,
                p.parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
            ))
        };
    match command {
        TrajCommand::Train {
            config,
            run,
            steps,
            recording,
            seed,
            tuned,
        } => {
            let (mut cfg, base) = load(&config, recording)?;
            apply_tuned(&mut cfg, tuned.as_deref())?;
            if let Some(s) = steps {
                cfg.steps = s;
            }
            if let Some(s) = seed {
                cfg.trainer.seed = s;
            }
            let s = train_trajectory(&cfg, &base, &run, &device)?;
            println!(
                "trained on {} trajectories: EBM {:.0} s, FC baseline {:.0} s (final MSE {:.4})",
                s.train_trajectories, s.ebm_seconds, s.fc_seconds, s.fc_final_mse
            );
            Ok(())
        }
        TrajCommand::Calibrate {
            config,
            model,
            recording,
        } => {
            let (cfg, base) = load(&config, recording)?;
            let s = calibrate_export(&cfg, &base, &model, &device)?;
            println!(
                "recalibrated {} on {} training trajectories: median energy {:.3}, Stein window test {}",
                model.display(),
                s.train_trajectories,
                s.median_energy,
                if s.stein { "stored" } else { "not possible (trajectories shorter than a window)" }
            );
            Ok(())
        }
        TrajCommand::Summary {
            reports,
            title,
            paper_ratio,
            out,
        } => {
            let md =
                ebm_train::trajectory::seeds::write_summary(&title, &reports, paper_ratio, &out)?;
            print!("{md}");
            println!(
                "wrote {} and {}",
                out.join("summary.md").display(),
                out.join("fd.svg").display()
            );
            Ok(())
        }
        TrajCommand::Tune {
            config,
            run,
            recording,
            seed,
        } => {
            let (mut cfg, base) = load(&config, recording)?;
            if let Some(s) = seed {
                cfg.trainer.seed = s;
            }
            std::fs::create_dir_all(&run)?;
            let r = ebm_train::trajectory::tune::tune(&cfg, &base, &run, &device)?;
            print!("{}", ebm_train::trajectory::tune::markdown(&r));
            println!("wrote {}", run.join("tune.md").display());
            Ok(())
        }
        TrajCommand::Migrate { model, recording } => {
            let s = migrate_export(&model, recording.as_deref(), &device)?;
            println!(
                "migrated {}: robot `{}` ({} state / {} action floats, {} named dimensions), OOD calibration {}",
                model.display(),
                s.robot.kind,
                s.robot.state_dim,
                s.robot.action_dim,
                s.robot.state_names.len(),
                if s.ood { "typed" } else { "absent" }
            );
            Ok(())
        }
        TrajCommand::Eval {
            config,
            run,
            out,
            recording,
            seed,
            tuned,
        } => {
            let (mut cfg, base) = load(&config, recording)?;
            apply_tuned(&mut cfg, tuned.as_deref())?;
            if let Some(s) = seed {
                cfg.trainer.seed = s;
            }
            let r = evaluate(&cfg, &base, &run, &out, &device)?;
            println!(
                "| model | avg FD over {} steps | MSE at step 1 | MSE at step {} |\n|---|---|---|---|",
                r.horizon, r.horizon
            );
            let last = r.horizon - 1;
            println!(
                "| EBM ({} particles) | {:.3} | {:.4} | {:.4} |",
                r.particles, r.avg_fd_ebm, r.mse_ebm[0], r.mse_ebm[last]
            );
            println!(
                "| FC baseline | {:.3} | {:.4} | {:.4} |",
                r.avg_fd_fc, r.mse_fc[0], r.mse_fc[last]
            );
            println!(
                "| FC + residual noise ({} particles) | {:.3} | {:.4} | {:.4} |",
                r.particles, r.avg_fd_fc_noisy, r.mse_fc_noisy[0], r.mse_fc_noisy[last]
            );
            println!(
                "EBM / FC average FD: {:.3} on {} {} trajectories ({:.0} s)",
                r.ratio, r.test_trajectories, r.split, r.seconds
            );
            Ok(())
        }
    }
}

/// Applies a `traj tune` result to `cfg`.
fn apply_tuned(cfg: &mut TrajectoryConfig, tuned: Option<&std::path::Path>) -> Result<()> {
    let Some(path) = tuned else { return Ok(()) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let t: ebm_train::trajectory::tune::TuneReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a traj tune result", path.display()))?;
    cfg.model.context_len = t.ebm_context_len;
    cfg.baseline.context_len = Some(t.fc_context_len);
    cfg.context_noise = t.ebm_context_noise;
    cfg.baseline.context_noise = t.fc_context_noise;
    Ok(())
}
