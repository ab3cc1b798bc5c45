//! Round-trip, truncation and corruption tests of recordings.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use super::*;
use crate::codec::Encoding;
use crate::keys::RobotId;
use crate::robot::RobotSpec;
use crate::types::{Action, RobotState};
use crate::MsgsError;

/// A small robot of its own shape: recordings know no fixed sizes.
const DIM: usize = 5;
const ADIM: usize = 2;
const N: u64 = 3;
const T: u32 = 4;
const PERIOD: u64 = 40_000_000;

fn header(encoding: Encoding) -> RecordingHeader {
    RecordingHeader {
        robot_id: RobotId::new("sim").unwrap(),
        encoding,
        trajectories: N,
        steps: T,
        control_period_ns: PERIOD,
        generator: "test 0.0".into(),
        seed: 9,
        config: "a = 1\n".into(),
        split: Split {
            train: vec![0, 2],
            test: vec![1],
        },
        robot: Some(robot()),
    }
}

fn robot() -> RobotSpec {
    RobotSpec {
        kind: "test-arm".into(),
        state_dim: DIM,
        action_dim: ADIM,
        state_names: ["j0", "j1", "j2", "box.x", "box.y"]
            .map(String::from)
            .to_vec(),
        state_units: ["rad", "rad", "rad", "m", "m"].map(String::from).to_vec(),
        action_names: Vec::new(),
        action_units: Vec::new(),
    }
}

fn frames() -> Vec<(RobotState, Action)> {
    let mut out = Vec::new();
    for e in 0..N {
        for t in 0..u64::from(T) {
            let seq = e * u64::from(T) + t;
            let stamp_ns = seq * PERIOD;
            let v = |k: usize| (seq * 100 + k as u64) as f32 * 0.01;
            out.push((
                RobotState {
                    robot_id: "sim".into(),
                    episode: e,
                    seq,
                    stamp_ns,
                    state: (0..DIM).map(v).collect(),
                    last_action: None,
                },
                Action {
                    robot_id: "sim".into(),
                    episode: e,
                    seq,
                    stamp_ns,
                    action: (0..ADIM).map(|k| -v(k)).collect(),
                },
            ));
        }
    }
    out
}

fn write(path: &Path, encoding: Encoding) {
    let mut w = RecordingWriter::create(path, &header(encoding)).unwrap();
    for (s, a) in frames() {
        w.write_state(&s).unwrap();
        w.write_action(&a).unwrap();
    }
    let mut summary = BTreeMap::new();
    summary.insert("rejected".to_owned(), "0".to_owned());
    w.finish(summary).unwrap();
}

#[test]
fn round_trip_events_and_arrays() {
    let dir = tempfile::tempdir().unwrap();
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let path = dir.path().join(format!("{encoding:?}.mcap"));
        write(&path, encoding);
        let events: Vec<_> = RecordingReader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut expected = vec![RecordingEvent::Metadata {
            name: HEADER_RECORD.into(),
            entries: header(encoding).to_metadata(),
        }];
        for (s, a) in frames() {
            expected.push(RecordingEvent::State(s));
            expected.push(RecordingEvent::Action(a));
        }
        let mut summary = BTreeMap::new();
        summary.insert("rejected".to_owned(), "0".to_owned());
        expected.push(RecordingEvent::Metadata {
            name: SUMMARY_RECORD.into(),
            entries: summary,
        });
        assert_eq!(events, expected, "{encoding:?}");

        let ds = load(&path).unwrap();
        assert_eq!(ds.header, header(encoding));
        assert_eq!(ds.robot, robot());
        assert_eq!(ds.states.shape(), &[N as usize, T as usize, DIM]);
        assert_eq!(ds.actions.shape(), &[N as usize, T as usize, ADIM]);
        for (s, a) in frames() {
            let (e, t) = (s.episode as usize, (s.seq % u64::from(T)) as usize);
            let row: Vec<f32> = ds.states.index_axis(ndarray::Axis(0), e).row(t).to_vec();
            assert_eq!(row, s.state);
            let row: Vec<f32> = ds.actions.index_axis(ndarray::Axis(0), e).row(t).to_vec();
            assert_eq!(row, a.action);
        }
        assert_eq!(ds.train_ids(), &[0, 2]);
        assert_eq!(ds.test_ids(), &[1]);
    }
}

#[test]
fn json_recording_carries_schemas() {
    let mut w = RecordingWriter::new(Cursor::new(Vec::new()), &header(Encoding::Json)).unwrap();
    w.write_state(&frames()[0].0).unwrap();
    let bytes = w.finish(BTreeMap::new()).unwrap().into_inner();
    let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
    let encodings: Vec<_> = summary
        .schemas
        .values()
        .map(|s| s.encoding.clone())
        .collect();
    assert_eq!(encodings, ["jsonschema", "jsonschema"]);
    let topics: Vec<_> = summary.channels.values().map(|c| c.topic.clone()).collect();
    assert!(topics.contains(&"ebm/sim/state".to_owned()), "{topics:?}");
}

#[test]
fn truncated_recording_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.mcap");
    write(&path, Encoding::Bincode);
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 40, bytes.len() - 1, 20] {
        let cut = dir.path().join("cut.mcap");
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let err = load(&cut).unwrap_err();
        let text = format!("{err}");
        assert!(
            matches!(
                err,
                MsgsError::Truncated { .. } | MsgsError::MissingFrames { .. }
            ),
            "keep {keep}: {text}"
        );
        assert!(text.contains("truncated"), "keep {keep}: {text}");
    }
}

#[test]
fn corrupt_recording_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.mcap");
    write(&path, Encoding::Json);
    let bytes = std::fs::read(&path).unwrap();
    // Inside the first chunk (after the header and schema records).
    let mut bad = bytes.clone();
    let mid = bytes.len() / 3;
    for b in &mut bad[mid..mid + 8] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.mcap");
    std::fs::write(&corrupt, &bad).unwrap();
    let err = load(&corrupt).unwrap_err();
    assert!(format!("{err}").contains("corrupt"), "{err}");
    // Not an MCAP file at all.
    std::fs::write(&corrupt, b"hello, this is not a recording").unwrap();
    let err = load(&corrupt).unwrap_err();
    assert!(matches!(err, MsgsError::Corrupt { .. }), "{err}");
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    assert_eq!(source.as_deref(), Some("Bad magic number"));
}

#[test]
fn writer_refuses_vectors_of_another_size_and_headers_without_a_robot() {
    let mut w = RecordingWriter::new(Cursor::new(Vec::new()), &header(Encoding::Bincode)).unwrap();
    let (mut s, mut a) = frames()[0].clone();
    s.state.push(0.0);
    let err = w.write_state(&s).unwrap_err().to_string();
    assert!(err.contains("state has 6 values, expected 5"), "{err}");
    a.action.pop();
    let err = w.write_action(&a).unwrap_err().to_string();
    assert!(err.contains("action has 1 values, expected 2"), "{err}");
    let mut h = header(Encoding::Bincode);
    h.robot = None;
    assert!(RecordingWriter::new(Cursor::new(Vec::new()), &h).is_err());
}

#[test]
fn header_describes_the_robot_and_bad_descriptions_are_named() {
    let m = header(Encoding::Json).to_metadata();
    assert_eq!(m["state_dim"], "5");
    assert_eq!(m["state_names"], r#"["j0","j1","j2","box.x","box.y"]"#);
    assert_eq!(
        RecordingHeader::from_metadata(&m).unwrap(),
        header(Encoding::Json)
    );
    let mut bad = m.clone();
    bad.insert("state_names".into(), r#"["a","b"]"#.into());
    let err = RecordingHeader::from_metadata(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state_names") && err.contains("2 entries for 5"),
        "{err}"
    );
    let mut bad = m.clone();
    bad.remove("action_dim");
    let err = RecordingHeader::from_metadata(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("action_dim"), "{err}");
}

/// A recording of the first format (no robot in the header, as the hand
/// simulator wrote them before): sizes come from its messages.
#[test]
fn version_1_recordings_load_with_sizes_from_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.mcap");
    let mut meta = header(Encoding::Bincode).to_metadata();
    meta.retain(|k, _| {
        !k.contains("dim") && !k.contains("names") && !k.contains("units") && k != "robot_kind"
    });
    meta.insert("format_version".into(), "1".into());
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut w = mcap::WriteOptions::new().profile("").create(file).unwrap();
    w.write_metadata(&mcap::records::Metadata {
        name: HEADER_RECORD.into(),
        metadata: meta,
    })
    .unwrap();
    let no_meta = BTreeMap::new();
    let sc = w
        .add_channel(0, "ebm/sim/state", "ebm-bincode2", &no_meta)
        .unwrap();
    let ac = w
        .add_channel(0, "ebm/sim/action", "ebm-bincode2", &no_meta)
        .unwrap();
    for (s, a) in frames() {
        for (ch, data) in [
            (sc, crate::encode(&s, Encoding::Bincode).unwrap()),
            (ac, crate::encode(&a, Encoding::Bincode).unwrap()),
        ] {
            let h = mcap::records::MessageHeader {
                channel_id: ch,
                sequence: s.seq as u32,
                log_time: s.stamp_ns,
                publish_time: s.stamp_ns,
            };
            w.write_to_known_channel(&h, &data).unwrap();
        }
    }
    w.finish().unwrap();
    drop(w);
    let ds = load(&path).unwrap();
    assert_eq!(ds.header.robot, None);
    assert_eq!(ds.robot, RobotSpec::unnamed("unknown", DIM, ADIM));
    assert_eq!(ds.states.shape(), &[N as usize, T as usize, DIM]);
    assert_eq!(ds.states[[2, 3, 4]], frames()[11].0.state[4]);
}

#[test]
fn a_robot_without_actions_records_states_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("states.mcap");
    let mut h = header(Encoding::Bincode);
    h.robot = Some(RobotSpec::unnamed("sensor", DIM, 0));
    let mut w = RecordingWriter::create(&path, &h).unwrap();
    for (s, a) in frames() {
        w.write_state(&s).unwrap();
        assert!(w.write_action(&a).is_err());
    }
    w.finish(BTreeMap::new()).unwrap();
    let ds = load(&path).unwrap();
    assert_eq!(ds.actions.shape(), &[N as usize, T as usize, 0]);
    assert_eq!(ds.states.shape(), &[N as usize, T as usize, DIM]);
}

#[test]
fn conversion_keeps_every_event_in_the_other_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let events = |p: &Path| -> Vec<RecordingEvent> {
        RecordingReader::open(p)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (from, to) in [
        (Encoding::Json, Encoding::Bincode),
        (Encoding::Bincode, Encoding::Json),
    ] {
        let input = dir.path().join(format!("in-{from:?}.mcap"));
        let output = dir.path().join(format!("out-{to:?}.mcap"));
        write(&input, from);
        let n = convert(&input, &output, to).unwrap();
        assert_eq!((n.states, n.actions), (N * u64::from(T), N * u64::from(T)));
        let (mut a, b) = (events(&input), events(&output));
        // The same events, but the header names the new encoding.
        a[0] = RecordingEvent::Metadata {
            name: HEADER_RECORD.into(),
            entries: header(to).to_metadata(),
        };
        assert_eq!(a, b, "{from:?} -> {to:?}");
        assert_eq!(load(&output).unwrap().header.encoding, to);
    }
    // A file that is not a recording: a clear error, and no output left.
    let junk = dir.path().join("junk.mcap");
    std::fs::write(&junk, b"not an mcap file").unwrap();
    let out = dir.path().join("never.mcap");
    assert!(convert(&junk, &out, Encoding::Bincode).is_err());
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
}
