//! Checkpoints: safetensors files plus a JSON manifest, written atomically.
//!
//! A checkpoint is a directory: `weights.safetensors` (every parameter and
//! spectral-norm vector), optional further tensor files (optimizer moments,
//! replay buffer), and `manifest.json` (format version, model kind and
//! config, normalisation statistics, step, trainer state, and the size and
//! CRC-32 of every file). It is written under a temporary name (every file
//! and the directory flushed to the disk) and renamed into place (the parent
//! flushed too), so a crash never leaves a half-written checkpoint under the
//! real name, and a crash while one replaces another leaves the old one
//! recoverable ([`save`], [`load`]).
//! A training run keeps its checkpoints as `<run>/step-<N>/` with a `latest`
//! pointer file, itself replaced atomically; [`load_latest`] falls back to
//! the newest intact earlier step when the latest one is damaged.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::checkpoint::disk::{
    leftovers, parent_of, remove_leftovers, sibling, sync_dir, sync_file, write_synced, Leftover,
};
use crate::energy::EnergyModel;
use crate::error::{CoreError, Result};
use crate::params::ParamStore;

pub use crate::checkpoint::run::{latest, list_steps, load_latest, mark_latest, step_dir};
mod disk;
pub mod export_meta;
pub mod manifest;
mod run;

pub use crate::checkpoint::export_meta::{
    OodCalibration, RobotSpec, WindowPercentiles, ENERGY_PERCENTILES, STEIN_WINDOW,
    WINDOW_ENERGY_PERCENTILES,
};
pub use crate::checkpoint::manifest::{
    FileDigest, Manifest, Normalization, FORMAT_VERSION, MANIFEST, WEIGHTS,
};

/// A checkpoint read back from disk with every file verified.
#[derive(Debug)]
pub struct Loaded {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Tensors of each file, by file name.
    pub files: BTreeMap<String, BTreeMap<String, Tensor>>,
}

impl Loaded {
    pub fn weights(&self) -> Result<&BTreeMap<String, Tensor>> {
        self.files
            .get(WEIGHTS)
            .ok_or_else(|| CoreError::checkpoint(&self.dir, format!("has no {WEIGHTS}")))
    }

    /// Builds the model recorded in this checkpoint, checking its kind and that
    /// every stored tensor is used with the right shape.
    pub fn model<M: EnergyModel>(&self, device: &Device) -> Result<(M, ParamStore)> {
        let cfg: M::Config = self.model_config::<M>()?;
        let store = ParamStore::from_tensors(self.weights()?.clone(), device)?;
        let model = M::new(&cfg, store.var_builder())
            .map_err(|e| CoreError::checkpoint(&self.dir, e.to_string()))?;
        let unused = store.unused_loaded();
        if !unused.is_empty() {
            return Err(CoreError::checkpoint(
                &self.dir,
                format!("tensors the model does not have: {}", unused.join(", ")),
            ));
        }
        Ok((model, store))
    }

    /// The model config, after checking the kind.
    pub fn model_config<M: EnergyModel>(&self) -> Result<M::Config> {
        if self.manifest.kind != M::KIND {
            return Err(CoreError::checkpoint(
                &self.dir,
                format!(
                    "holds a {} model, a {} was asked for",
                    self.manifest.kind,
                    M::KIND
                ),
            ));
        }
        serde_json::from_value(self.manifest.model_config.clone()).map_err(|e| {
            CoreError::checkpoint(&self.dir, format!("model config does not parse: {e}"))
        })
    }
}

/// Writes a checkpoint directory so that a crash at any instant leaves the
/// previous or the new checkpoint loadable at `dir`.
///
/// The files go into the sibling `.NAME.tmp-PID`, each flushed to the disk,
/// the manifest last, then the directory itself. A new `dir` is then one
/// rename. Replacing an existing `dir` takes two, `dir` to `.NAME.old-PID` and
/// the temporary to `dir` (portable Rust has no atomic exchange of two
/// directories); a crash between them leaves no `dir`, and [`load`] then reads
/// the `.old` sibling, the checkpoint as it was before this save.
///
/// Leftovers of killed writers are removed by the next save: before the swap
/// when `dir` exists (it is then the committed checkpoint and every sibling is
/// debris), after it otherwise (a sibling may then be the only complete copy).
/// So while `dir` is missing there is at most one `.old` sibling. One writer
/// per checkpoint directory at a time.
pub fn save(
    dir: &Path,
    manifest: Manifest,
    files: &BTreeMap<String, BTreeMap<String, Tensor>>,
) -> Result<()> {
    let parent = parent_of(dir);
    fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    let committed = dir.is_dir();
    if committed {
        remove_leftovers(dir);
    }
    let tmp = sibling(dir, Leftover::Tmp);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
    }
    write_files(&tmp, manifest, files)?;
    if committed {
        let old = sibling(dir, Leftover::Old);
        fs::rename(dir, &old).map_err(|e| CoreError::io(dir, e))?;
    }
    fs::rename(&tmp, dir).map_err(|e| CoreError::io(dir, e))?;
    sync_dir(parent)?;
    remove_leftovers(dir);
    Ok(())
}

/// Writes every tensor file and then the manifest into a fresh `dir`,
/// flushing each and the directory.
fn write_files(
    dir: &Path,
    mut manifest: Manifest,
    files: &BTreeMap<String, BTreeMap<String, Tensor>>,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    manifest.files.clear();
    for (file, tensors) in files {
        let path = dir.join(file);
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        candle_core::safetensors::save(&map, &path)?;
        sync_file(&path)?;
        let bytes = fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
        manifest.files.insert(
            file.clone(),
            FileDigest {
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
            },
        );
    }
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CoreError::config(e.to_string()))?;
    write_synced(&dir.join(MANIFEST), &json)?;
    sync_dir(dir)
}

/// Reads and verifies a checkpoint directory. When `dir` is missing or fails
/// verification, a complete sibling left by an interrupted [`save`] is read
/// instead, with a warning: the `.old` one (the checkpoint before that save)
/// first, then `.tmp` ones (the new checkpoint, written but not yet moved into
/// place), newest first.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let err = match load_verified(dir, device) {
        Ok(loaded) => return Ok(loaded),
        Err(e) => e,
    };
    let mut failures = Vec::new();
    for path in [Leftover::Old, Leftover::Tmp]
        .into_iter()
        .flat_map(|k| leftovers(dir, k))
    {
        match load_verified(&path, device) {
            Ok(loaded) => {
                tracing::warn!(
                    checkpoint = %dir.display(),
                    problem = %error_chain(&err),
                    using = %path.display(),
                    "checkpoint missing or damaged; read the copy left by an interrupted save"
                );
                return Ok(loaded);
            }
            Err(e) => failures.push(error_chain(&e)),
        }
    }
    if failures.is_empty() {
        return Err(err);
    }
    Err(CoreError::checkpoint(
        dir,
        format!(
            "{}; the leftovers of interrupted saves are not intact either: {}",
            error_chain(&err),
            failures.join("; ")
        ),
    ))
}

/// An error with its sources, `: `-separated.
pub(crate) fn error_chain(err: &CoreError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Reads `dir` and checks every file against the manifest.
fn load_verified(dir: &Path, device: &Device) -> Result<Loaded> {
    if !dir.is_dir() {
        return Err(CoreError::checkpoint(
            dir,
            "does not exist or is not a directory",
        ));
    }
    let mpath = dir.join(MANIFEST);
    let raw = fs::read(&mpath).map_err(|e| {
        CoreError::checkpoint(
            dir,
            format!("cannot read {MANIFEST} ({e}): not a checkpoint, or an incomplete one"),
        )
    })?;
    let mut manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|source| CoreError::Manifest {
            path: mpath.clone(),
            source,
        })?;
    crate::checkpoint::manifest::migrate_legacy_extras(&mut manifest);
    if manifest.format_version != FORMAT_VERSION {
        return Err(CoreError::checkpoint(
            dir,
            format!(
                "format version {} is not supported (this build reads {FORMAT_VERSION})",
                manifest.format_version
            ),
        ));
    }
    let mut files = BTreeMap::new();
    for (file, digest) in &manifest.files {
        let path = dir.join(file);
        let bytes = fs::read(&path)
            .map_err(|e| CoreError::checkpoint(dir, format!("cannot read {file}: {e}")))?;
        if bytes.len() as u64 != digest.bytes {
            return Err(CoreError::checkpoint(
                dir,
                format!(
                    "{file} is {} bytes, the manifest says {}: truncated or replaced",
                    bytes.len(),
                    digest.bytes
                ),
            ));
        }
        if crc32fast::hash(&bytes) != digest.crc32 {
            return Err(CoreError::checkpoint(
                dir,
                format!("{file} fails its CRC-32 check: corrupt"),
            ));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
            CoreError::checkpoint(dir, format!("{file} is not valid safetensors: {e}"))
        })?;
        files.insert(file.clone(), tensors.into_iter().collect());
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        manifest,
        files,
    })
}

/// Saves a trained model with its parameters only (an inference export).
pub fn save_model(dir: &Path, manifest: Manifest, params: &ParamStore) -> Result<()> {
    let mut files = BTreeMap::new();
    files.insert(WEIGHTS.to_string(), params.tensors());
    save(dir, manifest, &files)
}
