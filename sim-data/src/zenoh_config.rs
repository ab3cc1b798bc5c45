//! The one place that configures Zenoh for this crate's tools.
//!
//! Peer mode, multicast and gossip scouting off, explicit loopback (or any
//! given) endpoints: nothing is discovered or reached that was not named.

use crate::SimError;

/// Endpoints of a peer session, e.g. `tcp/127.0.0.1:7447`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub listen: Vec<String>,
    pub connect: Vec<String>,
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// A peer configuration with scouting off and only the given endpoints.
pub fn peer_config(endpoints: &Endpoints) -> Result<zenoh::Config, SimError> {
    let mut config = zenoh::Config::default();
    let entries = [
        ("mode", r#""peer""#.to_owned()),
        ("scouting/multicast/enabled", "false".to_owned()),
        ("scouting/gossip/enabled", "false".to_owned()),
        ("listen/endpoints", json_list(&endpoints.listen)),
        ("connect/endpoints", json_list(&endpoints.connect)),
    ];
    for (key, value) in entries {
        config
            .insert_json5(key, &value)
            .map_err(|source| SimError::Zenoh {
                context: "configuring the session",
                source,
            })?;
    }
    Ok(config)
}

/// Opens a peer session with [`peer_config`].
pub async fn open(endpoints: &Endpoints) -> Result<zenoh::Session, SimError> {
    zenoh::open(peer_config(endpoints)?)
        .await
        .map_err(|source| SimError::Zenoh {
            context: "opening the session",
            source,
        })
}
