//! Between a model's state vector and ROS 2 messages. A model serves a ROS 2
//! robot when each of its state dimensions is named `<joint>.<field>`
//! (`field`: `position`, `velocity` or `effort`), as `ebm-sim import-ros2`
//! names them: a `JointState` fills the state by joint name (any order), and
//! outputs go back as `JointTrajectory` (forecast mean), `JointState`
//! (denoised state) and `DiagnosticArray` (OOD score).

use ebm_msgs::ros2::{
    DiagnosticArray, DiagnosticStatus, Duration, Float64MultiArray, Header, JointState,
    JointTrajectory, JointTrajectoryPoint, KeyValue, Time,
};
use ebm_msgs::OodScore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Position,
    Velocity,
    Effort,
}

/// A model's state dimensions as joints and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JointLayout {
    /// Distinct joints, in the order their first dimension appears.
    pub joints: Vec<String>,
    /// Per state dimension: (joint index, field).
    dims: Vec<(usize, Field)>,
}

impl JointLayout {
    /// From the model's state dimension names; the error says which name
    /// does not have the `<joint>.<field>` form.
    pub fn from_names(names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("the model's state dimensions have no names (a ROS 2 robot's model names them `<joint>.<field>`, as `ebm-sim import-ros2` does)".into());
        }
        let mut joints: Vec<String> = Vec::new();
        let mut dims = Vec::with_capacity(names.len());
        for n in names {
            let (joint, field) = n.rsplit_once('.').ok_or_else(|| {
                format!("state dimension `{n}` is not named `<joint>.<position|velocity|effort>`")
            })?;
            let field = match field {
                "position" => Field::Position,
                "velocity" => Field::Velocity,
                "effort" => Field::Effort,
                _ => {
                    return Err(format!(
                    "state dimension `{n}`: field `{field}` is not position, velocity or effort"
                ))
                }
            };
            let j = match joints.iter().position(|x| x == joint) {
                Some(j) => j,
                None => {
                    joints.push(joint.to_owned());
                    joints.len() - 1
                }
            };
            if dims.contains(&(j, field)) {
                return Err(format!("state dimension `{n}` appears twice"));
            }
            dims.push((j, field));
        }
        Ok(Self { joints, dims })
    }

    /// The state a `JointState` describes; the error names the joint or
    /// field it lacks.
    pub fn state_of(&self, js: &JointState) -> Result<Vec<f32>, String> {
        let index: Vec<Option<usize>> = self
            .joints
            .iter()
            .map(|j| js.name.iter().position(|n| n == j))
            .collect();
        self.dims
            .iter()
            .map(|&(j, field)| {
                let joint = &self.joints[j];
                let i = index[j].ok_or_else(|| {
                    format!(
                        "joint `{joint}` is not in the message (it names {:?})",
                        js.name
                    )
                })?;
                let (values, what) = match field {
                    Field::Position => (&js.position, "position"),
                    Field::Velocity => (&js.velocity, "velocity"),
                    Field::Effort => (&js.effort, "effort"),
                };
                let v = values.get(i).ok_or_else(|| {
                    format!(
                        "the message has {} {what} values for {} joints: no {what} of `{joint}`",
                        values.len(),
                        js.name.len()
                    )
                })?;
                if !v.is_finite() {
                    return Err(format!("{what} of `{joint}` is {v}"));
                }
                Ok(*v as f32)
            })
            .collect()
    }

    /// Values of `field` per joint from one state, if every joint has it.
    fn field_of(&self, state: &[f32], field: Field) -> Vec<f64> {
        let mut out = vec![None; self.joints.len()];
        for (d, &(j, f)) in self.dims.iter().enumerate() {
            if f == field {
                out[j] = state.get(d).map(|&v| f64::from(v));
            }
        }
        out.into_iter()
            .collect::<Option<Vec<f64>>>()
            .unwrap_or_default()
    }

    /// A denoised (or any) state as a `JointState`.
    pub fn joint_state(&self, state: &[f32], stamp: Time, frame: &str) -> JointState {
        JointState {
            header: Header {
                stamp,
                frame_id: frame.to_owned(),
            },
            name: self.joints.clone(),
            position: self.field_of(state, Field::Position),
            velocity: self.field_of(state, Field::Velocity),
            effort: self.field_of(state, Field::Effort),
        }
    }

    /// A forecast's mean (`horizon x D`, row-major) as a trajectory whose
    /// points are `period_s` apart, the first one step ahead.
    pub fn trajectory(
        &self,
        mean: &[f32],
        horizon: usize,
        period_s: f64,
        stamp: Time,
    ) -> JointTrajectory {
        let d = self.dims.len();
        let points = (0..horizon)
            .filter_map(|k| {
                let row = mean.get(k * d..(k + 1) * d)?;
                Some(JointTrajectoryPoint {
                    positions: self.field_of(row, Field::Position),
                    velocities: self.field_of(row, Field::Velocity),
                    accelerations: Vec::new(),
                    effort: self.field_of(row, Field::Effort),
                    time_from_start: Duration::from_ns(
                        ((k + 1) as f64 * period_s * 1e9).round() as i64
                    ),
                })
            })
            .collect();
        JointTrajectory {
            header: Header {
                stamp,
                frame_id: String::new(),
            },
            joint_names: self.joints.clone(),
            points,
        }
    }
}

/// How a model's action is read from a ROS 2 command, by the action
/// dimension names `ebm-sim import-ros2` gives: `<joint>.position` (from a
/// `JointState`'s positions or a `JointTrajectory`'s first point, by joint
/// name) or `<topic>[i]` (a `Float64MultiArray`'s `data[i]`).
#[derive(Debug, Clone, PartialEq)]
pub enum ActionLayout {
    Joints(Vec<String>),
    Array(usize),
}

impl ActionLayout {
    pub fn from_names(names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("the model takes no action".into());
        }
        if let Some(joints) = names
            .iter()
            .map(|n| n.strip_suffix(".position").map(str::to_owned))
            .collect::<Option<Vec<_>>>()
        {
            return Ok(Self::Joints(joints));
        }
        let indexed = names
            .iter()
            .enumerate()
            .all(|(i, n)| n.ends_with(&format!("[{i}]")));
        if indexed {
            return Ok(Self::Array(names.len()));
        }
        Err(format!(
            "the model's action dimensions ({:?}...) are neither `<joint>.position` nor `<topic>[i]`",
            &names[..names.len().min(3)]
        ))
    }

    fn by_joint(
        joints: &[String],
        names: &[String],
        values: &[f64],
        what: &str,
    ) -> Result<Vec<f32>, String> {
        joints
            .iter()
            .map(|j| {
                let i = names.iter().position(|n| n == j).ok_or_else(|| {
                    format!("command joint `{j}` is not in the {what} (it names {names:?})")
                })?;
                let v = values
                    .get(i)
                    .ok_or_else(|| format!("the {what} has no position of `{j}`"))?;
                finite(*v, j)
            })
            .collect()
    }

    pub fn from_joint_state(&self, js: &JointState) -> Result<Vec<f32>, String> {
        match self {
            Self::Joints(joints) => {
                Self::by_joint(joints, &js.name, &js.position, "JointState command")
            }
            Self::Array(_) => {
                Err("the model's action is a Float64MultiArray, the command a JointState".into())
            }
        }
    }

    pub fn from_trajectory(&self, t: &JointTrajectory) -> Result<Vec<f32>, String> {
        let first = t
            .points
            .first()
            .ok_or("the JointTrajectory command has no point")?;
        match self {
            Self::Joints(joints) => Self::by_joint(
                joints,
                &t.joint_names,
                &first.positions,
                "JointTrajectory command",
            ),
            Self::Array(_) => Err(
                "the model's action is a Float64MultiArray, the command a JointTrajectory".into(),
            ),
        }
    }

    pub fn from_array(&self, a: &Float64MultiArray) -> Result<Vec<f32>, String> {
        match self {
            Self::Array(n) if a.data.len() == *n => a
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| finite(v, &format!("data[{i}]")))
                .collect(),
            Self::Array(n) => Err(format!(
                "the command has {} values, the model's action {n}",
                a.data.len()
            )),
            Self::Joints(_) => {
                Err("the model's action is by joint, the command a Float64MultiArray".into())
            }
        }
    }
}

fn finite(v: f64, what: &str) -> Result<f32, String> {
    if v.is_finite() {
        Ok(v as f32)
    } else {
        Err(format!("command `{what}` is {v}"))
    }
}

/// An OOD score as diagnostics: ERROR when the score failed closed (a
/// `reason`) or the window is flagged, WARN when the transition is, else OK.
pub fn diagnostics(ood: &OodScore, stamp: Time, node: &str) -> DiagnosticArray {
    let (level, message) = if let Some(r) = &ood.reason {
        (
            DiagnosticStatus::ERROR,
            format!("out of the model's range: {r}"),
        )
    } else if ood.window_flagged {
        (
            DiagnosticStatus::ERROR,
            format!(
                "the last {} transitions are out of distribution",
                ood.window_len
            ),
        )
    } else if ood.flagged {
        (
            DiagnosticStatus::WARN,
            format!(
                "transition at the {:.1}th percentile of training",
                ood.percentile
            ),
        )
    } else {
        (
            DiagnosticStatus::OK,
            format!("in distribution ({:.1}th percentile)", ood.percentile),
        )
    };
    let opt = |v: Option<f32>| v.map_or_else(String::new, |v| v.to_string());
    let values = [
        ("energy", ood.energy.to_string()),
        ("percentile", ood.percentile.to_string()),
        ("flagged", ood.flagged.to_string()),
        ("window_energy", ood.window_energy.to_string()),
        ("window_len", ood.window_len.to_string()),
        ("window_discrepancy", opt(ood.window_discrepancy)),
        ("window_percentile", opt(ood.window_percentile)),
        ("window_flagged", ood.window_flagged.to_string()),
        ("seq", ood.seq.to_string()),
        ("model", ood.model_id.clone()),
        ("reason", ood.reason.clone().unwrap_or_default()),
    ];
    DiagnosticArray {
        header: Header {
            stamp,
            frame_id: String::new(),
        },
        status: vec![DiagnosticStatus {
            level,
            name: format!("{node}: {} OOD", ood.robot_id),
            message,
            hardware_id: ood.robot_id.clone(),
            values: values
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.to_owned(),
                    value: v,
                })
                .collect(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn states_fill_by_joint_name_and_go_back_out() {
        let l = JointLayout::from_names(&names(&[
            "a.position",
            "b.position",
            "a.velocity",
            "b.velocity",
        ]))
        .unwrap();
        assert_eq!(l.joints, ["a", "b"]);
        let js = JointState {
            name: names(&["b", "x", "a"]),
            position: vec![2.0, 9.0, 1.0],
            velocity: vec![20.0, 90.0, 10.0],
            ..Default::default()
        };
        assert_eq!(l.state_of(&js).unwrap(), [1.0, 2.0, 10.0, 20.0]);
        let back = l.joint_state(&[1.0, 2.0, 10.0, 20.0], Time::default(), "");
        assert_eq!(
            (back.position, back.velocity, back.effort),
            (vec![1.0, 2.0], vec![10.0, 20.0], vec![])
        );

        let missing = JointState {
            name: names(&["a"]),
            position: vec![1.0],
            velocity: vec![1.0],
            ..Default::default()
        };
        assert!(l.state_of(&missing).unwrap_err().contains("joint `b`"));
        let no_velocity = JointState {
            velocity: vec![],
            ..js.clone()
        };
        assert!(l.state_of(&no_velocity).unwrap_err().contains("velocity"));
        let nan = JointState {
            position: vec![f64::NAN, 0.0, 0.0],
            ..js
        };
        assert!(l.state_of(&nan).unwrap_err().contains("position of `b`"));

        assert!(JointLayout::from_names(&names(&["a.pos"])).is_err());
        assert!(JointLayout::from_names(&names(&["joint0"])).is_err());
        assert!(JointLayout::from_names(&names(&["a.position", "a.position"])).is_err());
        assert!(JointLayout::from_names(&[]).is_err());
    }

    #[test]
    fn commands_fill_the_action_by_joint_or_by_index() {
        let by_joint = ActionLayout::from_names(&names(&["a.position", "b.position"])).unwrap();
        let js = JointState {
            name: names(&["b", "a", "c"]),
            position: vec![2.0, 1.0, 3.0],
            ..Default::default()
        };
        assert_eq!(by_joint.from_joint_state(&js).unwrap(), [1.0, 2.0]);
        let t = JointTrajectory {
            joint_names: names(&["b", "a"]),
            points: vec![
                JointTrajectoryPoint {
                    positions: vec![20.0, 10.0],
                    ..Default::default()
                },
                JointTrajectoryPoint {
                    positions: vec![0.0, 0.0],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(by_joint.from_trajectory(&t).unwrap(), [10.0, 20.0]);
        assert!(by_joint
            .from_trajectory(&JointTrajectory::default())
            .is_err());
        assert!(by_joint.from_array(&Float64MultiArray::default()).is_err());
        let missing = JointState {
            name: names(&["a"]),
            position: vec![1.0],
            ..Default::default()
        };
        assert!(by_joint
            .from_joint_state(&missing)
            .unwrap_err()
            .contains("`b`"));

        let array = ActionLayout::from_names(&names(&["/cmd[0]", "/cmd[1]"])).unwrap();
        assert_eq!(array, ActionLayout::Array(2));
        let a = Float64MultiArray {
            data: vec![0.5, -0.5],
            ..Default::default()
        };
        assert_eq!(array.from_array(&a).unwrap(), [0.5, -0.5]);
        assert!(array
            .from_array(&Float64MultiArray {
                data: vec![1.0],
                ..Default::default()
            })
            .is_err());
        assert!(array.from_joint_state(&js).is_err());
        assert!(ActionLayout::from_names(&names(&["a.velocity"])).is_err());
        assert!(ActionLayout::from_names(&[]).is_err());
    }

    #[test]
    fn trajectory_points_are_the_mean_rows_one_period_apart() {
        let l = JointLayout::from_names(&names(&["a.position", "b.position"])).unwrap();
        let t = l.trajectory(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 0.1, Time::default());
        assert_eq!(t.joint_names, ["a", "b"]);
        assert_eq!(t.points.len(), 3);
        assert_eq!(t.points[2].positions, [5.0, 6.0]);
        assert!(t.points[0].velocities.is_empty());
        assert_eq!(t.points[0].time_from_start.to_ns(), 100_000_000);
        assert_eq!(t.points[2].time_from_start.to_ns(), 300_000_000);
    }
}
