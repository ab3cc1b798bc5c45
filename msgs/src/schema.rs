//! JSON schemas of the recorded messages, so Foxglove can open JSON
//! recordings (MCAP schema encoding `jsonschema`). They describe the
//! versioned envelope `{"v": 1, "msg": {...}}` of [`crate::codec`].

use serde_json::{json, Value};

use crate::types::{ACTION_DIM, PROTOCOL_VERSION, STATE_DIM};

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

/// Schema of an enveloped [`crate::RobotState`].
pub fn robot_state() -> Value {
    let mut props = header_props();
    props.insert(
        "state".into(),
        floats(
            STATE_DIM,
            "24 joint angles (rad), cube position (m), cube quaternion x, y, z, w",
        ),
    );
    props.insert(
        "last_action".into(),
        json!({"anyOf": [floats(ACTION_DIM, "previous action"), {"type": "null"}]}),
    );
    envelope(
        "ebm.RobotState",
        json!({"type": "object", "properties": props, "additionalProperties": false,
               "required": ["robot_id", "episode", "seq", "stamp_ns", "state", "last_action"]}),
    )
}

/// Schema of an enveloped [`crate::Action`].
pub fn action() -> Value {
    let mut props = header_props();
    props.insert(
        "action".into(),
        floats(ACTION_DIM, "actuator position targets (rad)"),
    );
    envelope(
        "ebm.Action",
        json!({"type": "object", "properties": props, "additionalProperties": false,
               "required": ["robot_id", "episode", "seq", "stamp_ns", "action"]}),
    )
}
