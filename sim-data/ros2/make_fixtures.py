#!/usr/bin/env python3
"""Writes the ROS 2 test fixtures under tests/fixtures/ros2/ with `rosbags`,
an implementation of CDR and rosbag2 independent of ours.

- `<name>.cdr` + `<name>.json`: one CDR payload per message type, with the
  values serialised (`{"type", "little_endian", "value"}`);
- `arm_demo.mcap`: a rosbag2 MCAP bag (storage zstd) of an invented 6-joint
  arm with a gripper, two episodes separated by a gap, and `arm_demo.json`:
  what was written (stamps, joint orders, the formula of every value);
- `type_hashes.json`: the RIHS01 type hashes (rmw_zenoh key expressions).

Deterministic: the same rosbags version writes the same bytes.
    python3 -m venv /work/venv-ros2
    /work/venv-ros2/bin/pip install -r sim-data/ros2/requirements.txt
    /work/venv-ros2/bin/python sim-data/ros2/make_fixtures.py
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types
F64 = np.float64

ARM = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"]
JOINTS = ARM + ["gripper_finger"]
# q_j(t) = offset + amp * sin(2 pi freq t + phase), t in s since the bag's start.
WAVES = [
    {"offset": 0.1 * j - 0.2, "amp": 0.3 + 0.05 * j, "freq": 0.15 + 0.04 * j, "phase": 0.7 * j}
    for j in range(len(JOINTS))
]
BAG_START_NS = 1_700_000_000_000_000_000
LEAD_S = 0.1  # commands lead the state by 0.1 s


def f32(x: float) -> float:
    """Values are float32-representable: the bag compresses (and stays small)."""
    return float(np.float32(x))


def q(j: int, t: float) -> float:
    w = WAVES[j]
    return f32(w["offset"] + w["amp"] * math.sin(2 * math.pi * w["freq"] * t + w["phase"]))


def qd(j: int, t: float) -> float:
    w = WAVES[j]
    omega = 2 * math.pi * w["freq"]
    return f32(w["amp"] * omega * math.cos(omega * t + w["phase"]))


def rel_s(ns: int) -> float:
    return (ns - BAG_START_NS) / 1e9


def time(ns: int):
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def header(ns: int, frame: str = ""):
    return T["std_msgs/msg/Header"](stamp=time(ns), frame_id=frame)


def arr(v) -> np.ndarray:
    return np.array(v, dtype=F64)


# ---------------------------------------------------------------- payloads


def payload_fixtures() -> list[tuple[str, str, object, dict, bool]]:
    """(file stem, type, message, JSON value, little endian)."""
    out = []
    t = T["builtin_interfaces/msg/Time"](sec=1_700_000_123, nanosec=456_789_012)
    out.append(("time", "builtin_interfaces/msg/Time", t, {"sec": 1_700_000_123, "nanosec": 456_789_012}, True))
    d = T["builtin_interfaces/msg/Duration"](sec=-2, nanosec=500_000_000)
    out.append(("duration", "builtin_interfaces/msg/Duration", d, {"sec": -2, "nanosec": 500_000_000}, True))
    h = T["std_msgs/msg/Header"](stamp=time(1_700_000_001_000_000_500), frame_id="base_link")
    hv = {"stamp": {"sec": 1_700_000_001, "nanosec": 500}, "frame_id": "base_link"}
    out.append(("header", "std_msgs/msg/Header", h, hv, True))

    names = ["shoulder_pan", "elbow", "wrist_3", "gripper_finger"]
    js = {
        "header": {"stamp": {"sec": 1_700_000_002, "nanosec": 20_000_000}, "frame_id": ""},
        "name": names,
        "position": [0.5, -1.25, 3.140625, 0.0078125],
        "velocity": [0.125, -0.0625, 0.0, 2.5],
        "effort": [],
    }
    msg = T["sensor_msgs/msg/JointState"](
        header=header(1_700_000_002_020_000_000),
        name=names,
        position=arr(js["position"]),
        velocity=arr(js["velocity"]),
        effort=arr([]),
    )
    out.append(("joint_state", "sensor_msgs/msg/JointState", msg, js, True))
    out.append(("joint_state_be", "sensor_msgs/msg/JointState", msg, js, False))

    dims = [
        {"label": "joints", "size": 3, "stride": 6},
        {"label": "xy", "size": 2, "stride": 2},
    ]
    fma = {
        "layout": {"dim": dims, "data_offset": 1},
        "data": [0.0, 1.5, -2.25, 1e-3, 123456.75, -0.5, 7.0],
    }
    msg = T["std_msgs/msg/Float64MultiArray"](
        layout=T["std_msgs/msg/MultiArrayLayout"](
            dim=[T["std_msgs/msg/MultiArrayDimension"](**d) for d in dims], data_offset=1
        ),
        data=arr(fma["data"]),
    )
    out.append(("float64_multi_array", "std_msgs/msg/Float64MultiArray", msg, fma, True))

    points = [
        {
            "positions": [0.25, -0.5, 1.0],
            "velocities": [0.0, 0.125, -0.25],
            "accelerations": [],
            "effort": [],
            "time_from_start": {"sec": 0, "nanosec": 100_000_000},
        },
        {
            "positions": [0.375, -0.625, 1.125],
            "velocities": [],
            "accelerations": [1.0, 2.0, 3.0],
            "effort": [0.5],
            "time_from_start": {"sec": 1, "nanosec": 250_000_000},
        },
    ]
    jt = {
        "header": {"stamp": {"sec": 1_700_000_003, "nanosec": 7}, "frame_id": "arm"},
        "joint_names": ["elbow", "shoulder_pan", "wrist_1"],
        "points": points,
    }
    msg = T["trajectory_msgs/msg/JointTrajectory"](
        header=header(1_700_000_003_000_000_007, "arm"),
        joint_names=jt["joint_names"],
        points=[
            T["trajectory_msgs/msg/JointTrajectoryPoint"](
                positions=arr(p["positions"]),
                velocities=arr(p["velocities"]),
                accelerations=arr(p["accelerations"]),
                effort=arr(p["effort"]),
                time_from_start=T["builtin_interfaces/msg/Duration"](**p["time_from_start"]),
            )
            for p in points
        ],
    )
    out.append(("joint_trajectory", "trajectory_msgs/msg/JointTrajectory", msg, jt, True))

    statuses = [
        {
            "level": 1,
            "name": "ebm: arm_demo ood",
            "message": "percentile 97.5 (WARN above 95)",
            "hardware_id": "arm-0",
            "values": [
                {"key": "energy", "value": "3.25"},
                {"key": "percentile", "value": "97.5"},
                {"key": "état", "value": "dégradé"},
            ],
        },
        {"level": 0, "name": "ok", "message": "", "hardware_id": "", "values": []},
    ]
    da = {
        "header": {"stamp": {"sec": 1_700_000_004, "nanosec": 999_999_999}, "frame_id": ""},
        "status": statuses,
    }
    msg = T["diagnostic_msgs/msg/DiagnosticArray"](
        header=header(1_700_000_004_999_999_999),
        status=[
            T["diagnostic_msgs/msg/DiagnosticStatus"](
                level=s["level"],
                name=s["name"],
                message=s["message"],
                hardware_id=s["hardware_id"],
                values=[T["diagnostic_msgs/msg/KeyValue"](**kv) for kv in s["values"]],
            )
            for s in statuses
        ],
    )
    out.append(("diagnostic_array", "diagnostic_msgs/msg/DiagnosticArray", msg, da, True))
    return out


# ---------------------------------------------------------------- the bag

STATE_PERIOD_NS = 20_000_000  # 50 Hz
COMMAND_PERIOD_NS = 40_000_000  # 25 Hz
EPISODES_S = [(0.0, 10.0), (16.0, 26.0)]  # 6 s gap between them
CHUNK_NS = 2_000_000_000


def shuffled(rng: random.Random, names: list[str], k: int) -> list[str]:
    """Every 7th message lists its joints in another order."""
    if k % 7 != 3:
        return list(names)
    out = list(names)
    rng.shuffle(out)
    return out


def bag_messages(rng: random.Random):
    """Yields (log_time_ns, topic, type, message, record for the JSON)."""
    for ep, (start_s, end_s) in enumerate(EPISODES_S):
        start_ns = BAG_START_NS + int(start_s * 1e9)
        n_states = int(round((end_s - start_s) * 1e9 / STATE_PERIOD_NS))
        prev_stamp = 0
        for k in range(n_states):
            nominal = start_ns + k * STATE_PERIOD_NS
            stamp = nominal + rng.randint(-2_000_000, 2_000_000)
            # Two stale messages in the second episode: stamped before the
            # previous one (a late publisher); the importer must skip them.
            stale = ep == 1 and k in (100, 300)
            if stale:
                stamp = prev_stamp - 5_000_000
            log = nominal + 2_500_000 + rng.randint(0, 1_000_000)
            names = shuffled(rng, JOINTS, k)
            t = rel_s(stamp)
            idx = [JOINTS.index(n) for n in names]
            msg = T["sensor_msgs/msg/JointState"](
                header=header(stamp, "base_link"),
                name=names,
                position=arr([q(j, t) for j in idx]),
                velocity=arr([qd(j, t) for j in idx]),
                effort=arr([]),
            )
            rec = {"episode": ep, "stamp_ns": stamp, "log_ns": log, "names": names, "stale": stale}
            yield log, "/joint_states", "sensor_msgs/msg/JointState", msg, rec
            if not stale:
                prev_stamp = stamp
        n_cmds = int(round((end_s - start_s) * 1e9 / COMMAND_PERIOD_NS))
        for k in range(n_cmds):
            nominal = start_ns + k * COMMAND_PERIOD_NS + 10_000_000
            log = nominal + rng.randint(0, 3_000_000)
            stamp = nominal + rng.randint(-1_000_000, 1_000_000)
            names = shuffled(rng, ARM, k)
            # Float64MultiArray: no header, log time; fixed ARM order.
            t = rel_s(log) + LEAD_S
            msg = T["std_msgs/msg/Float64MultiArray"](
                layout=T["std_msgs/msg/MultiArrayLayout"](
                    dim=[T["std_msgs/msg/MultiArrayDimension"](label="joints", size=6, stride=6)],
                    data_offset=0,
                ),
                data=arr([q(j, t) for j in range(len(ARM))]),
            )
            rec = {"episode": ep, "log_ns": log}
            yield log, "/arm_controller/commands", "std_msgs/msg/Float64MultiArray", msg, rec
            # JointTrajectory: stamped; first point = q(stamp + lead), second q(stamp + 2 lead).
            t = rel_s(stamp) + LEAD_S
            idx = [JOINTS.index(n) for n in names]
            msg = T["trajectory_msgs/msg/JointTrajectory"](
                header=header(stamp),
                joint_names=names,
                points=[
                    T["trajectory_msgs/msg/JointTrajectoryPoint"](
                        positions=arr([q(j, t + i * LEAD_S) for j in idx]),
                        velocities=arr([]),
                        accelerations=arr([]),
                        effort=arr([]),
                        time_from_start=T["builtin_interfaces/msg/Duration"](
                            sec=0, nanosec=(i + 1) * 100_000_000
                        ),
                    )
                    for i in range(2)
                ],
            )
            rec = {"episode": ep, "stamp_ns": stamp, "log_ns": log + 1000, "names": names}
            yield log + 1000, "/arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", msg, rec
            # JointState commands with a zero stamp: the importer uses log time.
            t = rel_s(log + 2000) + LEAD_S
            msg = T["sensor_msgs/msg/JointState"](
                header=header(0),
                name=names,
                position=arr([q(j, t) for j in idx]),
                velocity=arr([]),
                effort=arr([]),
            )
            rec = {"episode": ep, "stamp_ns": 0, "log_ns": log + 2000, "names": names}
            yield log + 2000, "/joint_commands", "sensor_msgs/msg/JointState", msg, rec
        for k in range(int(end_s - start_s)):
            log = start_ns + k * 1_000_000_000 + 500_000_000
            msg = T["diagnostic_msgs/msg/DiagnosticArray"](
                header=header(log),
                status=[
                    T["diagnostic_msgs/msg/DiagnosticStatus"](
                        level=0, name="arm_driver", message="ok", hardware_id="arm-0", values=[]
                    )
                ],
            )
            yield log, "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", msg, None


def write_bag(out_dir: Path) -> dict:
    rng = random.Random(17)
    msgs = sorted(bag_messages(rng), key=lambda m: m[0])
    topics: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bag_dir = Path(tmp) / "arm_demo"
        writer = Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.open()
        conns = {}
        chunk_end = BAG_START_NS + CHUNK_NS
        for log, topic, typ, msg, rec in msgs:
            # A chunk per 2 s of log time (rosbags' own chunks hold 1 MiB):
            # a cut file keeps its earlier chunks (the truncation tests).
            if log >= chunk_end:
                writer.storage.close_chunk()
                chunk_end += CHUNK_NS
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, typ, typestore=TS)
                topics[topic] = {"type": typ, "count": 0}
            writer.write(conns[topic], log, TS.serialize_cdr(msg, typ))
            t = topics[topic]
            if rec is not None:
                k = t["count"]
                # Compact columns: times relative to the bag's start, joint
                # orders only where they differ from the first message's.
                t.setdefault("episode", []).append(rec["episode"])
                t.setdefault("log_ns", []).append(rec["log_ns"] - BAG_START_NS)
                if "stamp_ns" in rec:
                    stamp = rec["stamp_ns"] - BAG_START_NS if rec["stamp_ns"] else None
                    t.setdefault("stamp_ns", []).append(stamp)
                if "names" in rec:
                    first = t.setdefault("names", rec["names"])
                    if rec["names"] != first:
                        t.setdefault("reordered", {})[str(k)] = rec["names"]
                if rec.get("stale"):
                    t.setdefault("stale", []).append(k)
            t["count"] += 1
        writer.close()
        shutil.copy(bag_dir / "arm_demo.mcap", out_dir / "arm_demo.mcap")
    return {
        "made_by": "sim-data/ros2/make_fixtures.py",
        "bag_start_ns": BAG_START_NS,
        "joints": JOINTS,
        "arm": ARM,
        "waves": WAVES,
        "values_are_float32": True,
        "lead_s": LEAD_S,
        "columns": "per topic, per message in bag order: episode, log_ns and stamp_ns relative to bag_start_ns (stamp null: zero stamp), names of the first message, reordered: {index: names}, stale: indices stamped before their predecessor",
        "formulas": {
            "/joint_states": "position[j] = q_j(t), velocity[j] = dq_j/dt(t), t = stamp_ns / 1e9 (relative)",
            "/arm_controller/commands": "data[j] = q_j(t + lead_s) for j in arm order, t from log_ns (no header)",
            "/arm_controller/joint_trajectory": "points[i].positions[j] = q_j(t + (i + 1) lead_s), t from stamp_ns; 2 points",
            "/joint_commands": "position[j] = q_j(t + lead_s), t from log_ns (header stamp is zero)",
            "q": "q_j(t) = float32(offset + amp * sin(2 pi freq t + phase)); dq_j/dt = float32(amp 2 pi freq cos(2 pi freq t + phase))",
        },
        "topics": topics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--out", type=Path, default=root / "tests" / "fixtures" / "ros2")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, typ, msg, value, le in payload_fixtures():
        (args.out / f"{stem}.cdr").write_bytes(TS.serialize_cdr(msg, typ, little_endian=le))
        doc = {"type": typ, "little_endian": le, "value": value}
        (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    bag = write_bag(args.out)
    (args.out / "arm_demo.json").write_text(json.dumps(bag, separators=(",", ":")) + "\n")
    types = [
        "builtin_interfaces/msg/Time",
        "builtin_interfaces/msg/Duration",
        "std_msgs/msg/Header",
        "sensor_msgs/msg/JointState",
        "std_msgs/msg/MultiArrayDimension",
        "std_msgs/msg/MultiArrayLayout",
        "std_msgs/msg/Float64MultiArray",
        "trajectory_msgs/msg/JointTrajectoryPoint",
        "trajectory_msgs/msg/JointTrajectory",
        "diagnostic_msgs/msg/KeyValue",
        "diagnostic_msgs/msg/DiagnosticStatus",
        "diagnostic_msgs/msg/DiagnosticArray",
    ]
    hashes = {typ: TS.hash_rihs01(typ) for typ in types}
    (args.out / "type_hashes.json").write_text(
        json.dumps({"store": "ROS2_JAZZY", "rihs01": hashes}, indent=1) + "\n"
    )
    for p in sorted(args.out.iterdir()):
        print(f"{p.stat().st_size:>8}  {p.relative_to(root)}")


if __name__ == "__main__":
    main()
