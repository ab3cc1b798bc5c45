//! An in-process daemon on a free loopback port and a client session
//! connected to it: what the demo, the replay evaluation and the benchmark
//! run on (and the integration tests do the same by hand).

use std::time::Duration;

use ebm_msgs::{KeySpace, RobotId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use zenoh::sample::Sample;

use crate::binding::Binding;
use crate::config::RuntimeConfig;
use crate::model::RobotModel;
use crate::transport::{free_loopback_endpoint, loopback, open};
use crate::RuntimeError;

/// A daemon task plus a client session connected to it.
pub struct LocalDaemon {
    pub client: zenoh::Session,
    pub keys: KeySpace,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RuntimeError>>,
}

impl LocalDaemon {
    /// Starts `model` for every robot under `cfg` (its Zenoh endpoints
    /// replaced by a free loopback port) and connects a client.
    pub async fn start(cfg: RuntimeConfig, model: RobotModel) -> Result<Self, RuntimeError> {
        let binding = Binding::everyone(&cfg, model);
        Self::serving(cfg, vec![binding]).await
    }

    /// Starts the daemon on `bindings` (several models, in matching order).
    pub async fn serving(
        mut cfg: RuntimeConfig,
        bindings: Vec<Binding>,
    ) -> Result<Self, RuntimeError> {
        let endpoint = free_loopback_endpoint()?;
        cfg.zenoh = loopback(vec![endpoint.clone()], vec![]);
        let keys = KeySpace::new(&cfg.key_prefix)?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::serve(cfg, bindings, async {
            let _ = rx.await;
        }));
        let client = open(&loopback(vec![], vec![endpoint])).await?;
        Ok(Self {
            client,
            keys,
            stop: Some(tx),
            task,
        })
    }

    /// A publisher of `robot`'s states, once the daemon subscribes (or after 10 s).
    pub async fn state_publisher(
        &self,
        robot: &RobotId,
    ) -> Result<zenoh::pubsub::Publisher<'static>, RuntimeError> {
        let p = self
            .client
            .declare_publisher(self.keys.state(robot))
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .await
            .map_err(RuntimeError::zenoh("declaring a state publisher"))?;
        for _ in 0..500 {
            let matching = p
                .matching_status()
                .await
                .map_err(RuntimeError::zenoh("matching status"))?;
            if matching.matching() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(p)
    }

    /// Every sample on `key` into an unbounded channel (the subscriber lives
    /// as long as the returned handle).
    pub async fn subscribe(
        &self,
        key: String,
    ) -> Result<
        (
            zenoh::pubsub::Subscriber<()>,
            mpsc::UnboundedReceiver<Sample>,
        ),
        RuntimeError,
    > {
        let (tx, rx) = mpsc::unbounded_channel();
        let sub = self
            .client
            .declare_subscriber(key)
            .callback(move |s| {
                let _ = tx.send(s);
            })
            .await
            .map_err(RuntimeError::zenoh("declaring a subscriber"))?;
        Ok((sub, rx))
    }

    /// Stops the daemon and closes the client.
    pub async fn stop(mut self) -> Result<(), RuntimeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.task).await {
            Ok(Ok(r)) => r?,
            Ok(Err(e)) => return Err(RuntimeError::Model(format!("daemon task: {e}"))),
            Err(_) => {
                return Err(RuntimeError::Model(
                    "the daemon did not stop in 30 s".into(),
                ))
            }
        }
        self.client
            .close()
            .await
            .map_err(RuntimeError::zenoh("closing the client"))
    }
}
