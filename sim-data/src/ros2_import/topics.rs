//! One bag topic's messages as samples: decoded from CDR, joints picked by
//! name in a fixed order, timed by header stamp (or log time), appended to
//! a [`Series`].

use ebm_msgs::ros2::{
    decode_cdr, Float64MultiArray, JointState, JointTrajectory, Ros2Message, Time,
};

use super::resample::Series;
use crate::SimError;

/// A `sensor_msgs/msg/JointState` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointField {
    Position,
    Velocity,
    Effort,
}

impl JointField {
    pub fn name(self) -> &'static str {
        match self {
            Self::Position => "position",
            Self::Velocity => "velocity",
            Self::Effort => "effort",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Position, Self::Velocity, Self::Effort]
            .into_iter()
            .find(|f| f.name() == s)
    }

    fn of(self, js: &JointState) -> &[f64] {
        match self {
            Self::Position => &js.position,
            Self::Velocity => &js.velocity,
            Self::Effort => &js.effort,
        }
    }
}

/// Where a sample's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The header stamp; the log time for messages stamped zero and for
    /// types without a header.
    Header,
    /// The time the recorder received the message.
    Log,
}

/// What a topic is read for: the state, or the action applied at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    State,
    Action,
}

pub const STATE_TYPES: &str = "sensor_msgs/msg/JointState";
pub const ACTION_TYPES: &str = "sensor_msgs/msg/JointState, std_msgs/msg/Float64MultiArray, trajectory_msgs/msg/JointTrajectory";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    JointState,
    MultiArray,
    Trajectory,
}

/// Reads one topic into a series.
pub struct TopicReader {
    pub topic: String,
    kind: Kind,
    role: Role,
    fields: Vec<JointField>,
    clock: Clock,
    /// `--joints`, if given.
    requested: Option<Vec<String>>,
    /// The joint order, fixed by the first message.
    joints: Option<Vec<String>>,
    /// The last message's names and where each joint sits in them.
    last_names: Vec<String>,
    last_index: Vec<usize>,
    values: Vec<f64>,
    /// Merging joint states of several publishers (`--merge-publishers`):
    /// each joint's latest value per field, `None` until first seen.
    merge: bool,
    held: Vec<Option<f64>>,
    pub series: Option<Series>,
    pub messages: u64,
    pub non_finite: u64,
    pub empty_trajectories: u64,
    pub log_time_fallbacks: u64,
}

impl TopicReader {
    /// A reader of `topic` (of ROS type `type_name`) in `role`; a state
    /// topic reads `fields`, an action topic positions (or the array's data).
    pub fn new(
        topic: &str,
        type_name: &str,
        role: Role,
        fields: &[JointField],
        requested: Option<&[String]>,
        clock: Clock,
    ) -> Result<Self, SimError> {
        let kind = match (role, type_name) {
            (_, JointState::TYPE_NAME) => Kind::JointState,
            (Role::Action, Float64MultiArray::TYPE_NAME) => Kind::MultiArray,
            (Role::Action, JointTrajectory::TYPE_NAME) => Kind::Trajectory,
            _ => {
                let (role, supported) = match role {
                    Role::State => ("read as the state", STATE_TYPES),
                    Role::Action => ("read as the action", ACTION_TYPES),
                };
                return Err(SimError::UnsupportedType {
                    topic: topic.to_owned(),
                    type_name: type_name.to_owned(),
                    role,
                    supported,
                });
            }
        };
        Ok(Self {
            topic: topic.to_owned(),
            kind,
            role,
            fields: match (role, kind) {
                (Role::State, _) => fields.to_vec(),
                _ => vec![JointField::Position],
            },
            clock,
            requested: requested.map(<[String]>::to_vec),
            joints: None,
            last_names: Vec::new(),
            last_index: Vec::new(),
            values: Vec::new(),
            merge: false,
            held: Vec::new(),
            series: None,
            messages: 0,
            non_finite: 0,
            empty_trajectories: 0,
            log_time_fallbacks: 0,
        })
    }

    /// The names of the series' dimensions (`elbow.position`, or
    /// `<topic>[i]` for an array), once the first message has been read.
    pub fn dim_names(&self) -> Vec<String> {
        match (&self.joints, &self.series) {
            (Some(joints), _) => self
                .fields
                .iter()
                .flat_map(|f| joints.iter().map(move |j| format!("{j}.{}", f.name())))
                .collect(),
            (None, Some(s)) => (0..s.width())
                .map(|i| format!("{}[{i}]", self.topic))
                .collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Merges the joint states of several publishers on a state topic: each
    /// message updates the `--joints` it names and a row is kept once every
    /// joint has a value (the others held from their latest message).
    pub fn merging(mut self, on: bool) -> Self {
        self.merge = on && self.role == Role::State && self.kind == Kind::JointState;
        self
    }

    /// Joints (of `--joints`) no message has named, when merging.
    pub fn never_seen(&self) -> Vec<String> {
        let joints = self.requested.as_deref().unwrap_or_default();
        let n = joints.len();
        joints
            .iter()
            .enumerate()
            .filter(|&(j, _)| {
                (0..self.fields.len()).all(|k| self.held.get(k * n + j).is_none_or(Option::is_none))
            })
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// One merged message: `false` while some joint has no value yet (or
    /// the message names none of them).
    fn merge_into_row(&mut self, index: u64, js: &JointState) -> Result<bool, SimError> {
        let joints = self.requested.clone().unwrap_or_default();
        self.joints.get_or_insert_with(|| joints.clone());
        let n = joints.len();
        if self.held.len() != self.fields.len() * n {
            self.held = vec![None; self.fields.len() * n];
        }
        let mut named = false;
        for (k, f) in self.fields.clone().into_iter().enumerate() {
            let all = f.of(js);
            self.check_len(index, f.name(), all.len(), js.name.len())?;
            for (i, name) in js.name.iter().enumerate() {
                if let Some(j) = joints.iter().position(|x| x == name) {
                    self.held[k * n + j] = Some(all[i]);
                    named = true;
                }
            }
        }
        match self.held.iter().copied().collect::<Option<Vec<f64>>>() {
            Some(row) if named => {
                self.values = row;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Reads message `self.messages` of the topic.
    pub fn push(&mut self, log_time_ns: u64, data: &[u8]) -> Result<(), SimError> {
        let index = self.messages;
        self.messages += 1;
        let decode_error = |source| SimError::RosDecode {
            topic: self.topic.clone(),
            index,
            source,
        };
        let t = match self.kind {
            Kind::JointState if self.merge => {
                let js: JointState = decode_cdr(data).map_err(decode_error)?;
                if !self.merge_into_row(index, &js)? {
                    return Ok(());
                }
                self.time(js.header.stamp, log_time_ns)
            }
            Kind::JointState => {
                let js: JointState = decode_cdr(data).map_err(decode_error)?;
                self.pick(index, &js.name)?;
                self.values.clear();
                for f in self.fields.clone() {
                    let all = f.of(&js);
                    self.check_len(index, f.name(), all.len(), js.name.len())?;
                    self.values.extend(self.last_index.iter().map(|&i| all[i]));
                }
                self.time(js.header.stamp, log_time_ns)
            }
            Kind::Trajectory => {
                let jt: JointTrajectory = decode_cdr(data).map_err(decode_error)?;
                let Some(first) = jt.points.first() else {
                    self.empty_trajectories += 1;
                    return Ok(());
                };
                self.pick(index, &jt.joint_names)?;
                let n = jt.joint_names.len();
                self.check_len(index, "points[0].positions", first.positions.len(), n)?;
                self.values.clear();
                self.values
                    .extend(self.last_index.iter().map(|&i| first.positions[i]));
                self.time(jt.header.stamp, log_time_ns)
            }
            Kind::MultiArray => {
                let a: Float64MultiArray = decode_cdr(data).map_err(decode_error)?;
                let width = self.series.as_ref().map_or(a.data.len(), Series::width);
                self.check_len(index, "data", a.data.len(), width)?;
                self.values.clear();
                self.values.extend_from_slice(&a.data);
                log_time_ns
            }
        };
        if self.values.iter().any(|v| !v.is_finite()) {
            self.non_finite += 1;
            return Ok(());
        }
        let width = self.values.len();
        self.series
            .get_or_insert_with(|| Series::new(width))
            .push(t, &self.values);
        Ok(())
    }

    fn time(&mut self, stamp: Time, log_time_ns: u64) -> u64 {
        match (self.clock, stamp.to_ns()) {
            (Clock::Header, Some(ns)) if ns > 0 => ns,
            (Clock::Header, _) => {
                self.log_time_fallbacks += 1;
                log_time_ns
            }
            (Clock::Log, _) => log_time_ns,
        }
    }

    fn check_len(
        &self,
        index: u64,
        field: &'static str,
        found: usize,
        expected: usize,
    ) -> Result<(), SimError> {
        if found == expected {
            Ok(())
        } else {
            Err(SimError::FieldLength {
                topic: self.topic.clone(),
                index,
                field,
                found,
                expected,
            })
        }
    }

    /// Fixes the joint order on the first message, then finds each joint in
    /// `names` (reusing the last lookup when the names repeat).
    fn pick(&mut self, index: u64, names: &[String]) -> Result<(), SimError> {
        if self.joints.is_none() {
            let joints = match &self.requested {
                None => names.to_vec(),
                // An action topic commands the requested joints it names.
                Some(req) if self.role == Role::Action => {
                    let picked: Vec<String> =
                        req.iter().filter(|j| names.contains(j)).cloned().collect();
                    if picked.is_empty() {
                        return Err(SimError::NoActionJoints {
                            topic: self.topic.clone(),
                            present: names.join(", "),
                        });
                    }
                    picked
                }
                Some(req) => req.clone(),
            };
            self.joints = Some(joints);
        }
        if names == self.last_names.as_slice() {
            return Ok(());
        }
        let joints = self.joints.as_deref().unwrap_or_default();
        let mut index_of = Vec::with_capacity(joints.len());
        for j in joints {
            let Some(i) = names.iter().position(|n| n == j) else {
                return Err(SimError::JointMissing {
                    topic: self.topic.clone(),
                    joint: j.clone(),
                    index,
                    present: names.join(", "),
                });
            };
            index_of.push(i);
        }
        self.last_names = names.to_vec();
        self.last_index = index_of;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ebm_msgs::ros2::{encode_cdr, Header};

    use super::*;

    fn js(stamp_ns: u64, names: &[&str], position: &[f64]) -> Vec<u8> {
        encode_cdr(&JointState {
            header: Header {
                stamp: Time::from_ns(stamp_ns),
                frame_id: String::new(),
            },
            name: names.iter().map(|n| n.to_string()).collect(),
            position: position.to_vec(),
            ..Default::default()
        })
        .unwrap()
    }

    fn reader() -> TopicReader {
        let fields = [JointField::Position];
        TopicReader::new(
            "/js",
            JointState::TYPE_NAME,
            Role::State,
            &fields,
            None,
            Clock::Header,
        )
        .unwrap()
    }

    #[test]
    fn joints_by_name_in_the_first_order_timed_by_stamp_or_log_time() {
        let mut r = reader();
        r.push(5, &js(100, &["a", "b"], &[1.0, 2.0])).unwrap();
        r.push(6, &js(200, &["b", "a"], &[4.0, 3.0])).unwrap();
        r.push(300, &js(0, &["a", "b"], &[5.0, 6.0])).unwrap(); // zero stamp: log time
        r.push(7, &js(400, &["a", "b"], &[f64::NAN, 0.0])).unwrap(); // skipped
        assert_eq!(r.dim_names(), ["a.position", "b.position"]);
        assert_eq!((r.log_time_fallbacks, r.non_finite, r.messages), (1, 1, 4));
        let s = r.series.as_ref().unwrap();
        let mut v = [0.0; 2];
        s.interpolate(200, &mut v);
        assert_eq!(v, [3.0, 4.0]);
        s.interpolate(300, &mut v);
        assert_eq!(v, [5.0, 6.0]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn errors_name_the_joint_field_and_message_index() {
        let mut r = reader();
        r.push(1, &js(1, &["a", "b"], &[1.0, 2.0])).unwrap();
        let e = r
            .push(2, &js(2, &["b", "c"], &[1.0, 2.0]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("joint `a` is missing from /js message 1 (its joints: b, c)"),
            "{e}"
        );
        let e = r
            .push(3, &js(3, &["a", "b"], &[1.0]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/js message 2: `position` has 1 entries, expected 2");
        let e = r.push(4, &[0, 1, 0, 0, 1]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/js message 3 could not be decoded"),
            "{e}"
        );
        let e = TopicReader::new(
            "/t",
            "std_msgs/msg/Float64MultiArray",
            Role::State,
            &[],
            None,
            Clock::Log,
        );
        assert!(e.is_err());
    }

    /// Two publishers on one topic, each naming some joints: merged rows
    /// hold each joint's latest value; none before every joint was seen.
    #[test]
    fn merging_publishers_holds_each_joints_latest_value() {
        let joints: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut r = TopicReader::new(
            "/js",
            JointState::TYPE_NAME,
            Role::State,
            &[JointField::Position],
            Some(&joints),
            Clock::Header,
        )
        .unwrap()
        .merging(true);
        r.push(1, &js(100, &["b", "a"], &[2.0, 1.0])).unwrap();
        assert!(r.series.is_none(), "a row before `c` was seen");
        assert_eq!(r.never_seen(), ["c"]);
        r.push(2, &js(110, &["c"], &[3.0])).unwrap();
        r.push(3, &js(120, &["a", "b"], &[10.0, 20.0])).unwrap();
        r.push(4, &js(125, &["x"], &[9.0])).unwrap(); // names none of them: no row
        assert!(r.never_seen().is_empty());
        let s = r.series.as_ref().unwrap();
        assert_eq!(s.len(), 2);
        let mut v = [0.0; 3];
        s.interpolate(110, &mut v);
        assert_eq!(v, [1.0, 2.0, 3.0]);
        s.interpolate(120, &mut v);
        assert_eq!(v, [10.0, 20.0, 3.0]);
    }
}
