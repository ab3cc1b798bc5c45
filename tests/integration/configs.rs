//! Every file in `configs/` parses and validates.

use std::path::PathBuf;

use ebm_train::images::ImageConfig;
use ebm_train::toy::{ToyConfig, DEFAULT_TOY_TOML};
use ebm_train::trajectory::TrajectoryConfig;

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn every_config_file_parses_and_validates() -> anyhow::Result<()> {
    let mut seen = 0;
    for entry in std::fs::read_dir(configs_dir())? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match name {
            "toy.toml" => {
                ToyConfig::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            }
            "sim.toml" => {
                let cfg = ebm_sim_data::config::SimConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                cfg.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            }
            "runtime.toml" => {
                let cfg = ebm_runtime::RuntimeConfig::load(&path)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                assert!(
                    !cfg.zenoh.multicast_scouting,
                    "{name}: scouting must be off"
                );
                // Every model it names is committed and loads.
                for s in cfg.serving() {
                    let b = ebm_runtime::RobotModel::load(
                        &s.model.checkpoint,
                        &candle_core::Device::Cpu,
                    )
                    .map_err(|e| anyhow::anyhow!("{name}: {}: {e}", s.robots))?;
                    assert_eq!(b.state_dim(), b.robot.state_dim, "{name}: {}", s.robots);
                }
            }
            "runtime_ros2.toml" => {
                // Its model is made by the commands in its header.
                let cfg = ebm_runtime::RuntimeConfig::load(&path)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                assert_eq!(cfg.ros2.len(), 1, "{name}");
            }
            n if n.starts_with("traj_") || n.starts_with("fetch_") || n.starts_with("shadow_") => {
                let cfg =
                    TrajectoryConfig::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                assert_eq!(cfg.conditional(), !n.contains("uncond"), "{name}");
            }
            n if n.starts_with("mnist_") => {
                let cfg = ImageConfig::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                assert_eq!(
                    cfg.data.conditional,
                    (n.contains("cond") && !n.contains("uncond")) || n.contains("classify"),
                    "{name}"
                );
            }
            "dsprites.toml" => {
                let cfg: ebm_train::dsprites::train::DspritesConfig =
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                cfg.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            }
            "dsprites_cross.toml" => {
                let cfg: ebm_train::dsprites::cross::CrossConfig =
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                cfg.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            }
            n if n.starts_with("continual_") => {
                let cfg: ebm_train::continual::ContinualConfig =
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                cfg.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                assert_eq!(cfg.classes(), 10, "{name}");
            }
            other => anyhow::bail!("configs/{other} has no parser in this test: add one"),
        }
        seen += 1;
    }
    assert!(seen >= 1, "no configs found");
    Ok(())
}

#[test]
fn the_built_in_toy_default_is_the_shipped_file() -> anyhow::Result<()> {
    let on_disk = std::fs::read_to_string(configs_dir().join("toy.toml"))?;
    assert_eq!(on_disk, DEFAULT_TOY_TOML);
    Ok(())
}

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let unknown = DEFAULT_TOY_TOML.replace("alpha = 1.0", "alpha = 1.0\nalfa = 2.0");
    let err = ToyConfig::parse(&unknown).unwrap_err().to_string();
    assert!(err.contains("alfa"), "{err}");

    let bad_range = DEFAULT_TOY_TOML.replace("subset_b = [2, 3, 4, 5]", "subset_b = [2, 3, 9]");
    let err = ToyConfig::parse(&bad_range).unwrap_err().to_string();
    assert!(err.contains("subset_b"), "{err}");

    let bad_step = DEFAULT_TOY_TOML.replacen("lr = 0.001", "lr = -1.0", 1);
    let err = ToyConfig::parse(&bad_step).unwrap_err().to_string();
    assert!(err.contains("lr"), "{err}");
}

#[test]
fn image_configs_refuse_mismatched_classes() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(configs_dir().join("mnist_uncond.toml"))?;
    let bad = text.replace("conditional = false", "conditional = true");
    let err = ImageConfig::parse(&bad).unwrap_err().to_string();
    assert!(err.contains("num_classes"), "{err}");
    Ok(())
}
