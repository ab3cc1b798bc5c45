#!/usr/bin/env python3
"""Hand-run check of the daemon's ROS 2 bridge with independent code: an
rmw_zenoh-style robot (JointState serialised by `rosbags`, the attachment by
zenoh-ext's `z_serialize`, rmw_zenoh's liveliness tokens) publishes to the
daemon, and the daemon's ROS 2 outputs are decoded by `rosbags`.

    python3 -m venv /tmp/ros2check && /tmp/ros2check/bin/pip install -r examples/requirements.txt
    # terminal 1: a model of the fixture bag's arm, served with the bridge
    cargo run --release -p ebm-runtime -- serve --config configs/runtime_ros2.toml
    # terminal 2
    /tmp/ros2check/bin/python examples/ros2_check.py --connect tcp/127.0.0.1:7447

It publishes joint states of the arm in `tests/fixtures/ros2/arm_demo.mcap`
(7 joints, shuffled order) at 10 Hz, prints every forecast trajectory,
denoised joint state and diagnostic the daemon publishes (decoded by
rosbags, with the attachment decoded by zenoh-ext) and the daemon's
liveliness tokens, and exits non-zero if any output is missing or does not
decode.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import zenoh
from rosbags.typesys import Stores, get_typestore
from zenoh.ext import Int64, z_deserialize, z_serialize

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3", "gripper_finger"]

p = argparse.ArgumentParser()
p.add_argument("--connect", default="tcp/127.0.0.1:7447")
p.add_argument("--domain", type=int, default=0)
p.add_argument("--seconds", type=float, default=5.0)
a = p.parse_args()

ts = get_typestore(Stores.ROS2_JAZZY)
JointState = ts.types["sensor_msgs/msg/JointState"]
Header = ts.types["std_msgs/msg/Header"]
Time = ts.types["builtin_interfaces/msg/Time"]
h = ts.hash_rihs01

conf = zenoh.Config()
conf.insert_json5("mode", '"client"')
conf.insert_json5("connect/endpoints", json.dumps([a.connect]))
conf.insert_json5("scouting/multicast/enabled", "false")
s = zenoh.open(conf)

got = {"trajectory": 0, "denoised": 0, "diagnostics": 0}
errors = []


def listener(name, topic, type_name):
    key = f"{a.domain}/{topic.strip('/')}/{type_name.replace('/msg/', '::msg::dds_::')}_/{h(type_name)}"

    def on(sample):
        try:
            seq, stamp, gid = z_deserialize(tuple[Int64, Int64, bytes], sample.attachment)
            msg = ts.deserialize_cdr(sample.payload.to_bytes(), type_name)
            got[name] += 1
            if name == "trajectory":
                p0 = msg.points[0]
                print(f"forecast #{int(seq)}: {len(msg.points)} points, joints {list(msg.joint_names)[:3]}..., "
                      f"step 1 positions {np.round(p0.positions[:3], 3)}..., t+{p0.time_from_start.nanosec / 1e9:.1f} s")
            elif name == "denoised":
                print(f"denoised #{int(seq)}: {np.round(msg.position[:3], 3)}...")
            else:
                st = msg.status[0]
                vals = {kv.key: kv.value for kv in st.values}
                print(f"diagnostics #{int(seq)}: level {st.level[0] if isinstance(st.level, bytes) else st.level} "
                      f"'{st.message}' energy {vals.get('energy')}")
        except Exception as e:  # noqa: BLE001 (report and keep listening)
            errors.append(f"{name}: {e}")

    return s.declare_subscriber(key, on)


subs = [
    listener("trajectory", "/ebm/forecast", "trajectory_msgs/msg/JointTrajectory"),
    listener("denoised", "/ebm/joint_states_denoised", "sensor_msgs/msg/JointState"),
    listener("diagnostics", "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
]
zid = str(s.zid())
js_type = "sensor_msgs/msg/JointState"
dds = "sensor_msgs::msg::dds_::JointState_"
node = f"@ros2_lv/{a.domain}/{zid}/0/0/NN/%/%/py_arm"
pub_tok = f"@ros2_lv/{a.domain}/{zid}/0/1/MP/%/%/py_arm/%joint_states/{dds}/{h(js_type)}/::,10:,:,:,,"
tokens = [s.liveliness().declare_token(node), s.liveliness().declare_token(pub_tok)]
pub = s.declare_publisher(f"{a.domain}/joint_states/{dds}/{h(js_type)}")
gid = bytes(range(16))
time.sleep(0.5)

n = int(a.seconds * 10)
for seq in range(1, n + 1):
    t = time.time_ns()
    order = JOINTS[seq % 7:] + JOINTS[:seq % 7]  # the order changes every message
    q = [0.3 * math.sin(0.2 * seq + j) for j in range(7)]
    dq = [0.06 * math.cos(0.2 * seq + j) for j in range(7)]
    idx = [JOINTS.index(name) for name in order]
    msg = JointState(
        header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="base_link"),
        name=order,
        position=np.array([q[i] for i in idx]),
        velocity=np.array([dq[i] for i in idx]),
        effort=np.array([], dtype=np.float64),
    )
    pub.put(bytes(ts.serialize_cdr(msg, js_type)), attachment=z_serialize((Int64(seq), Int64(t), gid)))
    time.sleep(0.1)
time.sleep(1.0)

print("daemon tokens:")
for r in s.liveliness().get(f"@ros2_lv/{a.domain}/**"):
    if r.ok is not None and "ebm_runtime" in str(r.ok.key_expr):
        print("  ", r.ok.key_expr)
print(f"received {got}; {len(errors)} errors {errors[:3]}")
s.close()
sys.exit(0 if all(v > 0 for v in got.values()) and not errors else 1)
