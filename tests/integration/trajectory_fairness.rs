//! The trajectory comparison's fairness: `traj tune` tries every context
//! noise level on both models, trains them without the validation split and
//! scores them on it (never on the test split).

use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint;
use ebm_sim_data::hand_robot_spec;
use ebm_train::trajectory::config::TuneConfig;
use ebm_train::trajectory::split::splits;
use ebm_train::trajectory::tune::{candidate, tune};
use ebm_train::trajectory::TrajectoryConfig;

use crate::trajectory::write_recording_of;

fn noise_in(dir: &Path) -> anyhow::Result<f64> {
    let m = checkpoint::load(dir, &Device::Cpu)?.manifest;
    m.extra
        .get("context_noise")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| anyhow::anyhow!("{} records no context noise", dir.display()))
}

#[test]
fn tuning_gives_both_models_every_level_on_a_validation_split() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("synthetic.mcap");
    write_recording_of(&rec, 24, &hand_robot_spec())?;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/traj_uncond.toml"),
    )?;
    let mut cfg = TrajectoryConfig::parse(&text)?;
    cfg.tune = Some(TuneConfig {
        validation_share: 0.25,
        validation_trajectories: 0,
        context_noise: vec![0.0, 0.5],
        context_len: vec![1],
    });
    cfg.recording = rec.clone();
    cfg.steps = 20;
    cfg.baseline.steps = 20;
    cfg.eval.rollout.horizon = 6;
    cfg.eval.rollout.particles = 2;
    // The recording: 32 training trajectories, 8 test ones.
    let ds = ebm_msgs::recording::load(&rec)?;
    let test: Vec<usize> = ds.test_ids().iter().map(|&i| i as usize).collect();
    let s = splits(&ds, &candidate(&cfg, 1, 0.0));
    assert_eq!((s.fit.len(), s.scored.len()), (24, 8));
    assert!(s
        .scored
        .iter()
        .all(|i| !test.contains(i) && !s.fit.contains(i)));

    let out = dir.path().join("tune");
    std::fs::create_dir_all(&out)?;
    let r = tune(&cfg, dir.path(), &out, &Device::Cpu)?;
    assert_eq!(r.candidates.len(), 2);
    assert_eq!(r.validation_trajectories, 8);
    for c in &r.candidates {
        let run = out.join(format!("k{}-noise-{}", c.context_len, c.context_noise));
        // Each level was given to both models' training contexts.
        let level = f64::from(c.context_noise);
        assert_eq!(
            noise_in(&run.join("model"))?,
            level,
            "the EBM's context noise"
        );
        assert_eq!(noise_in(&run.join("fc"))?, level, "the FC's context noise");
        let m = checkpoint::load(&run.join("model"), &Device::Cpu)?.manifest;
        assert_eq!(
            m.extra["train_trajectories"], 24,
            "the validation split is held out"
        );
        assert!(
            c.avg_fd_ebm.is_finite() && c.avg_fd_fc.is_finite() && c.avg_fd_fc_noisy.is_finite()
        );
    }
    // One context length here: each model gets the level with its lowest
    // validation FD.
    let best = |f: fn(&ebm_train::trajectory::tune::Candidate) -> f64| {
        r.candidates
            .iter()
            .min_by(|a, b| f(a).total_cmp(&f(b)))
            .unwrap()
            .context_noise
    };
    assert_eq!(r.ebm_context_noise, best(|c| c.avg_fd_ebm));
    assert_eq!(r.fc_context_noise, best(|c| c.avg_fd_fc));
    assert!(out.join("tune.md").is_file());
    Ok(())
}
