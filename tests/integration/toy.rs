//! The 2-D toy end to end: Algorithm 1 learns all eight modes, and the sum of
//! two energies trained on different modes samples their intersection.

use candle_core::Device;
use ebm_train::toy::{ToyConfig, ToyRun};

#[test]
fn toy_training_covers_every_mode_and_summed_energies_land_in_the_intersection(
) -> anyhow::Result<()> {
    let mut cfg = ToyConfig::default_config()?;
    // Narrower than the shipped 3 x 128 so the test stays quick on 2 cores; the
    // README's run uses the shipped config.
    cfg.model.hidden = vec![64, 64, 64];
    let out = tempfile::tempdir()?;
    let o = ToyRun {
        cfg: cfg.clone(),
        device: Device::Cpu,
    }
    .run(out.path())?;

    let per_mode = &o.ring.per_mode;
    assert_eq!(per_mode.len(), 8);
    let min = per_mode.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        min >= 0.05,
        "a mode gets only {:.1}% of samples: {per_mode:?}",
        100.0 * min
    );
    assert!(
        o.ring.off_mode < 0.10,
        "{:.1}% of samples are off-mode",
        100.0 * o.ring.off_mode
    );

    assert_eq!(o.intersection, vec![2, 3]);
    assert!(
        o.sum_in_intersection >= 0.80,
        "only {:.1}% of E_A + E_B samples in the intersection: {:?}",
        100.0 * o.sum_in_intersection,
        o.sum
    );
    // Each subset model alone does reach modes outside the intersection, so the
    // intersection comes from the sum, not from either model.
    assert!(o.subset_a.fraction_in(&[0, 1]) > 0.2, "{:?}", o.subset_a);
    assert!(o.subset_b.fraction_in(&[4, 5]) > 0.2, "{:?}", o.subset_b);

    for f in &o.figures {
        let svg = std::fs::read_to_string(f)?;
        assert!(svg.starts_with("<svg"), "{} is not an SVG", f.display());
        // Axes: both coordinates labelled.
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .collect();
        assert!(
            labels.contains(&"x") && labels.contains(&"y"),
            "{}: {labels:?}",
            f.display()
        );
    }
    // Each model's run directory holds a loadable latest checkpoint.
    for run in ["ring", "subset_a", "subset_b"] {
        let dir = ebm_core::checkpoint::latest(&out.path().join(run))?.expect("a checkpoint");
        let loaded = ebm_core::checkpoint::load(&dir, &Device::Cpu)?;
        assert_eq!(loaded.manifest.step, cfg.steps);
    }
    Ok(())
}
