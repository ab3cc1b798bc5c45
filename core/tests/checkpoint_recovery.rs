//! Crash safety of checkpoints: a damaged latest step falls back to the
//! previous intact one, a save interrupted while replacing a checkpoint leaves
//! the old one recoverable, and a writer killed (SIGKILL) at random instants
//! of many saves always leaves a loadable checkpoint with content that was
//! fully written.
//!
//! Every checkpoint here stores its number `n` in every tensor value, so a
//! load shows which save it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::checkpoint::{self, Loaded, Manifest, MANIFEST, WEIGHTS};

const STATE: &str = "state.safetensors";

fn files_for(n: u64) -> Result<BTreeMap<String, BTreeMap<String, Tensor>>> {
    let cpu = &Device::Cpu;
    let weights = BTreeMap::from([
        ("w".to_string(), Tensor::full(n as f32, (256, 1024), cpu)?),
        ("b".to_string(), Tensor::full(n as f32, 1024, cpu)?),
    ]);
    let state = BTreeMap::from([("t".to_string(), Tensor::full(n as f32, 16, cpu)?)]);
    Ok(BTreeMap::from([
        (WEIGHTS.to_string(), weights),
        (STATE.to_string(), state),
    ]))
}

fn save_numbered(dir: &Path, n: u64) -> Result<()> {
    let manifest = Manifest::for_kind("test", &serde_json::json!({}), n)?;
    Ok(checkpoint::save(dir, manifest, &files_for(n)?)?)
}

/// The number a loaded checkpoint holds, checked to be the same in every
/// tensor and in the manifest.
fn number_of(loaded: &Loaded) -> Result<u64> {
    let step = loaded.manifest.step;
    for (file, tensors) in &loaded.files {
        for (name, t) in tensors {
            let values = t.flatten_all()?.to_vec1::<f32>()?;
            ensure!(
                values.iter().all(|&v| v == step as f32),
                "{file}/{name} of {} does not hold {step} throughout",
                loaded.dir.display()
            );
        }
    }
    ensure!(
        loaded.files.len() == 2,
        "{} lacks a file",
        loaded.dir.display()
    );
    Ok(step)
}

/// A run with steps 1..=n, `latest` naming step n.
fn run_with_steps(root: &Path, n: u64) -> Result<PathBuf> {
    let run = root.join("run");
    for step in 1..=n {
        let dir = checkpoint::step_dir(&run, step);
        save_numbered(&dir, step)?;
        checkpoint::mark_latest(&run, &dir, 10)?;
    }
    Ok(run)
}

fn latest_number(run: &Path) -> Result<u64> {
    let loaded = checkpoint::load_latest(run, &Device::Cpu)?.context("no latest pointer")?;
    number_of(&loaded)
}

/// The ways a step can be damaged, each with a word its error contains.
fn damage(dir: &Path, how: &str) -> Result<&'static str> {
    let w = dir.join(WEIGHTS);
    let mut bytes = std::fs::read(&w)?;
    Ok(match how {
        "flip" => {
            let at = bytes.len() - 7;
            bytes[at] ^= 0x10;
            std::fs::write(&w, &bytes)?;
            "CRC-32"
        }
        "truncate" => {
            std::fs::write(&w, &bytes[..bytes.len() / 3])?;
            "truncated"
        }
        "no manifest" => {
            std::fs::remove_file(dir.join(MANIFEST))?;
            "manifest.json"
        }
        "bad safetensors" => {
            // Garbage whose size and CRC the manifest agrees with.
            let garbage = vec![0xffu8; 64];
            std::fs::write(&w, &garbage)?;
            let mpath = dir.join(MANIFEST);
            let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath)?)?;
            m["files"][WEIGHTS] = serde_json::json!({
                "bytes": garbage.len(), "crc32": crc32(&garbage)
            });
            std::fs::write(&mpath, serde_json::to_vec(&m)?)?;
            "not valid safetensors"
        }
        "missing" => {
            std::fs::remove_dir_all(dir)?;
            "does not exist"
        }
        other => anyhow::bail!("no damage called {other}"),
    })
}

/// CRC-32 (IEEE), bitwise: the tests need no crc crate of their own.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

const DAMAGES: [&str; 5] = [
    "flip",
    "truncate",
    "no manifest",
    "bad safetensors",
    "missing",
];

#[test]
fn a_damaged_latest_step_falls_back_to_the_previous_intact_one() -> Result<()> {
    for how in DAMAGES {
        let tmp = tempfile::tempdir()?;
        let run = run_with_steps(tmp.path(), 3)?;
        damage(&checkpoint::step_dir(&run, 3), how)?;
        assert_eq!(latest_number(&run)?, 2, "after damage {how:?}");
        damage(&checkpoint::step_dir(&run, 2), how)?;
        assert_eq!(latest_number(&run)?, 1, "after damage {how:?} twice");
    }
    Ok(())
}

#[test]
fn no_intact_step_is_an_error_naming_each_failure() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = run_with_steps(tmp.path(), 3)?;
    let mut words = Vec::new();
    for (step, how) in [(3, "flip"), (2, "no manifest"), (1, "truncate")] {
        words.push(damage(&checkpoint::step_dir(&run, step), how)?);
    }
    let err = checkpoint::load_latest(&run, &Device::Cpu)
        .map(|_| ())
        .unwrap_err();
    let msg = err.to_string();
    for needle in ["step-00000003", "step-00000002", "step-00000001"]
        .into_iter()
        .chain(words)
    {
        assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
    }
    // A run without a `latest` pointer has nothing to resume.
    assert!(checkpoint::load_latest(tmp.path(), &Device::Cpu)?.is_none());
    Ok(())
}

#[test]
fn a_crash_between_the_two_renames_of_a_replace_leaves_the_old_checkpoint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("model");
    save_numbered(&dir, 1)?;
    // The state right after `save` moved the old checkpoint aside: no `dir`,
    // the old one as a sibling, the new one still being written.
    std::fs::rename(&dir, tmp.path().join(".model.old-4242"))?;
    let partial = tmp.path().join(".model.tmp-4242");
    save_numbered(&partial, 2)?;
    std::fs::remove_file(partial.join(MANIFEST))?;
    assert_eq!(number_of(&checkpoint::load(&dir, &Device::Cpu)?)?, 1);

    // Killed a moment later, the new one complete: the old one still wins,
    // as the checkpoint that was in place when the save began.
    save_numbered(&tmp.path().join(".model.tmp-4242"), 2)?;
    assert_eq!(number_of(&checkpoint::load(&dir, &Device::Cpu)?)?, 1);

    // Without the old one (a first save killed before its rename), the
    // complete new one is read.
    std::fs::remove_dir_all(tmp.path().join(".model.old-4242"))?;
    assert_eq!(number_of(&checkpoint::load(&dir, &Device::Cpu)?)?, 2);

    // The next save puts a checkpoint in place and removes every leftover.
    std::fs::create_dir(tmp.path().join(".model.tmp-77"))?;
    save_numbered(&dir, 3)?;
    assert_eq!(number_of(&checkpoint::load(&dir, &Device::Cpu)?)?, 3);
    assert_eq!(hidden_entries(tmp.path())?, Vec::<String>::new());
    Ok(())
}

#[test]
fn leftovers_of_killed_writers_do_not_accumulate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = run_with_steps(tmp.path(), 2)?;
    for junk in [".step-00000002.tmp-11", ".step-00000009.old-12", ".keep"] {
        std::fs::create_dir(run.join(junk))?;
    }
    std::fs::write(run.join(".latest.tmp-13"), b"step-00000009")?;
    let dir = checkpoint::step_dir(&run, 3);
    save_numbered(&dir, 3)?;
    checkpoint::mark_latest(&run, &dir, 10)?;
    assert_eq!(hidden_entries(&run)?, vec![".keep".to_string()]);
    assert_eq!(latest_number(&run)?, 3);
    Ok(())
}

#[test]
fn trainer_resume_falls_back_to_the_previous_step() -> Result<()> {
    use ebm_core::{LangevinConfig, MlpEnergy, MlpEnergyConfig, ReplayConfig, Rng};
    use ebm_core::{PositiveSource, Trainer, TrainerConfig};
    struct Origin;
    impl PositiveSource for Origin {
        fn sample_dim(&self) -> usize {
            2
        }
        fn cond_dim(&self) -> usize {
            0
        }
        fn batch(
            &self,
            n: usize,
            _: &mut Rng,
            dev: &Device,
        ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
            Ok((Tensor::zeros((n, 2), candle_core::DType::F32, dev)?, None))
        }
    }
    let mut model = MlpEnergyConfig::new(2);
    model.hidden = vec![8];
    let langevin = LangevinConfig {
        steps: 2,
        step_size: 0.1,
        noise_scale: 0.01,
        grad_clip: None,
        clamp: None,
        tolerance: None,
    };
    let replay = ReplayConfig {
        capacity: 16,
        replay_prob: 0.95,
        init_low: -1.0,
        init_high: 1.0,
        quantize_u8: false,
        labels: Default::default(),
    };
    let mut cfg = TrainerConfig::quick(langevin, replay, 1e-3);
    cfg.batch_size = 4;
    cfg.checkpoint_every = 1;
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("run");
    let mut trainer = Trainer::<MlpEnergy>::new(model, cfg, 2, 0, &Device::Cpu)?;
    trainer.train(&Origin, 3, Some(&run), |_| {})?;
    damage(&checkpoint::step_dir(&run, 3), "flip")?;
    let resumed = Trainer::<MlpEnergy>::resume(&run, &Device::Cpu)?;
    assert_eq!(resumed.step_count(), 2);
    Ok(())
}

/// Names in `dir` starting with a dot (where saves keep their leftovers).
fn hidden_entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(unix)]
#[path = "checkpoint_recovery/sigkill.rs"]
mod sigkill;
