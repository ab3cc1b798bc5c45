//! Config of an image run (`configs/mnist_*.toml`).

use std::path::{Path, PathBuf};

use ebm_core::{CoreError, LangevinConfig, ResNetEnergyConfig, TrainerConfig};
use serde::Deserialize;

use super::loaders::{load_cifar10, load_mnist, ImageSet, LoadError, Split};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// MNIST or Fashion-MNIST IDX files.
    Mnist,
    /// CIFAR-10 binary batches.
    Cifar10,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDataConfig {
    pub format: ImageFormat,
    /// Folder of the data files, relative to the config file's folder.
    pub dir: PathBuf,
    /// Train the class-conditional model.
    pub conditional: bool,
    /// Use at most this many training images (0: all).
    #[serde(default)]
    pub limit: usize,
    /// The last this many training images are held out of training, for
    /// the validation curve of conditional models (0: none).
    #[serde(default)]
    pub validation: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEvalConfig {
    /// Langevin settings for sampling from noise and restoration.
    pub langevin: LangevinConfig,
    /// Chained Langevin calls when sampling from noise.
    pub sample_rounds: usize,
    /// Chained Langevin calls for restoration (official: 5 for denoising, 10 for inpainting).
    pub restore_rounds: usize,
    /// Test images used by the OOD and classification commands.
    pub test_images: usize,
    /// Test images restored by the restoration command.
    pub restore_images: usize,
    /// Conditional models with `data.validation`: classification accuracy
    /// on the held-out images every this many training steps, into
    /// `<run>/validation.json` and `validation.svg` (0: never).
    #[serde(default)]
    pub validate_every: u64,
    /// Real images for the OOD evaluation beside the synthetic sets: an IDX
    /// file of grey images of the model's size, relative to the config
    /// file's folder (`configs/data/photo-crops-idx3-ubyte.gz`: crops of
    /// photographs, made by `train/fixtures/photo_crops.py`).
    #[serde(default)]
    pub ood_photos: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub steps: u64,
    pub data: ImageDataConfig,
    pub model: ResNetEnergyConfig,
    pub trainer: TrainerConfig,
    pub eval: ImageEvalConfig,
}

impl ImageConfig {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        crate::config_file::parse_toml(text, Self::validate)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        self.model.validate()?;
        self.trainer.validate()?;
        self.eval.langevin.validate()?;
        let want_classes = if self.data.conditional { 10 } else { 1 };
        if self.model.num_classes != want_classes {
            return Err(CoreError::InvalidConfig(format!(
                "model.num_classes is {}, but data.conditional = {} needs {want_classes}",
                self.model.num_classes, self.data.conditional
            )));
        }
        // The channels follow from the format; the size is checked against
        // the images when they are loaded (IDX files may hold any size).
        let (c, s) = match self.data.format {
            ImageFormat::Mnist => (1, None),
            ImageFormat::Cifar10 => (3, Some(32)),
        };
        if self.model.in_channels != c || s.is_some_and(|s| self.model.image_size != s) {
            return Err(CoreError::InvalidConfig(format!(
                "{:?} images have {c} channel(s){}: set model.in_channels = {c}{}",
                self.data.format,
                s.map_or(String::new(), |s| format!(" of {s}x{s}")),
                s.map_or(String::new(), |s| format!(", image_size = {s}")),
            )));
        }
        if self.trainer.replay.init_low != 0.0 || self.trainer.replay.init_high != 1.0 {
            return Err(CoreError::InvalidConfig(
                "trainer.replay range must be [0, 1] for images".into(),
            ));
        }
        Ok(())
    }

    /// Loads a split of the configured data, resolving `dir` against `base`;
    /// the training split without its last `data.validation` images.
    pub fn load(&self, base: &Path, split: Split) -> Result<ImageSet, LoadError> {
        let set = self.load_whole(base, split)?;
        Ok(match split {
            Split::Train => {
                let keep = set.len().saturating_sub(self.data.validation);
                let limit = if self.data.limit > 0 {
                    self.data.limit
                } else {
                    keep
                };
                set.truncated(keep.min(limit))
            }
            Split::Test => set,
        })
    }

    /// The held-out last `data.validation` images of the training split.
    pub fn load_validation(&self, base: &Path) -> Result<ImageSet, LoadError> {
        let set = self.load_whole(base, Split::Train)?;
        let from = set.len().saturating_sub(self.data.validation);
        Ok(set.skipped(from))
    }

    fn load_whole(&self, base: &Path, split: Split) -> Result<ImageSet, LoadError> {
        let dir = base.join(&self.data.dir);
        let set = match self.data.format {
            ImageFormat::Mnist => load_mnist(&dir, split)?,
            ImageFormat::Cifar10 => load_cifar10(&dir, split)?,
        };
        let s = self.model.image_size;
        if (set.height, set.width) != (s, s) {
            return Err(LoadError::Format {
                path: dir,
                problem: format!(
                    "images are {}x{}, the model takes {s}x{s} (model.image_size)",
                    set.height, set.width
                ),
            });
        }
        Ok(set)
    }
}
