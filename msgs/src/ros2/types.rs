//! The ROS 2 message types this crate reads and writes, field for field as
//! their `.msg` definitions (Humble to Jazzy: these definitions have not
//! changed), each with its CDR layout.

use super::cdr::{CdrError, CdrReader, CdrWriter};
use super::Ros2Message;

/// `builtin_interfaces/msg/Time`: seconds and nanoseconds since the epoch
/// (or since the start of simulated time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// Nanoseconds, or `None` before 0 (negative seconds).
    pub fn to_ns(self) -> Option<u64> {
        let sec = u64::try_from(self.sec).ok()?;
        Some(sec * 1_000_000_000 + u64::from(self.nanosec))
    }

    /// The time `ns` nanoseconds after 0 (seconds saturate at `i32::MAX`, in 2038).
    pub fn from_ns(ns: u64) -> Self {
        Self {
            sec: i32::try_from(ns / 1_000_000_000).unwrap_or(i32::MAX),
            nanosec: (ns % 1_000_000_000) as u32,
        }
    }

    /// Zero: "no stamp" by ROS convention.
    pub fn is_zero(self) -> bool {
        self.sec == 0 && self.nanosec == 0
    }
}

/// `builtin_interfaces/msg/Duration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Duration {
    pub sec: i32,
    pub nanosec: u32,
}

impl Duration {
    /// Nanoseconds (negative durations have negative seconds and positive nanoseconds).
    pub fn to_ns(self) -> i64 {
        i64::from(self.sec) * 1_000_000_000 + i64::from(self.nanosec)
    }

    /// The duration of `ns` nanoseconds (seconds saturate at the `i32` range).
    pub fn from_ns(ns: i64) -> Self {
        let sec = ns.div_euclid(1_000_000_000);
        Self {
            sec: i32::try_from(sec).unwrap_or(if sec < 0 { i32::MIN } else { i32::MAX }),
            nanosec: ns.rem_euclid(1_000_000_000) as u32,
        }
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `sensor_msgs/msg/JointState`: `position`, `velocity` and `effort` are
/// each empty or one entry per `name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JointState {
    pub header: Header,
    pub name: Vec<String>,
    pub position: Vec<f64>,
    pub velocity: Vec<f64>,
    pub effort: Vec<f64>,
}

/// `std_msgs/msg/MultiArrayDimension`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiArrayDimension {
    pub label: String,
    pub size: u32,
    pub stride: u32,
}

/// `std_msgs/msg/MultiArrayLayout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiArrayLayout {
    pub dim: Vec<MultiArrayDimension>,
    pub data_offset: u32,
}

/// `std_msgs/msg/Float64MultiArray` (what ros2_control's forward command
/// controllers take).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Float64MultiArray {
    pub layout: MultiArrayLayout,
    pub data: Vec<f64>,
}

/// `trajectory_msgs/msg/JointTrajectoryPoint`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JointTrajectoryPoint {
    pub positions: Vec<f64>,
    pub velocities: Vec<f64>,
    pub accelerations: Vec<f64>,
    pub effort: Vec<f64>,
    pub time_from_start: Duration,
}

/// `trajectory_msgs/msg/JointTrajectory`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JointTrajectory {
    pub header: Header,
    pub joint_names: Vec<String>,
    pub points: Vec<JointTrajectoryPoint>,
}

/// `diagnostic_msgs/msg/KeyValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `diagnostic_msgs/msg/DiagnosticStatus`; `level` is one of the constants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticStatus {
    pub level: u8,
    pub name: String,
    pub message: String,
    pub hardware_id: String,
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    pub const OK: u8 = 0;
    pub const WARN: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const STALE: u8 = 3;
}

/// `diagnostic_msgs/msg/DiagnosticArray`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticArray {
    pub header: Header,
    pub status: Vec<DiagnosticStatus>,
}

// Smallest encoded sizes, for bounding counts before allocating.
const DIMENSION_MIN_BYTES: usize = 12;
const POINT_MIN_BYTES: usize = 24;
const KEY_VALUE_MIN_BYTES: usize = 8;
const STATUS_MIN_BYTES: usize = 17;

impl Ros2Message for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            sec: r.read_i32("sec")?,
            nanosec: r.read_u32("nanosec")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
        Ok(())
    }
}

impl Ros2Message for Duration {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Duration";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            sec: r.read_i32("sec")?,
            nanosec: r.read_u32("nanosec")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
        Ok(())
    }
}

impl Ros2Message for Header {
    const TYPE_NAME: &'static str = "std_msgs/msg/Header";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            stamp: r.read_struct("stamp", Time::read_cdr)?,
            frame_id: r.read_string("frame_id")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        self.stamp.write_cdr(w)?;
        w.write_string("frame_id", &self.frame_id)
    }
}

impl Ros2Message for JointState {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/JointState";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            header: r.read_struct("header", Header::read_cdr)?,
            name: r.read_string_seq("name")?,
            position: r.read_f64_seq("position")?,
            velocity: r.read_f64_seq("velocity")?,
            effort: r.read_f64_seq("effort")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        self.header.write_cdr(w).map_err(|e| e.within("header"))?;
        w.write_string_seq("name", &self.name)?;
        w.write_f64_seq("position", &self.position)?;
        w.write_f64_seq("velocity", &self.velocity)?;
        w.write_f64_seq("effort", &self.effort)
    }
}

impl Ros2Message for MultiArrayDimension {
    const TYPE_NAME: &'static str = "std_msgs/msg/MultiArrayDimension";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            label: r.read_string("label")?,
            size: r.read_u32("size")?,
            stride: r.read_u32("stride")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_string("label", &self.label)?;
        w.write_u32(self.size);
        w.write_u32(self.stride);
        Ok(())
    }
}

impl Ros2Message for MultiArrayLayout {
    const TYPE_NAME: &'static str = "std_msgs/msg/MultiArrayLayout";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            dim: r.read_seq("dim", DIMENSION_MIN_BYTES, MultiArrayDimension::read_cdr)?,
            data_offset: r.read_u32("data_offset")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_seq("dim", &self.dim, |w, d| d.write_cdr(w))?;
        w.write_u32(self.data_offset);
        Ok(())
    }
}

impl Ros2Message for Float64MultiArray {
    const TYPE_NAME: &'static str = "std_msgs/msg/Float64MultiArray";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            layout: r.read_struct("layout", MultiArrayLayout::read_cdr)?,
            data: r.read_f64_seq("data")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        self.layout.write_cdr(w).map_err(|e| e.within("layout"))?;
        w.write_f64_seq("data", &self.data)
    }
}

impl Ros2Message for JointTrajectoryPoint {
    const TYPE_NAME: &'static str = "trajectory_msgs/msg/JointTrajectoryPoint";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            positions: r.read_f64_seq("positions")?,
            velocities: r.read_f64_seq("velocities")?,
            accelerations: r.read_f64_seq("accelerations")?,
            effort: r.read_f64_seq("effort")?,
            time_from_start: r.read_struct("time_from_start", Duration::read_cdr)?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_f64_seq("positions", &self.positions)?;
        w.write_f64_seq("velocities", &self.velocities)?;
        w.write_f64_seq("accelerations", &self.accelerations)?;
        w.write_f64_seq("effort", &self.effort)?;
        self.time_from_start.write_cdr(w)
    }
}

impl Ros2Message for JointTrajectory {
    const TYPE_NAME: &'static str = "trajectory_msgs/msg/JointTrajectory";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            header: r.read_struct("header", Header::read_cdr)?,
            joint_names: r.read_string_seq("joint_names")?,
            points: r.read_seq("points", POINT_MIN_BYTES, JointTrajectoryPoint::read_cdr)?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        self.header.write_cdr(w).map_err(|e| e.within("header"))?;
        w.write_string_seq("joint_names", &self.joint_names)?;
        w.write_seq("points", &self.points, |w, p| p.write_cdr(w))
    }
}

impl Ros2Message for KeyValue {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/KeyValue";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            key: r.read_string("key")?,
            value: r.read_string("value")?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_string("key", &self.key)?;
        w.write_string("value", &self.value)
    }
}

impl Ros2Message for DiagnosticStatus {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticStatus";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            level: r.read_u8("level")?,
            name: r.read_string("name")?,
            message: r.read_string("message")?,
            hardware_id: r.read_string("hardware_id")?,
            values: r.read_seq("values", KEY_VALUE_MIN_BYTES, KeyValue::read_cdr)?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        w.write_u8(self.level);
        w.write_string("name", &self.name)?;
        w.write_string("message", &self.message)?;
        w.write_string("hardware_id", &self.hardware_id)?;
        w.write_seq("values", &self.values, |w, kv| kv.write_cdr(w))
    }
}

impl Ros2Message for DiagnosticArray {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticArray";
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(Self {
            header: r.read_struct("header", Header::read_cdr)?,
            status: r.read_seq("status", STATUS_MIN_BYTES, DiagnosticStatus::read_cdr)?,
        })
    }
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError> {
        self.header.write_cdr(w).map_err(|e| e.within("header"))?;
        w.write_seq("status", &self.status, |w, s| s.write_cdr(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_duration_convert_nanoseconds() {
        let t = Time::from_ns(1_700_000_000_123_456_789);
        assert_eq!((t.sec, t.nanosec), (1_700_000_000, 123_456_789));
        assert_eq!(t.to_ns(), Some(1_700_000_000_123_456_789));
        assert_eq!(
            Time {
                sec: -1,
                nanosec: 0
            }
            .to_ns(),
            None
        );
        assert!(Time::default().is_zero() && !t.is_zero());
        let d = Duration::from_ns(-1_500_000_000);
        assert_eq!((d.sec, d.nanosec), (-2, 500_000_000));
        assert_eq!(d.to_ns(), -1_500_000_000);
        assert_eq!(Duration::from_ns(250_000_000).to_ns(), 250_000_000);
    }
}
