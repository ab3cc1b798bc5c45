//! Image EBMs (the paper's Section 4) on MNIST-style and CIFAR-10 data:
//! loaders, training, sampling, restoration (and its trivial baselines),
//! OOD detection, classification, adversarial robustness.

pub mod attack;
pub mod baselines;
pub mod config;
pub mod dataset;
pub mod eval;
pub mod grid;
pub mod loaders;
pub mod ood;
pub mod restore;
pub mod robustness;
pub mod sample;
pub mod softmax;
pub mod train;
pub mod validation;

pub use config::{ImageConfig, ImageFormat};
pub use dataset::ImageData;
pub use loaders::{load_cifar10, load_mnist, ImageSet, Split};
pub use ood::{classify, ood, OodRow};
pub use restore::{restore, CrossClass, RestoreReport, RestoreRow};
pub use sample::sample_grid;
pub use softmax::{train_softmax, SoftmaxSummary};
pub use train::{train_images, TrainSummary};

#[cfg(test)]
mod pipeline_tests;
