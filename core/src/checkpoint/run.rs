//! A training run's checkpoints: `<run>/step-<N>/` directories and a `latest`
//! pointer file naming the newest complete one, with a fallback to an earlier
//! step when the latest is damaged.

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::checkpoint::disk::{remove_path, sync_dir, write_synced};
use crate::checkpoint::{error_chain, load, Loaded};
use crate::error::{CoreError, Result};

const LATEST: &str = "latest";
const STEP_PREFIX: &str = "step-";

/// The directory name of the checkpoint at `step` inside a run directory.
pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    run.join(format!("{STEP_PREFIX}{step:08}"))
}

/// The step number of a `step-<N>` directory.
fn step_number(dir: &Path) -> Option<u64> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(STEP_PREFIX)?
        .parse()
        .ok()
}

/// Points `<run>/latest` at `dir` (atomically), deletes all but the newest
/// `keep` step checkpoints, and removes what killed writers left in the run
/// (`.step-<N>.tmp-PID`, `.step-<N>.old-PID`, `.latest.tmp-PID`): with
/// `latest` naming a complete checkpoint they are debris.
pub fn mark_latest(run: &Path, dir: &Path, keep: usize) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = run.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    write_synced(&tmp, name.as_bytes())?;
    fs::rename(&tmp, run.join(LATEST)).map_err(|e| CoreError::io(run, e))?;
    sync_dir(run)?;
    let steps = list_steps(run)?;
    let excess = steps.len().saturating_sub(keep.max(1));
    for old in steps.into_iter().take(excess) {
        fs::remove_dir_all(&old).map_err(|e| CoreError::io(&old, e))?;
    }
    let debris = fs::read_dir(run)
        .map_err(|e| CoreError::io(run, e))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!(".{LATEST}.tmp-"))
                || (n.starts_with(&format!(".{STEP_PREFIX}"))
                    && (n.contains(".tmp-") || n.contains(".old-")))
        });
    for entry in debris {
        remove_path(&entry.path());
    }
    Ok(())
}

/// The checkpoint directory `<run>/latest` names, if the run has the pointer.
/// It may be missing or damaged; [`load_latest`] reads it with a fallback.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let p = run.join(LATEST);
    match fs::read_to_string(&p) {
        Ok(name) => Ok(Some(run.join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io(p, e)),
    }
}

/// Loads the checkpoint `<run>/latest` names, or `None` when the run has no
/// `latest` pointer. If that checkpoint is missing or fails verification
/// (manifest unreadable, a file's size or CRC-32 wrong, bad safetensors), the
/// newest intact earlier step is loaded instead, with a warning that says
/// what was wrong; the error, when no step is intact, names every failure.
pub fn load_latest(run: &Path, device: &Device) -> Result<Option<Loaded>> {
    let Some(named) = latest(run)? else {
        return Ok(None);
    };
    let below = step_number(&named);
    let earlier = list_steps(run)?
        .into_iter()
        .rev()
        .filter(|d| d != &named && below.is_none_or(|n| step_number(d).is_some_and(|s| s < n)));
    let mut failures: Vec<String> = Vec::new();
    for dir in std::iter::once(named.clone()).chain(earlier) {
        match load(&dir, device) {
            Ok(loaded) => {
                if !failures.is_empty() {
                    tracing::warn!(
                        run = %run.display(),
                        problems = %failures.join("; "),
                        step = loaded.manifest.step,
                        using = %dir.display(),
                        "the latest checkpoint is damaged; falling back to step {}",
                        loaded.manifest.step
                    );
                }
                return Ok(Some(loaded));
            }
            Err(e) => failures.push(error_chain(&e)),
        }
    }
    Err(CoreError::checkpoint(
        run,
        format!(
            "no intact checkpoint ({LATEST} names {}): {}",
            named.display(),
            failures.join("; ")
        ),
    ))
}

/// All step checkpoints of a run, oldest first.
pub fn list_steps(run: &Path) -> Result<Vec<PathBuf>> {
    let mut steps: Vec<(u64, PathBuf)> = fs::read_dir(run)
        .map_err(|e| CoreError::io(run, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((step_number(&p)?, p)))
        .collect();
    steps.sort();
    Ok(steps.into_iter().map(|(_, p)| p).collect())
}
