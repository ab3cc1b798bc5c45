//! Physics checks of the simulator and policy (fast: a few dozen episodes).

use crate::layout::{JOINT_DIM, STATE_DIM};

use crate::config::SimConfig;
use crate::episode::{simulate, Control, Seeds};
use crate::hand;
use crate::policy::Behaviour;

/// Angle (rad) between two unit quaternions `[x, y, z, w]`.
pub fn quat_angle(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    2.0 * dot.abs().min(1.0).acos()
}

/// Largest rotation of the cube from its first frame, and its final displacement.
pub fn cube_motion(states: &[f32]) -> (f32, f32) {
    let q0 = &states[JOINT_DIM + 3..STATE_DIM];
    let p0 = &states[JOINT_DIM..JOINT_DIM + 3];
    let mut max_angle: f32 = 0.0;
    for s in states.chunks(STATE_DIM) {
        max_angle = max_angle.max(quat_angle(q0, &s[JOINT_DIM + 3..]));
    }
    let last = &states[states.len() - STATE_DIM..];
    let d: f32 = p0
        .iter()
        .zip(&last[JOINT_DIM..JOINT_DIM + 3])
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    (max_angle, d.sqrt())
}

#[test]
#[ignore = "exploration: prints per-behaviour statistics"]
fn explore_behaviours() {
    let cfg = match std::env::var("EBM_SIM_CFG") {
        Ok(text) => SimConfig::from_toml(&text).unwrap(),
        Err(_) => SimConfig::default(),
    };
    for b in Behaviour::ALL {
        let mut angles = Vec::new();
        let mut drops = 0;
        let t0 = std::time::Instant::now();
        for seed in 0..8 {
            match simulate(
                &cfg,
                100,
                Seeds::attempt(seed),
                &Control::Scripted { force: Some(b) },
            ) {
                Ok(t) => angles.push(cube_motion(&t.states)),
                Err(_) => drops += 1,
            }
        }
        let fps = 800.0 / t0.elapsed().as_secs_f32();
        println!(
            "{b:?}: drops {drops}/8, (max angle deg, displacement m): {:?}  ~{fps:.0} frames/s",
            angles
                .iter()
                .map(|(a, d)| (
                    (a.to_degrees() * 10.0).round() / 10.0,
                    (d * 1000.0).round() / 1000.0
                ))
                .collect::<Vec<_>>()
        );
    }
    let t = simulate(&cfg, 100, Seeds::attempt(3), &Control::Frozen).unwrap();
    println!("frozen: {:?}", cube_motion(&t.states));
    let links = hand::links();
    let mut worst: f32 = 0.0;
    for s in t.states.chunks(STATE_DIM) {
        for (q, l) in s.iter().zip(&links) {
            worst = worst.max(l.lower - q).max(q - l.upper);
        }
    }
    println!("frozen worst limit violation {worst}");
}

/// Thresholds stated in the README of this crate.
const FROZEN_MAX_ROTATION_DEG: f32 = 3.0;
const FROZEN_MAX_DISPLACEMENT_M: f32 = 0.005;
const ROTATED_DEG: f32 = 15.0;
const ROTATED_SHARE: f32 = 0.75;
const LIMIT_SLACK_RAD: f32 = 0.05;

#[test]
fn with_the_fingers_frozen_the_cube_stays_near_rest() {
    let cfg = SimConfig::default();
    for seed in 0..4 {
        let t = simulate(&cfg, 100, Seeds::attempt(seed), &Control::Frozen).unwrap();
        let (angle, disp) = cube_motion(&t.states);
        assert!(
            angle.to_degrees() < FROZEN_MAX_ROTATION_DEG,
            "seed {seed}: rotated {}",
            angle.to_degrees()
        );
        assert!(
            disp < FROZEN_MAX_DISPLACEMENT_M,
            "seed {seed}: moved {disp} m"
        );
    }
}

#[test]
fn under_the_policy_the_cube_turns_and_states_stay_valid() {
    let cfg = SimConfig::default();
    let links = hand::links();
    let n = 16;
    let mut rotated = 0;
    for id in 0..n {
        let t = crate::episode::trajectory(&cfg, 100, 1, id).0.unwrap();
        let (angle, _) = cube_motion(&t.states);
        if angle.to_degrees() > ROTATED_DEG {
            rotated += 1;
        }
        for s in t.states.chunks(STATE_DIM) {
            assert!(s.iter().all(|x| x.is_finite()));
            for (q, l) in s.iter().zip(&links) {
                assert!(
                    *q >= l.lower - LIMIT_SLACK_RAD && *q <= l.upper + LIMIT_SLACK_RAD,
                    "{} = {q}",
                    l.joint
                );
            }
            let norm: f32 = s[JOINT_DIM + 3..].iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-3);
        }
    }
    let share = rotated as f32 / n as f32;
    eprintln!("{rotated}/{n} trajectories turned the cube by > {ROTATED_DEG} deg");
    assert!(
        share >= ROTATED_SHARE,
        "only {rotated}/{n} trajectories turned the cube by > {ROTATED_DEG} deg"
    );
}

#[test]
fn joint_angles_follow_motor_targets_with_the_axis_sign() {
    let cfg = SimConfig::default();
    let mut sim = crate::sim::HandCubeSim::new(&cfg, [0.0, 0.0], 0.0);
    let mut action = crate::policy::REST_POSE;
    action[3] = 1.0; // FFJ3 (MCP of the first finger)
    action[15] = 0.6; // THJ5
    sim.set_action(&action);
    for _ in 0..25 {
        sim.step();
    }
    let q = sim.joint_angles();
    assert!((q[3] - 1.0).abs() < 0.1, "FFJ3 = {}", q[3]);
    assert!((q[19] - 0.6).abs() < 0.1, "THJ5 = {}", q[19]);
}

#[test]
#[ignore = "exploration: prints thumb positions"]
fn explore_thumb() {
    let cfg = SimConfig::default();
    let mut sim = crate::sim::HandCubeSim::new(&cfg, [0.0, 0.0], 0.0);
    let mut a = crate::policy::REST_POSE;
    let targets: Vec<f32> = std::env::var("THUMB")
        .unwrap_or("1.05,0.5,0,0.3,1.4".into())
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    a[15..20].copy_from_slice(&targets);
    sim.set_action(&a);
    for _ in 0..30 {
        sim.step();
    }
    let p = sim.link_positions();
    for (i, l) in hand::links().iter().enumerate().skip(19) {
        println!("{} {:?}", l.joint, p[i].map(|x| (x * 1000.0).round()));
    }
    println!(
        "cube {:?} q {:?}",
        &sim.state()[24..27]
            .iter()
            .map(|x| (x * 1000.0).round())
            .collect::<Vec<_>>(),
        sim.joint_angles()[19..].to_vec()
    );
}

#[test]
fn a_cube_off_the_palm_is_flagged_as_dropped() {
    let cfg = SimConfig::default();
    // 12 cm to the side of the palm's centre: nothing under it.
    let mut sim = crate::sim::HandCubeSim::new(&cfg, [0.0, 0.12], 0.0);
    sim.set_action(&crate::policy::REST_POSE);
    for _ in 0..15 {
        sim.step();
    }
    assert_eq!(sim.cube_status(), crate::sim::CubeStatus::Dropped);
}
