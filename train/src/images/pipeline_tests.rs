//! The image pipeline end to end on tiny synthetic digits written as IDX
//! files: 8 x 8 images of a horizontal bar (class 0) or a vertical bar
//! (class 1) at a random position. A short conditional run with the
//! classification term must lower the data's energy below noise's, classify
//! held-out bars, score noise as out of distribution, and restore with the
//! kept pixels untouched.

use std::path::Path;

use candle_core::{Device, Tensor};
use ebm_core::Rng;

use super::dataset::ImageData;
use super::eval::{energies, langevin_rounds, load_latest};
use super::loaders::Split;
use super::{classify, ood, restore, train_images, ImageConfig};

const SIZE: usize = 8;

/// `n` bars: `(pixels, labels)`, class `i % 2`, position drawn from `rng`.
fn bars(n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut px = vec![0u8; n * SIZE * SIZE];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as u8;
        let at = 1 + rng.below(SIZE - 2);
        for k in 0..SIZE {
            let (y, x) = if class == 0 { (at, k) } else { (k, at) };
            px[i * SIZE * SIZE + y * SIZE + x] = 255;
        }
        labels.push(class);
    }
    (px, labels)
}

fn idx_images(px: &[u8], n: usize) -> Vec<u8> {
    let mut img = vec![0, 0, 8, 3];
    for d in [n as u32, SIZE as u32, SIZE as u32] {
        img.extend(d.to_be_bytes());
    }
    img.extend(px);
    img
}

fn write_idx(dir: &Path, prefix: &str, px: &[u8], labels: &[u8]) -> std::io::Result<()> {
    let n = labels.len() as u32;
    let img = idx_images(px, labels.len());
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img)?;
    let mut lab = vec![0, 0, 8, 1];
    lab.extend(n.to_be_bytes());
    lab.extend(labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab)
}

const CONFIG: &str = r#"
steps = 150
[data]
format = "mnist"
dir = "data"
conditional = true
validation = 40
[model]
in_channels = 1
image_size = 8
num_classes = 10
stem_channels = 8
stages = [{ channels = 8, downsample = true }, { channels = 16, downsample = false }]
activation = "leaky_relu"
block = "official"
[trainer]
batch_size = 16
seed = 3
checkpoint_every = 50
keep_checkpoints = 2
label_contrast = 1.0
[trainer.langevin]
steps = 10
step_size = 10.0
noise_scale = 0.005
grad_clip = 0.01
clamp = [0.0, 1.0]
[trainer.replay]
capacity = 1000
replay_prob = 0.95
init_low = 0.0
init_high = 1.0
labels = "data"
[trainer.adam]
lr = 0.001
beta1 = 0.0
beta2 = 0.999
[eval]
langevin = { steps = 10, step_size = 10.0, noise_scale = 0.005, grad_clip = 0.01, clamp = [0.0, 1.0] }
sample_rounds = 1
restore_rounds = 1
test_images = 60
restore_images = 20
validate_every = 50
ood_photos = "photos-idx3-ubyte"
"#;

#[test]
fn a_short_conditional_run_learns_tiny_bars() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let tmp = tempfile::tempdir()?;
    let base = tmp.path();
    std::fs::create_dir(base.join("data"))?;
    let mut rng = Rng::new(11);
    let (px, labels) = bars(400, &mut rng);
    write_idx(&base.join("data"), "train", &px, &labels)?;
    let (px, labels) = bars(60, &mut rng);
    write_idx(&base.join("data"), "t10k", &px, &labels)?;
    // "Photographs": smooth gradients.
    let photos: Vec<u8> = (0..30 * SIZE * SIZE)
        .map(|i| ((i % SIZE) * 20 + (i / SIZE % SIZE) * 10) as u8)
        .collect();
    std::fs::write(base.join("photos-idx3-ubyte"), idx_images(&photos, 30))?;
    let cfg = ImageConfig::parse(CONFIG)?;
    let run = base.join("run");
    train_images(&cfg, base, &run, &dev)?;

    // Held-out bars have lower energy under their label than uniform noise.
    let m = load_latest(&run, &dev)?;
    let test = ImageData {
        set: cfg.load(base, Split::Test)?,
        conditional: true,
    };
    let n = test.set.len();
    let x = test.clean(&(0..n).collect::<Vec<_>>(), &dev)?;
    let y = ImageData::one_hot(&test.set.labels, &dev)?;
    let noise = Tensor::from_vec(rng.uniform_vec(n * SIZE * SIZE, 0.0, 1.0), x.dims(), &dev)?;
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let (e_data, e_noise) = (
        mean(energies(&m.model, &x, Some(&y))?),
        mean(energies(&m.model, &noise, Some(&y))?),
    );
    assert!(e_data < e_noise, "data {e_data}, noise {e_noise}");

    // The validation curve on the 40 held-out training bars.
    let curve = super::validation::load_curve(&run)?;
    let steps: Vec<u64> = curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![50, 100, 150]);
    assert!(curve[2].accuracy >= 0.9, "{curve:?}");
    assert!(run.join("validation.svg").exists());

    // The export (weights only) loads and classifies as the run does, and
    // carries the last two checkpoints for the historical ensemble.
    let export = base.join("export");
    assert_eq!(super::eval::export_model(&run, &export, 2, &dev)?, 150);
    assert!(!export.join("trainer.safetensors").exists());
    let history = super::eval::load_history(&export, 10, &dev)?;
    let steps: Vec<u64> = history.iter().map(|m| m.step).collect();
    assert_eq!(steps, vec![100, 150]);
    assert_eq!(
        classify(&cfg, base, &export, &dev)?,
        classify(&cfg, base, &run, &dev)?
    );

    // PGD raises the loss it attacks and keeps to its budget.
    let x_small = x.narrow(0, 0, 20)?;
    let y_small = &test.set.labels[..20];
    let t = cfg.trainer.label_temperature;
    let (before, _) = super::attack::loss_and_grad(&m.model, &x_small, y_small, t)?;
    let attack = super::attack::Pgd {
        budget: super::attack::Budget::Linf { eps: 0.1 },
        steps: 10,
        alpha: 0.025,
    };
    let adv = super::attack::pgd(&x_small, &attack, &mut rng, |z, _| {
        Ok(super::attack::loss_and_grad(&m.model, z, y_small, t)?.1)
    })?;
    let (after, _) = super::attack::loss_and_grad(&m.model, &adv, y_small, t)?;
    assert!(after > before, "loss {before} -> {after}");
    let moved = (&adv - &x_small)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(moved <= 0.1 + 1e-6, "moved {moved}");

    // Classification by the lowest energy.
    let (count, accuracy) = classify(&cfg, base, &run, &dev)?;
    assert_eq!(count, n);
    assert!(accuracy >= 0.9, "accuracy {accuracy}");

    // OOD: uniform noise is told from test bars.
    let out = base.join("out");
    std::fs::create_dir(&out)?;
    let rows = ood(&cfg, base, &run, &out, &dev)?;
    let noise_row = rows
        .iter()
        .find(|r| r.ood_set == "uniform noise")
        .expect("noise set");
    assert!(noise_row.auroc > 0.9, "{rows:?}");
    let photo_row = rows.iter().find(|r| r.ood_set == "photograph crops (real)");
    assert_eq!(photo_row.map(|r| r.images), Some(30), "{rows:?}");

    // Restoration runs and reports baselines; masked Langevin keeps the
    // pixels outside its region exactly.
    let restored = restore(&cfg, base, &run, &out, Some(&run), &dev)?;
    assert!(restored.rows.iter().all(|r| r.baselines.len() == 3));
    assert_eq!(restored.rows.len(), 2, "denoising, inpainting");
    assert!(restored.cross.is_some_and(|c| c.images == 20));
    let mut free = vec![0f32; SIZE * SIZE];
    free[SIZE * SIZE / 2..].fill(1.0);
    let free = Tensor::from_vec(free, (1, SIZE * SIZE), &dev)?.repeat((n, 1))?;
    let moved = langevin_rounds(
        &m.model,
        &cfg.eval.langevin,
        2,
        &noise,
        Some(&y),
        Some(&free),
        &mut rng,
    )?;
    let kept = |t: &Tensor| -> anyhow::Result<Vec<f32>> {
        Ok(t.narrow(1, 0, SIZE * SIZE / 2)?.flatten_all()?.to_vec1()?)
    };
    assert_eq!(kept(&moved)?, kept(&noise)?);
    let changed = (moved - &noise)?.abs()?.sum_all()?.to_scalar::<f32>()?;
    assert!(changed > 0.0, "the free half moved");
    Ok(())
}

/// The committed real OOD images load: 1,000 grey 28 x 28 crops, not flat.
#[test]
fn committed_photo_crops_load() -> anyhow::Result<()> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/data/photo-crops-idx3-ubyte.gz");
    let set = super::loaders::load_idx_images(&path)?;
    assert_eq!((set.len(), set.height, set.width), (1000, 28, 28));
    let n = set.pixels.len() as f64;
    let mean = set.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let var = set
        .pixels
        .iter()
        .map(|&p| (f64::from(p) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(var.sqrt() > 20.0, "pixel spread {}", var.sqrt());
    Ok(())
}
