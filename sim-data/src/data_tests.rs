//! Determinism and recording tests of dataset generation.

use indicatif::ProgressBar;

use crate::layout::{ACTION_DIM, STATE_DIM};
use ebm_msgs::recording::load;
use ebm_msgs::{Encoding, RobotId};

use crate::config::SimConfig;
use crate::episode::trajectory;
use crate::generate::{generate, split, GenerateOptions};

fn options(trajectories: u64, steps: u32, seed: u64, encoding: Encoding) -> GenerateOptions {
    GenerateOptions {
        trajectories,
        steps,
        seed,
        encoding,
        robot_id: RobotId::new("sim").unwrap(),
        batch: 3,
    }
}

fn generate_with_threads(threads: usize, opts: &GenerateOptions) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.mcap");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| generate(&SimConfig::default(), opts, &path, &ProgressBar::hidden()))
        .unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_thread_count() {
    let opts = options(8, 30, 11, Encoding::Bincode);
    let one = generate_with_threads(1, &opts);
    let two = generate_with_threads(2, &opts);
    let four = generate_with_threads(4, &opts);
    assert!(
        one == two && two == four,
        "recordings differ across thread counts"
    );
    let other = generate_with_threads(2, &options(8, 30, 12, Encoding::Bincode));
    assert_ne!(one, other, "a different seed should give different data");
}

#[test]
fn recording_round_trip_returns_the_simulated_trajectories() {
    let dir = tempfile::tempdir().unwrap();
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let path = dir.path().join("rt.mcap");
        let opts = options(5, 20, 3, encoding);
        let cfg = SimConfig::default();
        generate(&cfg, &opts, &path, &ProgressBar::hidden()).unwrap();
        let ds = load(&path).unwrap();
        assert_eq!(ds.states.shape(), &[5, 20, STATE_DIM]);
        assert_eq!(ds.actions.shape(), &[5, 20, ACTION_DIM]);
        assert_eq!(ds.header.split, split(5, 3));
        assert_eq!(ds.header.seed, 3);
        assert_eq!(SimConfig::from_toml(&ds.header.config).unwrap(), cfg);
        for id in 0..5u64 {
            let t = trajectory(&cfg, 20, 3, id).0.unwrap();
            let row = ds
                .states
                .index_axis(ebm_msgs::ndarray::Axis(0), id as usize);
            assert_eq!(
                row.as_slice().unwrap(),
                &t.states[..],
                "{encoding:?} states of {id}"
            );
            let row = ds
                .actions
                .index_axis(ebm_msgs::ndarray::Axis(0), id as usize);
            assert_eq!(
                row.as_slice().unwrap(),
                &t.actions[..],
                "{encoding:?} actions of {id}"
            );
        }
    }
}

#[test]
fn split_is_90_10_by_trajectory() {
    let s = split(1000, 7);
    assert_eq!((s.train.len(), s.test.len()), (900, 100));
    let mut all: Vec<u64> = s.train.iter().chain(&s.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(split(1000, 7), s);
    assert_ne!(split(1000, 8), s);
}
