//! The codec against payloads written by an independent implementation: the
//! Python `rosbags` package (`sim-data/ros2/make_fixtures.py` wrote
//! `tests/fixtures/ros2/<name>.cdr` and the values in `<name>.json`).

use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::mutate::Mutator;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ros2")
        .join(name)
}

/// The payload and the `value` object of fixture `stem`, after checking the
/// type name and byte order the JSON declares.
fn load(stem: &str, type_name: &str) -> (Vec<u8>, Value) {
    let bytes = std::fs::read(fixture(&format!("{stem}.cdr"))).unwrap();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{stem}.json"))).unwrap()).unwrap();
    assert_eq!(doc["type"], type_name);
    let little = doc["little_endian"].as_bool().unwrap();
    assert_eq!(&bytes[..2], if little { &CDR_LE_ID } else { &CDR_BE_ID });
    (bytes, doc["value"].clone())
}

const CDR_LE_ID: [u8; 2] = cdr::CDR_LE;
const CDR_BE_ID: [u8; 2] = cdr::CDR_BE;

// JSON -> message, field by field (the fixtures spell ROS field names).
fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}
fn u(v: &Value) -> u32 {
    u32::try_from(v.as_u64().unwrap()).unwrap()
}
fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(s).collect()
}
fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().unwrap().iter().map(f).collect()
}
fn time(v: &Value) -> Time {
    Time {
        sec: i32::try_from(v["sec"].as_i64().unwrap()).unwrap(),
        nanosec: u(&v["nanosec"]),
    }
}
fn duration(v: &Value) -> Duration {
    let t = time(v);
    Duration {
        sec: t.sec,
        nanosec: t.nanosec,
    }
}
fn header(v: &Value) -> Header {
    Header {
        stamp: time(&v["stamp"]),
        frame_id: s(&v["frame_id"]),
    }
}
fn joint_state(v: &Value) -> JointState {
    JointState {
        header: header(&v["header"]),
        name: strings(&v["name"]),
        position: f64s(&v["position"]),
        velocity: f64s(&v["velocity"]),
        effort: f64s(&v["effort"]),
    }
}
fn multi_array(v: &Value) -> Float64MultiArray {
    let dim = |d: &Value| MultiArrayDimension {
        label: s(&d["label"]),
        size: u(&d["size"]),
        stride: u(&d["stride"]),
    };
    Float64MultiArray {
        layout: MultiArrayLayout {
            dim: list(&v["layout"]["dim"], dim),
            data_offset: u(&v["layout"]["data_offset"]),
        },
        data: f64s(&v["data"]),
    }
}
fn trajectory(v: &Value) -> JointTrajectory {
    let point = |p: &Value| JointTrajectoryPoint {
        positions: f64s(&p["positions"]),
        velocities: f64s(&p["velocities"]),
        accelerations: f64s(&p["accelerations"]),
        effort: f64s(&p["effort"]),
        time_from_start: duration(&p["time_from_start"]),
    };
    JointTrajectory {
        header: header(&v["header"]),
        joint_names: strings(&v["joint_names"]),
        points: list(&v["points"], point),
    }
}
fn diagnostics(v: &Value) -> DiagnosticArray {
    let kv = |x: &Value| KeyValue {
        key: s(&x["key"]),
        value: s(&x["value"]),
    };
    let status = |x: &Value| DiagnosticStatus {
        level: u8::try_from(x["level"].as_u64().unwrap()).unwrap(),
        name: s(&x["name"]),
        message: s(&x["message"]),
        hardware_id: s(&x["hardware_id"]),
        values: list(&x["values"], kv),
    };
    DiagnosticArray {
        header: header(&v["header"]),
        status: list(&v["status"], status),
    }
}

/// Decodes fixture `stem` as `M`, compares with its JSON values, and (for
/// little-endian fixtures) re-encodes it byte for byte.
fn check<M: Ros2Message + PartialEq + std::fmt::Debug>(stem: &str, from_json: fn(&Value) -> M) {
    let (bytes, value) = load(stem, M::TYPE_NAME);
    let expected = from_json(&value);
    assert_eq!(decode_cdr::<M>(&bytes).unwrap(), expected, "{stem}");
    if bytes[1] == 1 {
        assert_eq!(encode_cdr(&expected).unwrap(), bytes, "{stem}: our bytes");
    }
}

#[test]
fn decodes_and_reencodes_every_rosbags_fixture() {
    check("time", time);
    check("duration", duration);
    check("header", header);
    check("joint_state", joint_state);
    check("float64_multi_array", multi_array);
    check("joint_trajectory", trajectory);
    check("diagnostic_array", diagnostics);
}

#[test]
fn big_endian_payload_decodes_to_the_same_values() {
    check("joint_state_be", joint_state);
    let be = std::fs::read(fixture("joint_state_be.cdr")).unwrap();
    let le = std::fs::read(fixture("joint_state.cdr")).unwrap();
    let msg = decode_cdr::<JointState>(&be).unwrap();
    // We write little endian only: the rosbags little-endian bytes.
    assert_eq!(encode_cdr(&msg).unwrap(), le);
}

#[test]
fn type_names_are_ros_names() {
    assert_eq!(JointState::TYPE_NAME, "sensor_msgs/msg/JointState");
    assert_eq!(
        JointTrajectory::TYPE_NAME,
        "trajectory_msgs/msg/JointTrajectory"
    );
    assert_eq!(
        DiagnosticArray::TYPE_NAME,
        "diagnostic_msgs/msg/DiagnosticArray"
    );
    assert_eq!(
        Float64MultiArray::TYPE_NAME,
        "std_msgs/msg/Float64MultiArray"
    );
    // Every name has a RIHS01 hash in the fixtures (for rmw_zenoh keys).
    let hashes: Value =
        serde_json::from_slice(&std::fs::read(fixture("type_hashes.json")).unwrap()).unwrap();
    for name in SUPPORTED_TYPES {
        let h = hashes["rihs01"][name].as_str().unwrap_or_default();
        assert!(h.starts_with("RIHS01_") && h.len() == 71, "{name}: {h}");
    }
}

#[test]
fn errors_name_type_field_and_offset() {
    let (bytes, _) = load("joint_trajectory", JointTrajectory::TYPE_NAME);
    // Cut inside the second point's positions.
    let err = decode_cdr::<JointTrajectory>(&bytes[..170]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "malformed CDR trajectory_msgs/msg/JointTrajectory: field `points[1].positions` at byte"
        ),
        "{text}"
    );
    let MsgsError::Cdr { error, .. } = err else {
        panic!("{err}")
    };
    assert!(error.offset <= 170, "{error}");

    // A huge count: named, refused before allocating.
    let (mut bytes, _) = load("joint_state", JointState::TYPE_NAME);
    // The name count sits after the header (stamp 8 bytes, frame_id "" 5 bytes + 3 padding).
    assert_eq!(&bytes[20..24], &[4, 0, 0, 0]);
    bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let text = decode_cdr::<JointState>(&bytes).unwrap_err().to_string();
    assert!(
        text.contains("`name` at byte 20: count 4294967295"),
        "{text}"
    );

    let mut padded = encode_cdr(&Time::default()).unwrap();
    padded.extend_from_slice(&[0; 3]);
    decode_cdr::<Time>(&padded).unwrap();
    padded.push(0);
    let text = decode_cdr::<Time>(&padded).unwrap_err().to_string();
    assert!(text.contains("4 trailing bytes"), "{text}");
}

/// Mutated and truncated payloads of every fixture: decoding returns (an
/// error or a message), never panics, and what decodes re-encodes.
#[test]
fn mutated_payloads_never_panic() {
    let stems = [
        "joint_state",
        "joint_state_be",
        "float64_multi_array",
        "joint_trajectory",
        "diagnostic_array",
        "header",
    ];
    let payloads: Vec<Vec<u8>> = stems
        .iter()
        .map(|s| std::fs::read(fixture(&format!("{s}.cdr"))).unwrap())
        .collect();
    fn all(bytes: &[u8]) -> usize {
        let mut ok = 0;
        macro_rules! try_type {
            ($t:ty) => {
                if let Ok(m) = decode_cdr::<$t>(bytes) {
                    ok += 1;
                    // Compared as bytes: a mutated float may be NaN.
                    let again = encode_cdr(&m).unwrap();
                    let twice = encode_cdr(&decode_cdr::<$t>(&again).unwrap()).unwrap();
                    assert_eq!(twice, again);
                }
            };
        }
        try_type!(JointState);
        try_type!(Float64MultiArray);
        try_type!(JointTrajectory);
        try_type!(DiagnosticArray);
        try_type!(Header);
        ok
    }
    let mut rng = Mutator::new(17);
    let (mut decoded, mut rejected) = (0, 0);
    for (i, p) in payloads.iter().enumerate() {
        for cut in 0..p.len() {
            all(&p[..cut]);
        }
        let other = &payloads[(i + 1) % payloads.len()];
        for _ in 0..3000 {
            let m = rng.mutate(p, other, false);
            match all(&m) {
                0 => rejected += 1,
                _ => decoded += 1,
            }
        }
    }
    // Both outcomes occur: the test exercises errors and successes.
    assert!(
        decoded > 100 && rejected > 100,
        "{decoded} decoded, {rejected} rejected"
    );
}
