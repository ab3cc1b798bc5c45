//! Imports of the bag rosbags wrote (`tests/fixtures/ros2/arm_demo.mcap`),
//! checked against values computed here from what the fixture script says
//! it wrote (`arm_demo.json`: stamps, log times, joint orders, formulas),
//! with the linear interpolation done by hand.

use std::path::PathBuf;

use ebm_msgs::recording::load;
use serde_json::Value;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ros2")
        .join(name)
}

/// What the fixture script wrote.
struct Truth {
    doc: Value,
    start_ns: u64,
}

impl Truth {
    fn load() -> Self {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(fixture("arm_demo.json")).unwrap()).unwrap();
        let start_ns = doc["bag_start_ns"].as_u64().unwrap();
        Self { doc, start_ns }
    }

    fn joints(&self, key: &str) -> Vec<String> {
        self.doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// `q_j(t)` (`derivative`: its time derivative), rounded to f32 like the script.
    fn q(&self, j: usize, t_s: f64, derivative: bool) -> f64 {
        let w = &self.doc["waves"][j];
        let f = |k: &str| w[k].as_f64().unwrap();
        let omega = 2.0 * std::f64::consts::PI * f("freq");
        let x = if derivative {
            f("amp") * omega * (omega * t_s + f("phase")).cos()
        } else {
            f("offset") + f("amp") * (omega * t_s + f("phase")).sin()
        };
        f64::from(x as f32)
    }

    /// `(episode, absolute time ns)` of every message of `topic` the
    /// importer should keep: `stamp` picks the header stamp column (log
    /// time where it is null), stale messages left out.
    fn times(&self, topic: &str, stamp: bool) -> Vec<(u64, u64)> {
        let t = &self.doc["topics"][topic];
        let col = |k: &str, i: usize| t[k][i].as_u64();
        let stale: Vec<u64> = t["stale"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
            .unwrap_or_default();
        (0..t["count"].as_u64().unwrap() as usize)
            .filter(|&i| !stale.contains(&(i as u64)))
            .map(|i| {
                let rel = if stamp { col("stamp_ns", i) } else { None };
                let rel = rel.or(col("log_ns", i)).unwrap();
                (col("episode", i).unwrap(), self.start_ns + rel)
            })
            .collect()
    }
}

/// Linear interpolation at `t` of samples `(time, values)` by hand.
fn lerp(samples: &[(u64, Vec<f64>)], t: u64) -> Vec<f64> {
    let i = samples.iter().position(|(ti, _)| *ti >= t).unwrap();
    if samples[i].0 == t {
        return samples[i].1.clone();
    }
    let ((t0, a), (t1, b)) = (&samples[i - 1], &samples[i]);
    let w = (t - t0) as f64 / (t1 - t0) as f64;
    a.iter().zip(b).map(|(a, b)| a + (b - a) * w).collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() < 1e-5, "{what}[{i}]: {g} vs {w}");
    }
}

/// The three command topics: (topic, header stamps used, dimension names of the first).
const ACTIONS: [(&str, bool, &str); 3] = [
    (
        "/arm_controller/joint_trajectory",
        true,
        "shoulder_pan.position",
    ),
    (
        "/arm_controller/commands",
        false,
        "/arm_controller/commands[0]",
    ),
    ("/joint_commands", false, "shoulder_pan.position"),
];

#[test]
fn imports_the_rosbags_bag_resampled_by_linear_interpolation() {
    let truth = Truth::load();
    let (joints, arm) = (truth.joints("joints"), truth.joints("arm"));
    let lead_s = truth.doc["lead_s"].as_f64().unwrap();
    let rel_s = |t: u64| (t as f64 - truth.start_ns as f64) / 1e9;
    let dir = tempfile::tempdir().unwrap();
    for (topic, stamped, first_name) in ACTIONS {
        let out = dir.path().join("rec.mcap");
        let mut opts = ImportOptions::new("/joint_states");
        opts.state_fields = vec![JointField::Position, JointField::Velocity];
        opts.action_topic = Some(topic.into());
        let r = import_ros2(&fixture("arm_demo.mcap"), &opts, &out).unwrap();
        assert_eq!((r.state.samples, r.state.out_of_order), (998, 2));
        let ds = load(&out).unwrap();

        // Names: <joint>.<field>, field-major, joints in the first message's order.
        let mut names: Vec<String> = joints.iter().map(|j| format!("{j}.position")).collect();
        names.extend(joints.iter().map(|j| format!("{j}.velocity")));
        assert_eq!(ds.robot.state_names, names);
        assert_eq!(ds.robot.kind, "arm_demo");
        assert_eq!((ds.robot.state_dim, ds.robot.action_dim), (14, 6));
        assert_eq!(ds.robot.action_names[0], first_name, "{topic}");

        // Expected samples, from the JSON and the formulas.
        let states: Vec<(u64, u64, Vec<f64>)> = truth
            .times("/joint_states", true)
            .into_iter()
            .map(|(e, t)| {
                let v = (0..joints.len())
                    .map(|j| truth.q(j, rel_s(t), false))
                    .chain((0..joints.len()).map(|j| truth.q(j, rel_s(t), true)))
                    .collect();
                (e, t, v)
            })
            .collect();
        let actions: Vec<(u64, u64, Vec<f64>)> = truth
            .times(topic, stamped)
            .into_iter()
            .map(|(e, t)| {
                let v = (0..arm.len()).map(|j| truth.q(j, rel_s(t) + lead_s, false));
                (e, t, v.collect())
            })
            .collect();
        // Episode e: where its states and commands overlap, every 0.1 s;
        // all episodes as long as the shortest.
        let period = 100_000_000;
        let episode = |e: u64, s: &[(u64, u64, Vec<f64>)]| -> Vec<(u64, Vec<f64>)> {
            s.iter()
                .filter(|x| x.0 == e)
                .map(|x| (x.1, x.2.clone()))
                .collect()
        };
        let bounds: Vec<(u64, u64)> = (0..2)
            .map(|e| {
                let (s, a) = (episode(e, &states), episode(e, &actions));
                let start = s[0].0.max(a[0].0);
                let end = s.last().unwrap().0.min(a.last().unwrap().0);
                (start, end)
            })
            .collect();
        let steps = bounds
            .iter()
            .map(|b| (b.1 - b.0) / period + 1)
            .min()
            .unwrap();
        assert_eq!(ds.states.shape(), &[2, steps as usize, 14], "{topic}");
        assert_eq!(ds.actions.shape(), &[2, steps as usize, 6], "{topic}");
        assert!((95..=100).contains(&steps), "{steps}");
        for (e, &(start, _)) in bounds.iter().enumerate() {
            let (s, a) = (episode(e as u64, &states), episode(e as u64, &actions));
            for k in 0..steps as usize {
                let t = start + k as u64 * period;
                let got = ds.states.slice(ebm_msgs::ndarray::s![e, k, ..]).to_vec();
                assert_close(&got, &lerp(&s, t), &format!("state e{e} k{k}"));
                let got = ds.actions.slice(ebm_msgs::ndarray::s![e, k, ..]).to_vec();
                assert_close(&got, &lerp(&a, t), &format!("{topic} e{e} k{k}"));
            }
        }
    }
}

#[test]
fn joints_asked_for_set_the_order_and_the_action_keeps_those_it_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.mcap");
    let mut opts = ImportOptions::new("/joint_states");
    opts.joints = Some(vec![
        "gripper_finger".into(),
        "elbow".into(),
        "shoulder_pan".into(),
    ]);
    opts.action_topic = Some("/joint_commands".into());
    opts.robot_kind = Some("arm with gripper".into());
    let r = import_ros2(&fixture("arm_demo.mcap"), &opts, &out).unwrap();
    assert_eq!(r.robot_id.as_str(), "arm-with-gripper");
    let ds = load(&out).unwrap();
    assert_eq!(
        ds.robot.state_names,
        [
            "gripper_finger.position",
            "elbow.position",
            "shoulder_pan.position"
        ]
    );
    // The commands name no gripper: elbow and shoulder_pan, in that order.
    assert_eq!(
        ds.robot.action_names,
        ["elbow.position", "shoulder_pan.position"]
    );
    assert_eq!(r.action.unwrap().log_time_fallbacks, 500);
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.mcap");
    let bag = fixture("arm_demo.mcap");
    let err = |opts: &ImportOptions| import_ros2(&bag, opts, &out).unwrap_err().to_string();

    let text = err(&ImportOptions::new("/joint_state"));
    assert!(
        text.contains("topic `/joint_state` is not in the bag"),
        "{text}"
    );
    for t in [
        "/joint_states (sensor_msgs/msg/JointState, 1000 messages)",
        "/diagnostics (diagnostic_msgs/msg/DiagnosticArray",
    ] {
        assert!(text.contains(t), "{text}");
    }
    let mut opts = ImportOptions::new("/joint_states");
    opts.action_topic = Some("/cmd".into());
    assert!(err(&opts).contains("topic `/cmd` is not in the bag"));

    let mut opts = ImportOptions::new("/joint_states");
    opts.joints = Some(vec!["elbow".into(), "tail".into()]);
    let text = err(&opts);
    assert!(
        text.contains("joint `tail` is missing from /joint_states message 0"),
        "{text}"
    );
    assert!(
        text.contains("shoulder_pan, shoulder_lift, elbow"),
        "{text}"
    );

    let text = err(&ImportOptions::new("/diagnostics"));
    assert!(
        text.contains("`diagnostic_msgs/msg/DiagnosticArray`, which cannot be read as the state"),
        "{text}"
    );
    let mut opts = ImportOptions::new("/joint_states");
    opts.action_topic = Some("/diagnostics".into());
    assert!(err(&opts).contains("cannot be read as the action"));

    let mut opts = ImportOptions::new("/joint_states");
    opts.rate_hz = 0.0;
    assert!(err(&opts).contains("`rate_hz`"));
    opts.rate_hz = 10.0;
    opts.steps = Some(200);
    let text = err(&opts);
    assert!(
        text.contains("no episode") && text.contains("the longest 100 steps"),
        "{text}"
    );
    assert!(!out.exists(), "no recording is written on an error");
}

#[test]
fn a_cut_bag_imports_what_was_read_and_says_so() {
    let bytes = std::fs::read(fixture("arm_demo.mcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let out = dir.path().join("rec.mcap");
    let r = import_ros2(&cut, &ImportOptions::new("/joint_states"), &out).unwrap();
    let read = r.truncated_after.expect("reported as truncated");
    assert!(read <= bytes.len() as u64 * 3 / 5);
    // The first episode whole, the second in part (chunks of 2 s).
    assert!(
        (600..1000).contains(&r.state.messages),
        "{}",
        r.state.messages
    );
    assert_eq!(r.topics["/joint_states"].1, r.state.messages);
    assert_eq!(r.spans, 2);
    let ds = load(&out).unwrap();
    assert_eq!(ds.states.shape()[0] as u64, r.episodes);
    assert!(r.episodes >= 2);
}

#[test]
fn robot_ids_come_from_the_kind() {
    assert_eq!(output::robot_id_from("0.bag_x"), "0-bag_x");
    assert_eq!(output::robot_id_from("__x y"), "x-y");
    assert_eq!(output::robot_id_from("é"), "ros2");
}

#[test]
fn a_bag_directory_reads_its_split_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let bag = dir.path().join("arm_demo");
    std::fs::create_dir(&bag).unwrap();
    std::fs::copy(fixture("arm_demo.mcap"), bag.join("arm_demo_0.mcap")).unwrap();
    std::fs::write(
        bag.join("metadata.yaml"),
        "rosbag2_bagfile_information: {}\n",
    )
    .unwrap();
    let opts = ImportOptions::new("/joint_states");
    let from_dir = import_ros2(&bag, &opts, &dir.path().join("a.mcap")).unwrap();
    let from_file =
        import_ros2(&fixture("arm_demo.mcap"), &opts, &dir.path().join("b.mcap")).unwrap();
    assert_eq!(from_dir.state.messages, from_file.state.messages);
    assert_eq!(from_dir.episodes, from_file.episodes);
    assert_eq!(
        load(&dir.path().join("a.mcap")).unwrap().robot.kind,
        "arm_demo"
    );

    // rosbag2's split files in numeric order; SQLite bags refused with the fix.
    let split = dir.path().join("split");
    std::fs::create_dir(&split).unwrap();
    for i in [10, 2, 0, 1] {
        std::fs::write(split.join(format!("run_{i}.mcap")), b"").unwrap();
    }
    let names: Vec<String> = bag_files(&split)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["run_0.mcap", "run_1.mcap", "run_2.mcap", "run_10.mcap"]
    );
    let sqlite = dir.path().join("old");
    std::fs::create_dir(&sqlite).unwrap();
    std::fs::write(sqlite.join("old_0.db3"), b"").unwrap();
    let err = import_ros2(&sqlite, &opts, &dir.path().join("c.mcap"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ros2 bag convert"), "{err}");
}
