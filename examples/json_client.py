#!/usr/bin/env python3
"""A robot without ROS 2, in Python: publishes its states as JSON and prints
the daemon's forecasts and OOD scores (eclipse-zenoh only).

    python3 -m venv /tmp/ebmpy && /tmp/ebmpy/bin/pip install eclipse-zenoh==1.10.2
    cargo run --release -p ebm-runtime -- serve          # terminal 1 (tcp/127.0.0.1:7447)
    /tmp/ebmpy/bin/python examples/json_client.py --robot py-1   # terminal 2

The state size comes from the daemon's status (the model serving this robot
id); the states here are a slow random walk around the model's mean, so
expect OOD flags: send your robot's real states instead.
"""
import argparse
import json
import random
import time

import zenoh

p = argparse.ArgumentParser()
p.add_argument("--connect", default="tcp/127.0.0.1:7447")
p.add_argument("--robot", default="py-1")
p.add_argument("--seconds", type=float, default=5.0)
p.add_argument("--rate-hz", type=float, default=10.0)
a = p.parse_args()

conf = zenoh.Config()
conf.insert_json5("mode", '"client"')
conf.insert_json5("connect/endpoints", json.dumps([a.connect]))
conf.insert_json5("scouting/multicast/enabled", "false")
s = zenoh.open(conf)

# Every message is an envelope {"v": version, "msg": {...}} (docs/runtime.md, Keys).
status = None
sub = s.declare_subscriber("ebm/status")
while status is None:
    status = json.loads(sub.recv().payload.to_bytes())["msg"]
sub.undeclare()


def serving(robot, pattern):  # the daemon's robot-id globs: `*` matches any run
    parts = pattern.split("*")
    return robot.startswith(parts[0]) and robot.endswith(parts[-1]) and len(robot) >= len(pattern) - pattern.count("*")


model = next(m for m in status["models"] if serving(a.robot, m["robots_pattern"]))
spec = model["robot"]
print(f"robot {a.robot}: model {model['model_id']} ({spec['kind']}, {spec['state_dim']} state floats, "
      f"{spec['action_dim']} action floats)")


def on_output(sample):
    msg = json.loads(sample.payload.to_bytes())["msg"]
    kind = str(sample.key_expr).rsplit("/", 1)[-1]
    if kind == "forecast":
        d = spec["state_dim"]
        print(f"forecast of state {msg['seq']}: {msg['horizon']} steps x {msg['particles']} particles, "
              f"step 1 mean {[round(v, 3) for v in msg['mean'][:3]]}..., {msg['compute_us'] / 1000:.0f} ms")
    elif kind == "ood":
        print(f"ood of state {msg['seq']}: percentile {msg['percentile']:.1f}, flagged {msg['flagged']}"
              + (f" ({msg['reason']})" if msg.get("reason") else ""))
    elif kind == "error":
        print(f"error: {msg['code']}: {msg['message']}")


outs = [s.declare_subscriber(f"ebm/{a.robot}/{k}", on_output) for k in ("forecast", "ood", "error")]
pub = s.declare_publisher(f"ebm/{a.robot}/state", encoding=zenoh.Encoding("application/json"))
time.sleep(0.5)
x = [0.0] * spec["state_dim"]
for seq in range(int(a.seconds * a.rate_hz)):
    x = [v + random.gauss(0.0, 0.01) for v in x]
    state = {
        "robot_id": a.robot, "episode": 0, "seq": seq, "stamp_ns": time.time_ns(),
        "state": x, "last_action": [0.0] * spec["action_dim"] if spec["action_dim"] else None,
    }
    pub.put(json.dumps({"v": 1, "msg": state}))
    time.sleep(1.0 / a.rate_hz)
time.sleep(1.0)
s.close()
