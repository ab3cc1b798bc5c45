//! Checkpoints: safetensors files plus a JSON manifest, written atomically.
//!
//! A checkpoint is a directory: `weights.safetensors` (every parameter and
//! spectral-norm vector), optional further tensor files (optimizer moments,
//! replay buffer), and `manifest.json` (format version, model kind and
//! config, normalisation statistics, step, trainer state, and the size and
//! CRC-32 of every file). It is written under a temporary name (every file
//! and the directory flushed to the disk) and renamed into place (the parent
//! flushed too), so a crash never leaves a half-written checkpoint under the
//! real name.
//! A training run keeps its checkpoints as `<run>/step-<N>/` with a `latest`
//! pointer file, itself replaced atomically.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::energy::EnergyModel;
use crate::error::{CoreError, Result};
use crate::params::ParamStore;

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const WEIGHTS: &str = "weights.safetensors";
const LATEST: &str = "latest";
pub use crate::export_meta::{
    OodCalibration, RobotSpec, ENERGY_PERCENTILES, STEIN_WINDOW, WINDOW_ENERGY_PERCENTILES,
};

/// Percentiles (0th to 100th) of the mean energy of `window` consecutive
/// training transitions of one trajectory, for windowed OOD scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPercentiles {
    pub window: usize,
    pub percentiles: Vec<f32>,
}

/// Per-dimension normalisation `z = (x - mean) / std`, fitted on training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The model kind (`EnergyModel::KIND`).
    pub kind: String,
    pub model_config: serde_json::Value,
    #[serde(default)]
    pub normalization: Option<Normalization>,
    /// The robot a trajectory model was trained for (from its recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot: Option<RobotSpec>,
    /// A trajectory model's OOD calibration on its training transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood: Option<OodCalibration>,
    pub step: u64,
    /// Trainer state needed for exact resume (absent for inference exports).
    #[serde(default)]
    pub trainer: Option<serde_json::Value>,
    /// Free-form facts for users (dataset, metrics...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    pub fn new<M: EnergyModel>(cfg: &M::Config, step: u64) -> Result<Self> {
        Self::for_kind(M::KIND, cfg, step)
    }

    pub fn for_kind<C: Serialize>(kind: &str, cfg: &C, step: u64) -> Result<Self> {
        Ok(Self {
            format_version: FORMAT_VERSION,
            kind: kind.to_string(),
            model_config: serde_json::to_value(cfg)
                .map_err(|e| CoreError::config(e.to_string()))?,
            normalization: None,
            robot: None,
            ood: None,
            step,
            trainer: None,
            extra: BTreeMap::new(),
            files: BTreeMap::new(),
        })
    }
}

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

fn tmp_sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes a checkpoint directory atomically: all files into a temporary
/// sibling, fsync, then rename over `dir`.
pub fn save(
    dir: &Path,
    mut manifest: Manifest,
    files: &BTreeMap<String, BTreeMap<String, Tensor>>,
) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    let tmp = tmp_sibling(dir, "tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
    manifest.files.clear();
    for (file, tensors) in files {
        let path = tmp.join(file);
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
    write_synced(&tmp.join(MANIFEST), &json)?;
    sync_dir(&tmp)?;
    if dir.exists() {
        let old = tmp_sibling(dir, "old");
        fs::rename(dir, &old).map_err(|e| CoreError::io(dir, e))?;
        fs::rename(&tmp, dir).map_err(|e| CoreError::io(dir, e))?;
        fs::remove_dir_all(&old).map_err(|e| CoreError::io(&old, e))?;
    } else {
        fs::rename(&tmp, dir).map_err(|e| CoreError::io(dir, e))?;
    }
    sync_dir(parent)
}

/// Flushes a written file to the disk.
fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| CoreError::io(path, e))
}

/// Flushes a directory's entries (new names, renames) to the disk, where the
/// platform allows opening a directory (Unix).
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    sync_file(path)?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| CoreError::io(path, e))?;
    f.write_all(bytes).map_err(|e| CoreError::io(path, e))?;
    f.sync_all().map_err(|e| CoreError::io(path, e))
}

/// Reads and verifies a checkpoint directory.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
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
    crate::export_meta::migrate_legacy_extras(&mut manifest);
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

/// The directory name of the checkpoint at `step` inside a run directory.
pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    run.join(format!("step-{step:08}"))
}

/// Points `<run>/latest` at `dir` (atomically) and deletes all but the newest
/// `keep` step checkpoints.
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
    Ok(())
}

/// The checkpoint `<run>/latest` points at, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let p = run.join(LATEST);
    match fs::read_to_string(&p) {
        Ok(name) => {
            let dir = run.join(name.trim());
            if dir.is_dir() {
                Ok(Some(dir))
            } else {
                Err(CoreError::checkpoint(
                    run,
                    format!("{LATEST} names {} which does not exist", name.trim()),
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::io(p, e)),
    }
}

/// All step checkpoints of a run, oldest first.
pub fn list_steps(run: &Path) -> Result<Vec<PathBuf>> {
    let mut steps: Vec<PathBuf> = fs::read_dir(run)
        .map_err(|e| CoreError::io(run, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        })
        .collect();
    steps.sort();
    Ok(steps)
}
