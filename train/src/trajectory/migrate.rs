//! `ebm-train traj migrate`: rewrites an export of an earlier format in the
//! current one, weights untouched: OOD statistics from free-form `extra`
//! keys into the typed calibration field (every load does that in memory,
//! see `ebm_core::checkpoint::export_meta`), and the robot description, from a
//! recording of the robot when given (names and units), else sizes only.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_core::checkpoint::{self, RobotSpec};
use ebm_core::MlpEnergy;
use ebm_msgs::recording;

/// What [`migrate_export`] wrote.
#[derive(Debug, Clone)]
pub struct MigrationSummary {
    pub robot: RobotSpec,
    /// Whether the export has an OOD calibration now.
    pub ood: bool,
}

/// Migrates the export in `model_dir` in place (atomically).
pub fn migrate_export(
    model_dir: &Path,
    recording: Option<&Path>,
    device: &Device,
) -> Result<MigrationSummary> {
    let loaded = checkpoint::load(model_dir, device)
        .with_context(|| format!("loading the export {}", model_dir.display()))?;
    let cfg = loaded.model_config::<MlpEnergy>()?;
    let normalised = loaded
        .manifest
        .normalization
        .as_ref()
        .map_or(cfg.state_dim + cfg.action_dim, |n| n.mean.len());
    let robot = match recording {
        Some(path) => {
            let ds =
                recording::load(path).with_context(|| format!("loading {}", path.display()))?;
            let r = &ds.robot;
            anyhow::ensure!(
                r.state_dim == cfg.state_dim
                    && (cfg.action_dim == 0 || cfg.action_dim == r.action_dim),
                "{} records {}-float states and {}-float actions; the export models {} and {}",
                path.display(),
                r.state_dim,
                r.action_dim,
                cfg.state_dim,
                cfg.action_dim
            );
            let mut spec = super::robot_for_manifest(r);
            if r.kind == "unknown" {
                // A version 1 recording names no robot; keep what the export had.
                if let Some(old) = &loaded.manifest.robot {
                    spec.kind = old.kind.clone();
                }
            }
            spec
        }
        None => loaded.manifest.robot.clone().unwrap_or(RobotSpec {
            kind: "unknown".into(),
            state_dim: cfg.state_dim,
            action_dim: normalised.saturating_sub(cfg.state_dim).max(cfg.action_dim),
            state_names: Vec::new(),
            state_units: Vec::new(),
            action_names: Vec::new(),
            action_units: Vec::new(),
        }),
    };
    let mut manifest = loaded.manifest.clone();
    manifest.robot = Some(robot.clone());
    checkpoint::save(model_dir, manifest, &loaded.files)?;
    Ok(MigrationSummary {
        robot,
        ood: loaded.manifest.ood.is_some(),
    })
}
