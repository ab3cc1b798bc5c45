//! Disk-level pieces of checkpoint writing: flushing files and directories
//! to the disk, and the sibling directories a save works in
//! (`.NAME.tmp-PID`, `.NAME.old-PID`), which a killed writer leaves behind.

use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::manifest::MANIFEST;
use crate::error::{CoreError, Result};

/// Flushes a written file to the disk.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| CoreError::io(path, e))
}

/// Flushes a directory's entries (new names, renames) to the disk, where the
/// platform allows opening a directory (Unix).
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    sync_file(path)?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| CoreError::io(path, e))?;
    f.write_all(bytes).map_err(|e| CoreError::io(path, e))?;
    f.sync_all().map_err(|e| CoreError::io(path, e))
}

pub(crate) fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The two kinds of sibling a save leaves behind when it is killed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftover {
    /// `.NAME.tmp-PID`: the new checkpoint being written (complete once its
    /// manifest is there).
    Tmp,
    /// `.NAME.old-PID`: the previous checkpoint, moved aside for the swap.
    Old,
}

impl Leftover {
    fn tag(self) -> &'static str {
        match self {
            Leftover::Tmp => "tmp",
            Leftover::Old => "old",
        }
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// This process's sibling of `dir` of the given kind.
pub(crate) fn sibling(dir: &Path, kind: Leftover) -> PathBuf {
    let name = dir_name(dir);
    dir.with_file_name(format!(".{name}.{}-{}", kind.tag(), std::process::id()))
}

/// The kind of leftover `file_name` is, if it is a sibling of a checkpoint
/// named `name` left by any process.
fn leftover_kind(name: &str, file_name: &str) -> Option<Leftover> {
    let rest = file_name.strip_prefix('.')?.strip_prefix(name)?;
    let rest = rest.strip_prefix('.')?;
    [Leftover::Tmp, Leftover::Old].into_iter().find(|k| {
        rest.strip_prefix(k.tag())
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Leftover siblings of `dir` of one kind, the most recently written first
/// (by their manifest's modification time).
pub(crate) fn leftovers(dir: &Path, kind: Leftover) -> Vec<PathBuf> {
    let name = dir_name(dir);
    let Ok(entries) = fs::read_dir(parent_of(dir)) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| leftover_kind(&name, &e.file_name().to_string_lossy()) == Some(kind))
        .map(|e| {
            let written = fs::metadata(e.path().join(MANIFEST))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (written, e.path())
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Removes every leftover sibling of `dir`. Failing to is only worth a
/// warning: the checkpoint itself is intact and the next save tries again.
pub(crate) fn remove_leftovers(dir: &Path) {
    for path in [Leftover::Old, Leftover::Tmp]
        .into_iter()
        .flat_map(|k| leftovers(dir, k))
    {
        remove_path(&path);
    }
}

/// Removes a leftover file or directory, warning when it cannot.
pub(crate) fn remove_path(path: &Path) {
    let removed = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    if let Err(e) = removed {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover of an interrupted save");
    }
}
