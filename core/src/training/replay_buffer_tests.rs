//! The replay buffer's draw mix, FIFO overwrite and u8 quantisation.

use candle_core::{Device, Tensor};

use super::*;

fn buffer(capacity: usize, prob: f64, u8s: bool) -> ReplayBuffer {
    let cfg = ReplayConfig {
        capacity,
        replay_prob: prob,
        init_low: -1.0,
        init_high: 1.0,
        quantize_u8: u8s,
        labels: Default::default(),
    };
    ReplayBuffer::new(cfg, 2, 1).unwrap()
}

/// Pushes rows `[v, -v]` with conditioning `[v]` for each `v`.
fn push(b: &mut ReplayBuffer, values: &[f32]) {
    let x: Vec<f32> = values.iter().flat_map(|&v| [v, -v]).collect();
    let x = Tensor::from_vec(x, (values.len(), 2), &Device::Cpu).unwrap();
    let c = Tensor::from_vec(values.to_vec(), (values.len(), 1), &Device::Cpu).unwrap();
    b.push(&x, Some(&c)).unwrap();
}

fn fresh_cond(n: usize) -> Tensor {
    Tensor::from_vec(vec![9.0f32; n], (n, 1), &Device::Cpu).unwrap()
}

#[test]
fn draws_mix_replay_and_fresh_starts_at_the_configured_rate() {
    let mut b = buffer(100, 0.95, false);
    push(
        &mut b,
        &(0..100).map(|i| i as f32 / 200.0).collect::<Vec<_>>(),
    );
    let mut rng = Rng::new(3);
    // 200 batches of 100 (a batch draws from the buffer once it holds a batch).
    let (mut origin, mut x, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        let s = b
            .draw(100, Some(&fresh_cond(100)), None, &mut rng, &Device::Cpu)
            .unwrap();
        origin.extend(s.origin);
        x.extend(s.x.to_vec2::<f32>().unwrap());
        c.extend(s.cond.unwrap().to_vec2::<f32>().unwrap());
    }
    let n = origin.len();
    let fresh = origin.iter().filter(|o| **o == Origin::Fresh).count();
    // Binomial(20000, 0.05): mean 1000, sd about 31.
    assert!((850..=1150).contains(&fresh), "{fresh} fresh of {n}");
    for ((o, row), cond) in origin.iter().zip(&x).zip(&c) {
        match o {
            // A replayed row is the stored pair with its own conditioning.
            Origin::Replay(i) => {
                let v = *i as f32 / 200.0;
                assert_eq!((row.as_slice(), cond[0]), ([v, -v].as_slice(), v));
            }
            // A fresh row is uniform noise with the fresh conditioning.
            Origin::Fresh => {
                assert!(row.iter().all(|v| (-1.0..1.0).contains(v)) && cond[0] == 9.0);
            }
        }
    }
    // Every stored row is drawn about equally often (uniform over the buffer).
    let mut hits = [0usize; 100];
    for o in &origin {
        if let Origin::Replay(i) = o {
            hits[*i] += 1;
        }
    }
    assert!(hits.iter().all(|&h| (120..=270).contains(&h)), "{hits:?}");
    // Fewer stored rows than the batch: every start is fresh.
    let small = buffer(100, 0.95, false);
    let s = small
        .draw(8, Some(&fresh_cond(8)), None, &mut rng, &Device::Cpu)
        .unwrap();
    assert!(s.origin.iter().all(|o| *o == Origin::Fresh));
}

#[test]
fn a_full_buffer_overwrites_its_oldest_rows_first() {
    let mut b = buffer(4, 1.0, false);
    push(&mut b, &[0.1, 0.2, 0.3]);
    assert_eq!((b.len(), b.head()), (3, 0));
    push(&mut b, &[0.4, 0.5, 0.6]);
    // 0.5 replaced 0.1 (slot 0), 0.6 replaced 0.2 (slot 1); the head is at 0.3.
    assert_eq!((b.len(), b.head()), (4, 2));
    let t = b.to_tensors(&Device::Cpu).unwrap();
    let cond: Vec<f32> = t["replay.cond"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(cond, [0.5, 0.6, 0.3, 0.4]);
    push(&mut b, &[0.7]);
    let t = b.to_tensors(&Device::Cpu).unwrap();
    let cond: Vec<f32> = t["replay.cond"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!((cond, b.head()), (vec![0.5, 0.6, 0.7, 0.4], 3));
}

#[test]
fn u8_storage_keeps_each_value_within_its_bin() {
    let mut b = buffer(8, 1.0, true);
    let values = [-1.0f32, -0.9999, -0.3, 0.0, 0.42, 0.99, 1.0, 3.0];
    push(&mut b, &values);
    let t = b.to_tensors(&Device::Cpu).unwrap();
    let q: Vec<u8> = t["replay.samples"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // 256 bins over [-1, 1): bin = floor((v + 1) / 2 * 256), clamped.
    let bin = |v: f32| {
        ((f64::from(v) + 1.0) / 2.0 * 256.0)
            .floor()
            .clamp(0.0, 255.0) as u8
    };
    assert_eq!((q[0], q[6]), (0, 128)); // -1.0 and 0.0
    assert_eq!((q[12], q[14]), (255, 255)); // 1.0 and beyond land in the top bin
    for (k, v) in values.iter().enumerate() {
        assert_eq!(q[2 * k], bin(*v), "{v}");
    }
    // Read back (dequantised with uniform jitter): within one bin (2/256)
    // of the stored value, for values inside the range.
    let mut rng = Rng::new(5);
    let (mut origin, mut x) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        let s = b
            .draw(8, Some(&fresh_cond(8)), None, &mut rng, &Device::Cpu)
            .unwrap();
        origin.extend(s.origin);
        x.extend(s.x.to_vec2::<f32>().unwrap());
    }
    for (o, row) in origin.iter().zip(&x) {
        let Origin::Replay(i) = o else {
            panic!("all replayed")
        };
        let v = values[*i].clamp(-1.0, 0.999);
        assert!(
            (row[0] - v).abs() <= 2.0 / 256.0 + 1e-6,
            "{v} -> {}",
            row[0]
        );
    }
}

/// With `labels = "data"` (the official code's buffer, images only) a
/// replayed image runs under the batch's label; its image is the stored one.
#[test]
fn data_labels_replace_the_stored_labels_of_replayed_images() {
    let mut b = buffer(10, 1.0, false);
    b.cfg.labels = ReplayLabels::Data;
    push(
        &mut b,
        &(0..10).map(|i| i as f32 / 20.0).collect::<Vec<_>>(),
    );
    let labels = Tensor::from_vec(
        (0..10).map(|i| 100.0 + i as f32).collect(),
        (10, 1),
        &Device::Cpu,
    )
    .unwrap();
    let s = b
        .draw(10, Some(&labels), None, &mut Rng::new(1), &Device::Cpu)
        .unwrap();
    let (x, c) = (
        s.x.to_vec2::<f32>().unwrap(),
        s.cond.unwrap().to_vec2::<f32>().unwrap(),
    );
    for (row, ((o, xr), cr)) in s.origin.iter().zip(&x).zip(&c).enumerate() {
        let Origin::Replay(i) = o else {
            panic!("row {row} is fresh at replay_prob 1")
        };
        let v = *i as f32 / 20.0;
        assert_eq!(
            xr.as_slice(),
            [v, -v].as_slice(),
            "row {row}: the stored image"
        );
        assert_eq!(cr[0], 100.0 + row as f32, "row {row}: the batch's label");
    }
}
