//! JSON schemas of the recorded messages, so Foxglove can open JSON
//! recordings (MCAP schema encoding `jsonschema`). They describe the
//! versioned envelope `{"v": 1, "msg": {...}}` of [`crate::codec`].

use serde_json::{json, Value};

use crate::robot::RobotSpec;
use crate::types::PROTOCOL_VERSION;

fn floats(n: usize, what: &str) -> Value {
    json!({"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n,
           "description": what})
}

fn envelope(title: &str, msg: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": {
            "v": {"type": "integer", "const": PROTOCOL_VERSION, "description": "protocol version"},
            "msg": msg,
        },
        "required": ["v", "msg"],
        "additionalProperties": false,
    })
}

fn header_props() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("robot_id".into(), json!({"type": "string"}));
    m.insert("episode".into(), json!({"type": "integer", "minimum": 0}));
    m.insert("seq".into(), json!({"type": "integer", "minimum": 0}));
    m.insert("stamp_ns".into(), json!({"type": "integer", "minimum": 0}));
    m
}

/// `name (unit), ...` of a vector's dimensions, or `n floats` without names.
fn describe(names: &[String], units: &[String], n: usize) -> String {
    if names.is_empty() {
        return format!("{n} floats");
    }
    let parts: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| match units.get(i) {
            Some(u) => format!("{name} ({u})"),
            None => name.clone(),
        })
        .collect();
    parts.join(", ")
}

/// Schema of an enveloped [`crate::RobotState`] of `robot`.
pub fn robot_state(robot: &RobotSpec) -> Value {
    let mut props = header_props();
    let state = describe(&robot.state_names, &robot.state_units, robot.state_dim);
    props.insert(
        "state".into(),
        floats(robot.state_dim, &format!("{}: {state}", robot.kind)),
    );
    props.insert(
        "last_action".into(),
        json!({"anyOf": [floats(robot.action_dim, "previous action"), {"type": "null"}]}),
    );
    envelope(
        "ebm.RobotState",
        json!({"type": "object", "properties": props, "additionalProperties": false,
               "required": ["robot_id", "episode", "seq", "stamp_ns", "state", "last_action"]}),
    )
}

/// Schema of an enveloped [`crate::Action`] of `robot`.
pub fn action(robot: &RobotSpec) -> Value {
    let mut props = header_props();
    let action = describe(&robot.action_names, &robot.action_units, robot.action_dim);
    props.insert(
        "action".into(),
        floats(robot.action_dim, &format!("{}: {action}", robot.kind)),
    );
    envelope(
        "ebm.Action",
        json!({"type": "object", "properties": props, "additionalProperties": false,
               "required": ["robot_id", "episode", "seq", "stamp_ns", "action"]}),
    )
}
