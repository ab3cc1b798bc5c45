//! Property test of the strict codec: random and mutated payloads of every
//! message kind, in bincode and JSON, never panic the decoder, and whatever
//! decodes is a valid message that encodes again and decodes to itself.
//!
//! Bounded for CI: `EBM_FUZZ_ITERS` mutations per kind and encoding
//! (default 20,000); `EBM_FUZZ_SEED` picks another stream.

use std::collections::BTreeMap;
use std::fmt::Debug;

use ebm_msgs::mutate::Mutator;
use ebm_msgs::{
    decode, encode, Action, DaemonStatus, DenoisedState, Encoding, ErrorCode, ErrorReply, Forecast,
    ForecastRequest, Health, Message, OodScore, RobotSpec, RobotState, ServedModel,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fuzzes kind `T` from `samples`; returns the payloads tried and how many decoded.
fn fuzz<T: Message + PartialEq + Debug>(
    samples: &[T],
    iters: u64,
    rng: &mut Mutator,
) -> (u64, u64) {
    let (mut tried, mut accepted) = (0, 0);
    for enc in [Encoding::Bincode, Encoding::Json] {
        let valid: Vec<Vec<u8>> = samples
            .iter()
            .map(|m| encode(m, enc).expect("a sample encodes"))
            .collect();
        for v in &valid {
            assert!(
                decode::<T>(v, enc).is_ok(),
                "{} sample did not round-trip",
                T::KIND
            );
        }
        for _ in 0..iters {
            let base = &valid[rng.below(valid.len())];
            let other = &valid[rng.below(valid.len())];
            let payload = rng.mutate(base, other, enc == Encoding::Json);
            tried += 1;
            if let Ok(m) = decode::<T>(&payload, enc) {
                accepted += 1;
                m.validate().expect("a decoded message is valid");
                let again = encode(&m, enc).expect("a decoded message encodes");
                let back: T = decode(&again, enc).expect("a re-encoded message decodes");
                assert_eq!(back, m, "{} changed in a round trip", T::KIND);
            }
        }
    }
    (tried, accepted)
}

fn state(dim: usize, action: Option<usize>) -> RobotState {
    RobotState {
        robot_id: "arm-1".into(),
        episode: 3,
        seq: 1 << 40,
        stamp_ns: 123_456_789,
        state: (0..dim).map(|i| i as f32 * 0.25 - 1.0).collect(),
        last_action: action.map(|a| vec![0.5; a]),
    }
}

fn forecast(h: u32, p: u32, d: usize) -> Forecast {
    let n = (h * p) as usize * d;
    Forecast {
        robot_id: "fetch-0".into(),
        seq: 9,
        model_id: "m@1".into(),
        horizon: h,
        particles: p,
        trajectories: (0..n).map(|i| i as f32).collect(),
        energies: vec![-1.5; p as usize],
        mean: vec![0.1; h as usize * d],
        spread: vec![0.2; h as usize * d],
        compute_us: 77,
        langevin_steps: 20,
    }
}

#[test]
fn codec_survives_random_and_mutated_payloads_of_every_kind() {
    let iters = env_or("EBM_FUZZ_ITERS", 20_000);
    let mut rng = Mutator::new(env_or("EBM_FUZZ_SEED", 0x5eed_f00d));
    let ood = OodScore {
        robot_id: "r".into(),
        seq: 2,
        model_id: "ood".into(),
        energy: 3.5,
        percentile: 99.5,
        flagged: true,
        window_energy: 1.0,
        window_len: 50,
        window_discrepancy: Some(4.0),
        window_percentile: None,
        window_flagged: false,
        reason: Some("state 7 is 60 training sd from the mean".into()),
    };
    let status = DaemonStatus {
        daemon_id: "d".into(),
        health: Health::Degraded,
        models: vec![ServedModel {
            robots_pattern: "arm-*".into(),
            model_id: "m@1".into(),
            ood_model_id: "a+b".into(),
            ood_percentiles: "checkpoint".into(),
            robot: RobotSpec::unnamed("arm", 3, 2),
            robots: vec!["arm-1".into()],
        }],
        warnings: vec!["untrained".into()],
        uptime_ms: 5,
        robots: 1,
        counters: BTreeMap::from([("states_received".to_string(), 10)]),
    };
    let mut totals = vec![fuzz(
        &[state(3, Some(2)), state(31, None), state(1, Some(20))],
        iters,
        &mut rng,
    )];
    totals.push(fuzz(
        &[Action {
            robot_id: "a".into(),
            episode: 0,
            seq: 1,
            stamp_ns: 2,
            action: vec![1.0, -1.0],
        }],
        iters,
        &mut rng,
    ));
    totals.push(fuzz(
        &[forecast(2, 3, 2), forecast(1, 1, 5)],
        iters,
        &mut rng,
    ));
    totals.push(fuzz(
        &[
            ood.clone(),
            OodScore {
                reason: None,
                ..ood
            },
        ],
        iters,
        &mut rng,
    ));
    totals.push(fuzz(
        &[DenoisedState {
            robot_id: "r".into(),
            seq: 4,
            model_id: "m".into(),
            state: vec![0.0, 1.0, 2.0],
        }],
        iters,
        &mut rng,
    ));
    totals.push(fuzz(
        &[ForecastRequest {
            robot_id: "r".into(),
            horizon: 10,
            particles: 8,
            deadline_ms: Some(50),
        }],
        iters,
        &mut rng,
    ));
    totals.push(fuzz(&[status], iters, &mut rng));
    totals.push(fuzz(
        &[ErrorReply {
            code: ErrorCode::WrongDimensions,
            message: "state has 3 floats, the model 31".into(),
        }],
        iters,
        &mut rng,
    ));
    let tried: u64 = totals.iter().map(|t| t.0).sum();
    let accepted: u64 = totals.iter().map(|t| t.1).sum();
    eprintln!("codec fuzz: {tried} payloads, {accepted} decoded (all valid and stable)");
    // The mutations must reach the decoder's acceptance paths too, not
    // only its first check: some mutants (a changed number) stay valid.
    assert!(
        accepted > 0 && accepted < tried,
        "{accepted} of {tried} decoded"
    );
}
