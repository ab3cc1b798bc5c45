//! rmw_zenoh's wire format (the released rmw_zenoh_cpp of Humble 0.1.9,
//! Jazzy 0.2.10, Kilted 0.6.7, Rolling 0.12; zenoh-c 1.x):
//!
//! - data key `<domain>/<topic without leading and trailing '/'>/<pkg>::msg::dds_::<Type>_/<type hash>`;
//! - payload: CDR with its 4-byte encapsulation header;
//! - attachment (required, 33 bytes): sequence number (i64 LE), source
//!   timestamp (i64 LE, ns since the UNIX epoch), GID length 16 (one LEB128
//!   byte) and 16 GID bytes: zenoh-ext's serialisation of `(i64, i64, [u8; 16])`;
//! - liveliness tokens for discovery: `@ros2_lv/<domain>/<zid>/<node id>/<entity id>/<kind>/<enclave>/<namespace>/<node>[/<topic>/<type>/<hash>/<qos>]`,
//!   every `/` inside a chunk written `%`.
//!
//! Type hashes: RIHS01 (Iron and later; the same for Jazzy, Kilted and
//! Rolling) or `TypeHashNotSupported` (Humble). To support another
//! distribution, add its hashes to [`type_hash`] (they are printed by
//! `ros2 topic info -v`, or computed by `rosbags`' `hash_rihs01`; the
//! fixture `tests/fixtures/ros2/type_hashes.json` is checked against this
//! table).

use ebm_msgs::ros2::{DiagnosticArray, JointState, JointTrajectory, Ros2Message};

/// Which type hashes a ROS 2 distribution's rmw_zenoh puts in its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    /// Iron, Jazzy, Kilted, Rolling: RIHS01 hashes.
    Rihs01,
    /// Humble: no type hashes.
    Humble,
}

impl Distro {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "jazzy" | "kilted" | "rolling" | "iron" => Some(Self::Rihs01),
            "humble" => Some(Self::Humble),
            _ => None,
        }
    }
}

/// The distributions [`Distro::parse`] knows.
pub const DISTROS: &str = "humble, iron, jazzy, kilted, rolling";

/// Humble's type hash.
pub const NO_TYPE_HASH: &str = "TypeHashNotSupported";

/// The RIHS01 hashes of the types the bridge reads and writes.
const RIHS01: [(&str, &str); 4] = [
    (
        "sensor_msgs/msg/JointState",
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
    ),
    (
        "trajectory_msgs/msg/JointTrajectory",
        "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e",
    ),
    (
        "diagnostic_msgs/msg/DiagnosticArray",
        "RIHS01_5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
    ),
    (
        "std_msgs/msg/Float64MultiArray",
        "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f",
    ),
];

/// The type hash `distro` keys `type_name` with (`None`: not in the table).
pub fn type_hash(type_name: &str, distro: Distro) -> Option<&'static str> {
    match distro {
        Distro::Humble => Some(NO_TYPE_HASH),
        Distro::Rihs01 => RIHS01
            .iter()
            .find(|(t, _)| *t == type_name)
            .map(|(_, h)| *h),
    }
}

/// `sensor_msgs/msg/JointState` -> `sensor_msgs::msg::dds_::JointState_`.
pub fn dds_type_name(type_name: &str) -> String {
    let mut parts = type_name.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(pkg), Some(kind), Some(name)) => format!("{pkg}::{kind}::dds_::{name}_"),
        _ => type_name.to_owned(),
    }
}

/// A topic's data key; `hash` `*` matches every distribution's.
pub fn data_key(domain: u32, topic: &str, type_name: &str, hash: &str) -> String {
    format!(
        "{domain}/{}/{}/{hash}",
        topic.trim_matches('/'),
        dds_type_name(type_name)
    )
}

/// A chunk of a liveliness token: `/` written `%` (`/` alone is `%`).
pub fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// QoS of the bridge's topics as rmw_zenoh writes it in tokens: reliable,
/// volatile, keep last `depth`, no deadline, lifespan or liveliness lease
/// (rmw_zenoh's defaults are written as empty fields).
pub fn qos(depth: u32) -> String {
    format!("::,{depth}:,:,:,,")
}

/// What an entity token declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Publisher,
    Subscription,
}

/// A ROS node of this session, as liveliness tokens name it (namespace and
/// enclave `/`).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub domain: u32,
    /// This session's zenoh id (`Session::zid()` as a string).
    pub zid: &'a str,
    pub id: u32,
    pub name: &'a str,
}

impl Node<'_> {
    /// The node's own token.
    pub fn token(&self) -> String {
        let Node {
            domain,
            zid,
            id,
            name,
        } = self;
        format!("@ros2_lv/{domain}/{zid}/{id}/{id}/NN/%/%/{name}")
    }

    /// The token of one of its publishers or subscriptions.
    pub fn entity_token(
        &self,
        entity_id: u32,
        kind: Entity,
        topic: &str,
        type_name: &str,
        hash: &str,
    ) -> String {
        let k = match kind {
            Entity::Publisher => "MP",
            Entity::Subscription => "MS",
        };
        format!(
            "@ros2_lv/{}/{}/{}/{entity_id}/{k}/%/%/{}/{}/{}/{hash}/{}",
            self.domain,
            self.zid,
            self.id,
            self.name,
            mangle(topic),
            dds_type_name(type_name),
            qos(10)
        )
    }
}

/// The attachment rmw_zenoh requires on every sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub sequence: i64,
    pub source_timestamp_ns: i64,
    pub gid: [u8; 16],
}

/// Its size on the wire.
pub const ATTACHMENT_BYTES: usize = 33;

impl Attachment {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ATTACHMENT_BYTES);
        b.extend_from_slice(&self.sequence.to_le_bytes());
        b.extend_from_slice(&self.source_timestamp_ns.to_le_bytes());
        b.push(16);
        b.extend_from_slice(&self.gid);
        b
    }

    /// Reads the current format (trailing bytes ignored, as rmw_zenoh does);
    /// `None` for anything else (no attachment, too short, another GID length,
    /// the keyed format of early releases).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < ATTACHMENT_BYTES || bytes[16] != 16 {
            return None;
        }
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[i..i + 8]);
            i64::from_le_bytes(a)
        };
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&bytes[17..33]);
        Some(Self {
            sequence: i64_at(0),
            source_timestamp_ns: i64_at(8),
            gid,
        })
    }
}

/// A stable 16-byte GID for an entity, from its token (rmw_zenoh hashes the
/// token too; subscribers only use the GID to tell publishers apart).
pub fn gid_of(token: &str) -> [u8; 16] {
    // FNV-1a, 64 bits, over the token and over it reversed.
    let fnv = |bytes: &mut dyn Iterator<Item = u8>| {
        bytes.fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut gid = [0u8; 16];
    gid[..8].copy_from_slice(&fnv(&mut token.bytes()).to_le_bytes());
    gid[8..].copy_from_slice(&fnv(&mut token.bytes().rev()).to_le_bytes());
    gid
}

/// The types the bridge uses, for the table test.
pub const BRIDGE_TYPES: [&str; 3] = [
    JointState::TYPE_NAME,
    JointTrajectory::TYPE_NAME,
    DiagnosticArray::TYPE_NAME,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_tokens_are_spelled_as_rmw_zenoh_spells_them() {
        let h = type_hash(JointState::TYPE_NAME, Distro::Rihs01).unwrap();
        assert_eq!(
            data_key(0, "/robot1/joint_states", JointState::TYPE_NAME, h),
            "0/robot1/joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
        );
        assert_eq!(qos(10), "::,10:,:,:,,");
        let node = |domain| Node {
            domain,
            zid: "ab12",
            id: 0,
            name: "ebm_runtime",
        };
        assert_eq!(node(3).token(), "@ros2_lv/3/ab12/0/0/NN/%/%/ebm_runtime");
        let t = node(0).entity_token(
            2,
            Entity::Publisher,
            "/arm/forecast",
            JointTrajectory::TYPE_NAME,
            NO_TYPE_HASH,
        );
        assert_eq!(
            t,
            "@ros2_lv/0/ab12/0/2/MP/%/%/ebm_runtime/%arm%forecast/trajectory_msgs::msg::dds_::JointTrajectory_/TypeHashNotSupported/::,10:,:,:,,"
        );
    }

    #[test]
    fn attachment_is_zenoh_ext_serialisation_of_seq_stamp_gid() {
        let a = Attachment {
            sequence: 1,
            source_timestamp_ns: 0x0102_0304_0506_0708,
            gid: [7; 16],
        };
        let b = a.to_bytes();
        assert_eq!(b.len(), ATTACHMENT_BYTES);
        assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(b[16], 16);
        assert_eq!(Attachment::parse(&b), Some(a));
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(Attachment::parse(&longer), Some(a));
        assert_eq!(Attachment::parse(&b[..32]), None);
        let mut other_len = b;
        other_len[16] = 24;
        assert_eq!(Attachment::parse(&other_len), None);
        assert_ne!(gid_of("a/b"), gid_of("a/c"));
    }

    /// The table against the hashes `rosbags` computed (fixture made by
    /// `sim-data/ros2/make_fixtures.py`).
    #[test]
    fn type_hashes_match_the_independent_computation() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/ros2/type_hashes.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (t, h) in RIHS01 {
            assert_eq!(v["rihs01"][t].as_str(), Some(h), "{t}");
        }
        for t in BRIDGE_TYPES {
            assert!(type_hash(t, Distro::Rihs01).is_some(), "{t}");
        }
    }
}
