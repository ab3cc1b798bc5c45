//! Replay over real Zenoh sessions on loopback: every state arrives, in order.
//!
//! Hermetic: multicast and gossip scouting off, the subscriber listens on
//! 127.0.0.1 at a free port, the replayer connects to it explicitly, and every
//! await is under a timeout.

use std::time::Duration;

use anyhow::{Context, Result};
use ebm_msgs::recording::load;
use ebm_msgs::{decode, Encoding, KeySpace, RobotId, RobotState};
use ebm_runtime::transport::{loopback, open};
use ebm_sim_data::generate::{generate, GenerateOptions};
use ebm_sim_data::SimConfig;
use ebm_tools::replay::{replay, Pace, ReplayOptions};
use indicatif::ProgressBar;
use tokio::time::timeout;

const N: u64 = 3;
const T: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_delivers_every_state_in_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("replay.mcap");
    let opts = GenerateOptions {
        trajectories: N,
        steps: T,
        seed: 21,
        encoding: Encoding::Bincode,
        robot_id: RobotId::new("hand-7")?,
        batch: 4,
    };
    generate(&SimConfig::default(), &opts, &path, &ProgressBar::hidden())?;
    let expected = load(&path)?;

    let endpoint = ebm_runtime::transport::free_loopback_endpoint()?;
    let wait = Duration::from_secs(20);
    let sub_session = timeout(wait, open(&loopback(vec![endpoint.clone()], vec![])))
        .await
        .context("subscriber session timed out")??;
    let keys = KeySpace::default();
    let subscriber = timeout(wait, sub_session.declare_subscriber(keys.all_states()))
        .await
        .context("declaring the subscriber timed out")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pub_session = timeout(wait, open(&loopback(vec![], vec![endpoint])))
        .await
        .context("publisher session timed out")??;

    for encoding in [Encoding::Bincode, Encoding::Json] {
        let replay_opts = ReplayOptions {
            pace: Pace::AsFastAsPossible,
            encoding,
            keys: keys.clone(),
            wait_for_subscriber: Some(Duration::from_secs(10)),
            episodes: None,
        };
        let report = timeout(wait, replay(&pub_session, &path, &replay_opts))
            .await
            .context("replay timed out")??;
        assert_eq!(report.published, N * u64::from(T));
        assert_eq!(report.robots, 1);

        let mut received: Vec<RobotState> = Vec::new();
        while received.len() < (N * u64::from(T)) as usize {
            let sample = timeout(Duration::from_secs(10), subscriber.recv_async())
                .await
                .with_context(|| format!("only {} states arrived", received.len()))?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert_eq!(sample.key_expr().as_str(), "ebm/hand-7/state");
            let mime = sample.encoding().to_string();
            assert_eq!(Encoding::from_mime(&mime)?, encoding, "{mime}");
            received.push(decode(&sample.payload().to_bytes(), encoding)?);
        }
        for (k, s) in received.iter().enumerate() {
            let (e, t) = (k as u64 / u64::from(T), k as u64 % u64::from(T));
            assert_eq!(
                (s.episode, s.seq),
                (e, e * u64::from(T) + t),
                "order at {k}"
            );
            let row = expected
                .states
                .index_axis(ebm_msgs::ndarray::Axis(0), e as usize);
            let row = row.index_axis(ebm_msgs::ndarray::Axis(0), t as usize);
            assert_eq!(row.as_slice(), Some(&s.state[..]));
            match (&s.last_action, t) {
                (None, 0) => {}
                (Some(a), t) if t > 0 => {
                    let prev = expected
                        .actions
                        .index_axis(ebm_msgs::ndarray::Axis(0), e as usize);
                    let prev = prev.index_axis(ebm_msgs::ndarray::Axis(0), t as usize - 1);
                    assert_eq!(prev.as_slice(), Some(&a[..]));
                }
                other => panic!("last_action at step {t}: {other:?}"),
            }
        }
    }
    timeout(wait, pub_session.close())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    timeout(wait, sub_session.close())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
