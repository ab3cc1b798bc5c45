//! The one place that configures Zenoh for the runtime: an optional zenoh
//! JSON5 file as the base (TLS, authentication, access control), then mode,
//! explicit endpoints, multicast scouting (off by default, so nothing is
//! discovered or reached that was not named) and the largest reassembled
//! message over it. Gossip scouting is always off.

use crate::config::ZenohConfig;
use crate::RuntimeError;

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// The Zenoh configuration of `cfg`.
pub fn zenoh_config(cfg: &ZenohConfig) -> Result<zenoh::Config, RuntimeError> {
    let mut config = match &cfg.config {
        Some(path) => {
            zenoh::Config::from_file(path).map_err(|source| RuntimeError::ZenohConfigFile {
                path: path.clone(),
                source,
            })?
        }
        None => zenoh::Config::default(),
    };
    let entries = [
        ("mode", format!("{:?}", cfg.mode)),
        (
            "scouting/multicast/enabled",
            cfg.multicast_scouting.to_string(),
        ),
        ("scouting/gossip/enabled", "false".to_owned()),
        ("listen/endpoints", json_list(&cfg.listen)),
        ("connect/endpoints", json_list(&cfg.connect)),
        (
            "transport/link/tx/queue/congestion_control/drop/wait_before_drop",
            cfg.drop_wait_us.to_string(),
        ),
        (
            "transport/link/rx/max_message_size",
            cfg.max_message_bytes.to_string(),
        ),
    ];
    for (key, value) in entries {
        config
            .insert_json5(key, &value)
            .map_err(RuntimeError::zenoh("configuring the session"))?;
    }
    Ok(config)
}

/// Opens a session with [`zenoh_config`].
pub async fn open(cfg: &ZenohConfig) -> Result<zenoh::Session, RuntimeError> {
    zenoh::open(zenoh_config(cfg)?)
        .await
        .map_err(RuntimeError::zenoh("opening the session"))
}

/// A loopback endpoint on a free TCP port (tests, the demo, benchmarks),
/// never the same one twice in this process, and below the kernel's
/// ephemeral range (32768-60999 on Linux): an ephemeral port handed out
/// here could be taken by any outgoing connection before the daemon binds
/// it, and two sessions on one port join each other's network.
pub fn free_loopback_endpoint() -> Result<String, RuntimeError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes start at different offsets, so concurrent ones rarely meet.
    let offset = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = BASE + (offset + i) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return Ok(format!("tcp/127.0.0.1:{port}"));
        }
    }
    Err(RuntimeError::Io {
        path: "127.0.0.1".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free TCP port in 20000-31999",
        ),
    })
}

/// A peer config listening on `listen` and connecting to `connect`, scouting off.
pub fn loopback(listen: Vec<String>, connect: Vec<String>) -> ZenohConfig {
    ZenohConfig {
        config: None,
        mode: "peer".into(),
        listen,
        connect,
        multicast_scouting: false,
        // Both ends share this machine's CPUs: a batch that is late because
        // the sending task was not scheduled is no reason to drop an output.
        drop_wait_us: LOOPBACK_DROP_WAIT_US,
        // Clients on this config receive forecasts of up to
        // `ebm_msgs::MAX_MESSAGE_BYTES`.
        max_message_bytes: LOOPBACK_MAX_MESSAGE_BYTES,
    }
}

/// [`loopback`]'s `max_message_bytes`: room for the largest forecast.
pub const LOOPBACK_MAX_MESSAGE_BYTES: usize = 2 * ebm_msgs::MAX_MESSAGE_BYTES;

/// [`loopback`]'s `drop_wait_us`.
pub const LOOPBACK_DROP_WAIT_US: u64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_config_carries_the_settings() {
        let mut cfg = loopback(vec!["tcp/127.0.0.1:7999".into()], vec![]);
        let get = |c: &zenoh::Config, key: &str| c.get_json(key).expect(key);
        let z = zenoh_config(&cfg).unwrap();
        assert_eq!(get(&z, "listen/endpoints"), r#"["tcp/127.0.0.1:7999"]"#);
        assert_eq!(get(&z, "scouting/multicast/enabled"), "false");
        let wait = "transport/link/tx/queue/congestion_control/drop/wait_before_drop";
        assert_eq!(get(&z, wait), LOOPBACK_DROP_WAIT_US.to_string());
        cfg.drop_wait_us = 1_000;
        assert_eq!(get(&zenoh_config(&cfg).unwrap(), wait), "1000");
        assert_eq!(
            get(&z, "transport/link/rx/max_message_size"),
            LOOPBACK_MAX_MESSAGE_BYTES.to_string()
        );
    }

    #[test]
    fn free_endpoints_differ_and_stay_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50)
            .map(|_| {
                let e = free_loopback_endpoint().unwrap();
                e.rsplit(':').next().unwrap().parse().unwrap()
            })
            .collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)));
    }

    #[test]
    fn a_zenoh_file_is_the_base_and_our_keys_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zenoh.json5");
        std::fs::write(
            &file,
            r#"{ mode: "client", listen: { endpoints: ["tcp/127.0.0.1:1"] },
                 transport: { auth: { usrpwd: { user: "robot", password: "secret" } } } }"#,
        )
        .unwrap();
        let mut cfg = loopback(vec!["tcp/127.0.0.1:7999".into()], vec![]);
        cfg.config = Some(file.clone());
        let z = zenoh_config(&cfg).unwrap();
        let get = |key: &str| z.get_json(key).expect(key);
        assert_eq!(get("transport/auth/usrpwd/user"), r#""robot""#);
        assert_eq!(get("mode"), r#""peer""#);
        assert_eq!(get("listen/endpoints"), r#"["tcp/127.0.0.1:7999"]"#);

        std::fs::write(&file, "{ mode: ").unwrap();
        let err = zenoh_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("zenoh.json5"), "{err}");
        cfg.config = Some(dir.path().join("missing.json5"));
        let err = zenoh_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("missing.json5"), "{err}");
    }
}
