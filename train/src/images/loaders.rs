//! Readers for the standard image data formats, so that a user with the full
//! sets points at them: MNIST / Fashion-MNIST IDX files (gzip or not) and
//! CIFAR-10's binary batches.

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Format { path: PathBuf, problem: String },
    #[error("no {what} in {dir} (looked for {tried})")]
    Missing {
        what: String,
        dir: PathBuf,
        tried: String,
    },
}

fn format_err(path: &Path, problem: impl Into<String>) -> LoadError {
    LoadError::Format {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// A set of images as bytes, `[n, channels, height, width]` row-major, with a
/// label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.image_len();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// Without the first `n` images (none left if fewer).
    pub fn skipped(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.drain(..n * self.image_len());
        self.labels.drain(..n);
        self
    }

    /// The first `n` images (all if fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }
}

/// Which half of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, LoadError> {
    let raw = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format_err(path, format!("bad gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: returns its dimensions and data.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), LoadError> {
    if bytes.len() < 4 {
        return Err(format_err(path, "shorter than an IDX header"));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format_err(
            path,
            "not an IDX file (magic does not start with two zero bytes)",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format_err(
            path,
            format!("IDX element type 0x{:02x} is not unsigned byte", bytes[2]),
        ));
    }
    let ndim = usize::from(bytes[3]);
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format_err(path, "IDX header truncated"));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    let data = &bytes[header..];
    if data.len() != count {
        return Err(format_err(
            path,
            format!(
                "IDX dims {dims:?} need {count} bytes of data, the file has {}",
                data.len()
            ),
        ));
    }
    Ok((dims, data.to_vec()))
}

fn find(dir: &Path, stems: &[&str], what: &str) -> Result<PathBuf, LoadError> {
    let mut tried = Vec::new();
    for stem in stems {
        for name in [stem.to_string(), format!("{stem}.gz")] {
            let p = dir.join(&name);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(name);
        }
    }
    Err(LoadError::Missing {
        what: what.to_string(),
        dir: dir.to_path_buf(),
        tried: tried.join(", "),
    })
}

/// Unlabelled grey images from one IDX file (`[n, height, width]` bytes,
/// gzipped or not), such as the photograph crops of the OOD evaluation.
pub fn load_idx_images(path: &Path) -> Result<ImageSet, LoadError> {
    let (dims, pixels) = parse_idx(path, &read_maybe_gz(path)?)?;
    if dims.len() != 3 {
        return Err(format_err(
            path,
            format!("images need 3 dimensions, found {dims:?}"),
        ));
    }
    Ok(ImageSet {
        pixels,
        labels: vec![0; dims[0]],
        channels: 1,
        height: dims[1],
        width: dims[2],
    })
}

/// Loads MNIST or Fashion-MNIST (same file names) from `dir`.
pub fn load_mnist(dir: &Path, split: Split) -> Result<ImageSet, LoadError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ipath = find(
        dir,
        &[
            &format!("{prefix}-images-idx3-ubyte"),
            &format!("{prefix}-images.idx3-ubyte"),
        ],
        "IDX images",
    )?;
    let lpath = find(
        dir,
        &[
            &format!("{prefix}-labels-idx1-ubyte"),
            &format!("{prefix}-labels.idx1-ubyte"),
        ],
        "IDX labels",
    )?;
    let (idims, pixels) = parse_idx(&ipath, &read_maybe_gz(&ipath)?)?;
    let (ldims, labels) = parse_idx(&lpath, &read_maybe_gz(&lpath)?)?;
    if idims.len() != 3 {
        return Err(format_err(
            &ipath,
            format!("images need 3 dimensions, found {idims:?}"),
        ));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(format_err(
            &lpath,
            format!("{:?} labels for {} images", ldims, idims[0]),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(format_err(
            &lpath,
            format!("label {bad} is not a digit 0-9"),
        ));
    }
    Ok(ImageSet {
        pixels,
        labels,
        channels: 1,
        height: idims[1],
        width: idims[2],
    })
}

const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Loads CIFAR-10's binary version (`data_batch_1.bin`..`data_batch_5.bin`,
/// `test_batch.bin`) from `dir`; missing training batches are skipped as long
/// as one is present.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<ImageSet, LoadError> {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let mut set = ImageSet {
        pixels: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
    };
    let mut found = 0;
    for name in &names {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        found += 1;
        let bytes = read_maybe_gz(&path)?;
        if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
            return Err(format_err(
                &path,
                format!(
                    "{} bytes is not a whole number of {CIFAR_RECORD}-byte records",
                    bytes.len()
                ),
            ));
        }
        for rec in bytes.chunks_exact(CIFAR_RECORD) {
            if rec[0] > 9 {
                return Err(format_err(
                    &path,
                    format!("label {} is not a CIFAR-10 class", rec[0]),
                ));
            }
            set.labels.push(rec[0]);
            set.pixels.extend_from_slice(&rec[1..]);
        }
    }
    if found == 0 {
        return Err(LoadError::Missing {
            what: "CIFAR-10 binary batches".into(),
            dir: dir.to_path_buf(),
            tried: names.join(", "),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip to memory");
        e.finish().expect("gzip to memory")
    }

    #[test]
    fn reads_tiny_idx_files_plain_and_gzipped() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        // Two 2x3 images and their labels; the test split gzipped.
        let pixels: Vec<u8> = (0..12).collect();
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx(&[2, 2, 3], &pixels),
        )?;
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx(&[2], &[7, 1]),
        )?;
        std::fs::write(
            dir.path().join("t10k-images-idx3-ubyte.gz"),
            gz(&idx(&[1, 2, 3], &pixels[..6])),
        )?;
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx(&[1], &[4])),
        )?;
        let train = load_mnist(dir.path(), Split::Train)?;
        assert_eq!((train.len(), train.height, train.width), (2, 2, 3));
        assert_eq!(train.image(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(train.labels, vec![7, 1]);
        let test = load_mnist(dir.path(), Split::Test)?;
        assert_eq!((test.len(), test.labels[0]), (1, 4));
        Ok(())
    }

    #[test]
    fn bad_idx_files_are_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx(&[2, 2, 3], &[0; 11]),
        )?;
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx(&[2], &[7, 1]),
        )?;
        let err = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte") && err.contains("12 bytes"),
            "{err}"
        );
        let err = load_mnist(dir.path(), Split::Test).unwrap_err().to_string();
        assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
        Ok(())
    }

    #[test]
    fn reads_tiny_cifar_batches() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut rec = vec![3u8];
        rec.extend((0..3072).map(|i| (i % 251) as u8));
        let mut two = rec.clone();
        two[0] = 9;
        two.extend(&rec);
        std::fs::write(dir.path().join("data_batch_1.bin"), &two)?;
        std::fs::write(dir.path().join("test_batch.bin"), &rec)?;
        let train = load_cifar10(dir.path(), Split::Train)?;
        assert_eq!(train.labels, vec![9, 3]);
        assert_eq!((train.channels, train.height, train.width), (3, 32, 32));
        assert_eq!(train.image(1)[1024], (1024 % 251) as u8); // first green pixel
        assert_eq!(load_cifar10(dir.path(), Split::Test)?.len(), 1);
        std::fs::write(dir.path().join("test_batch.bin"), &rec[..100])?;
        let err = load_cifar10(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("records"), "{err}");
        Ok(())
    }
}
