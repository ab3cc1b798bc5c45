#!/usr/bin/env python3
"""Record scripted, multimodal MuJoCo Fetch trajectories into an igebm-rs MCAP recording.

Each episode runs a scripted policy in one of two modes chosen at random
(PUSH: get behind the object and push it to a goal on the table; PICK: open
above the object, descend, close, lift and carry it to the goal, which may be
in the air), with randomized gains and offsets. Every 4th action
(t % 4 == 3) is uniform random in [-1, 1]^4 instead.

State (16 float32): 7 arm joint positions (rad), 2 finger joint positions (m),
object position x, y, z (m), object quaternion x, y, z, w. Action (4 float32):
the env's dx, dy, dz, gripper in [-1, 1]; action[t] is applied at state[t].

See README.md beside this file for the recording layout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

FORMAT_VERSION = "2"
PROTOCOL_VERSION = "1"
ARM_JOINTS = [
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "upperarm_roll_joint",
    "elbow_flex_joint",
    "forearm_roll_joint",
    "wrist_flex_joint",
    "wrist_roll_joint",
]
FINGER_JOINTS = ["r_gripper_finger_joint", "l_gripper_finger_joint"]
OBJECT_NAMES = ["object.x", "object.y", "object.z", "object.qx", "object.qy", "object.qz", "object.qw"]
STATE_NAMES = ARM_JOINTS + FINGER_JOINTS + OBJECT_NAMES
STATE_UNITS = ["rad"] * 7 + ["m"] * 2 + ["m"] * 3 + ["1"] * 4
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
ACTION_UNITS = ["1"] * 4
ENVS = ("FetchPickAndPlace-v4", "FetchPush-v4")
ROBOT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PUSH, PICK = 0, 1
MODE_NAMES = {PUSH: "push", PICK: "pick"}


def format_ids(ids) -> str:
    """Sorted ids as compact ranges: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    out, i, ids = [], 0, list(ids)
    while i < len(ids):
        start = end = ids[i]
        while i + 1 < len(ids) and ids[i + 1] == end + 1:
            i += 1
            end = ids[i]
        out.append(str(start) if start == end else f"{start}-{end}")
        i += 1
    return ",".join(out)


def split_ids(n: int, seed: int):
    """90/10 split: a seeded permutation of 0..n, its first round(n/10) ids are the test ids."""
    perm = np.random.default_rng([seed, 0x5EED5B11]).permutation(n)
    n_test = int(np.floor(n / 10.0 + 0.5))  # round half up, like Rust's f64::round
    return sorted(int(i) for i in perm[n_test:]), sorted(int(i) for i in perm[:n_test])


def state_schema() -> dict:
    return envelope_schema(
        "ebm.RobotState",
        {
            "state": floats_schema(16, "Fetch: 7 arm joints (rad), 2 fingers (m), object x,y,z (m), quaternion x,y,z,w"),
            "last_action": {"anyOf": [floats_schema(4, "previous action"), {"type": "null"}]},
        },
    )


def action_schema() -> dict:
    return envelope_schema("ebm.Action", {"action": floats_schema(4, "dx, dy, dz, gripper in [-1, 1]")})


def floats_schema(n: int, what: str) -> dict:
    return {"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n, "description": what}


def envelope_schema(title: str, extra: dict) -> dict:
    props = {
        "robot_id": {"type": "string"},
        "episode": {"type": "integer", "minimum": 0},
        "seq": {"type": "integer", "minimum": 0},
        "stamp_ns": {"type": "integer", "minimum": 0},
    }
    props.update(extra)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": {
            "v": {"type": "integer", "const": int(PROTOCOL_VERSION), "description": "protocol version"},
            "msg": {
                "type": "object",
                "properties": props,
                "additionalProperties": False,
                "required": list(props.keys()),
            },
        },
        "required": ["v", "msg"],
        "additionalProperties": False,
    }


def f32_json(x) -> str:
    """A JSON array of float32 values, each in its shortest round-trip form (e.g. 0.009950558)."""
    a = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"non-finite value in {a}")
    return "[" + ",".join(str(v) for v in a) + "]"


class Fetch:
    """Thin fast wrapper around the unwrapped gymnasium-robotics Fetch env."""

    def __init__(self, env_name: str):
        import gymnasium as gym
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        self.env = gym.make(env_name)
        self.u = self.env.unwrapped
        self.model, self.data = self.u.model, self.u.data
        m = self.model
        adr = lambda name: int(m.joint(name).qposadr[0])  # noqa: E731
        self.joint_adr = np.array([adr("robot0:" + j) for j in ARM_JOINTS + FINGER_JOINTS])
        self.obj_adr = adr("object0:joint")
        self.dt = float(self.u.dt)
        self.block_gripper = bool(getattr(self.u, "block_gripper", False))
        self.target_in_the_air = bool(getattr(self.u, "target_in_the_air", False))

    def reset(self, seed: int):
        self.u.reset(seed=seed)
        return self.u.goal.copy()

    def step(self, action):
        # Same dynamics as env.step() without computing observations / rewards.
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.u._set_action(a)
        self.u._mujoco_step(a)
        self.u._step_callback()

    def state(self) -> np.ndarray:
        q = self.data.qpos
        o = q[self.obj_adr : self.obj_adr + 7]
        # MuJoCo free joint: x, y, z, qw, qx, qy, qz -> x, y, z, qx, qy, qz, qw.
        return np.concatenate([q[self.joint_adr], o[:3], o[4:7], o[3:4]]).astype(np.float32)

    def grip_pos(self) -> np.ndarray:
        return self.u._utils.get_site_xpos(self.model, self.data, "robot0:grip").copy()

    def obj_pos(self) -> np.ndarray:
        return self.data.qpos[self.obj_adr : self.obj_adr + 3].copy()


class ScriptedPolicy:
    """Phase-based proportional controller on the gripper position (one episode)."""

    def __init__(self, rng: np.random.Generator, mode: int, goal: np.ndarray, table_z: float):
        self.rng, self.mode, self.goal = rng, mode, goal.copy()
        self.table_z = table_z
        self.phase = 0
        self.timer = 0
        self.gain = rng.uniform(6.0, 14.0)
        self.noise = rng.uniform(0.0, 0.15)  # small gaussian action noise
        self.tol = rng.uniform(0.008, 0.02)
        if mode == PUSH:
            self.goal[2] = table_z  # push goals lie on the table
            self.behind = rng.uniform(0.05, 0.09)  # approach distance behind the object
            self.hover = rng.uniform(0.04, 0.09)  # approach height above the object
            self.push_z = rng.uniform(-0.015, 0.01)  # pushing height relative to the object centre
            self.lateral = rng.uniform(-0.01, 0.01)
            self.grip = rng.uniform(-1.0, -0.3)  # keep fingers mostly closed while pushing
        else:
            self.hover = rng.uniform(0.05, 0.12)
            self.grasp_z = rng.uniform(-0.01, 0.005)
            self.close_steps = int(rng.integers(3, 7))
            self.offset = rng.uniform(-0.008, 0.008, size=2)
            self.lift = rng.uniform(0.03, 0.08)

    def _p(self, target, grip_pos):
        d = self.gain * (target - grip_pos)
        return d

    def act(self, grip_pos: np.ndarray, obj_pos: np.ndarray) -> np.ndarray:
        a = np.zeros(4)
        if self.mode == PUSH:
            d = self.goal[:2] - obj_pos[:2]
            n = np.linalg.norm(d)
            dirn = d / n if n > 1e-6 else np.array([1.0, 0.0])
            perp = np.array([-dirn[1], dirn[0]])
            behind_xy = obj_pos[:2] - dirn * self.behind + perp * self.lateral
            a[3] = self.grip
            if self.phase == 0:  # above and behind the object
                tgt = np.array([*behind_xy, obj_pos[2] + self.hover])
                if np.linalg.norm(tgt[:2] - grip_pos[:2]) < self.tol:
                    self.phase = 1
            elif self.phase == 1:  # lower behind the object
                tgt = np.array([*behind_xy, obj_pos[2] + self.push_z])
                if abs(tgt[2] - grip_pos[2]) < self.tol:
                    self.phase = 2
                if np.linalg.norm(behind_xy - grip_pos[:2]) > 0.04:
                    self.phase = 0
            else:  # push: aim at a point just behind the object's goal, correct laterally
                contact = obj_pos[:2] - dirn * 0.035
                lat = np.dot(grip_pos[:2] - contact, perp)
                tgt_xy = grip_pos[:2] + dirn * min(0.05, n + 0.01) - perp * lat
                tgt = np.array([*tgt_xy, obj_pos[2] + self.push_z])
                # lost contact (object slid away sideways or gripper went past): re-approach
                if np.dot(grip_pos[:2] - obj_pos[:2], dirn) > 0.0 or abs(lat) > 0.03:
                    self.phase = 0
                if n < 0.01:
                    tgt = grip_pos.copy()
            a[:3] = self._p(tgt, grip_pos)
        else:
            above = np.array([obj_pos[0] + self.offset[0], obj_pos[1] + self.offset[1], obj_pos[2] + self.hover])
            if self.phase == 0:  # above the object, open
                tgt, a[3] = above, 1.0
                if np.linalg.norm(above[:2] - grip_pos[:2]) < self.tol * 0.6:
                    self.phase = 1
            elif self.phase == 1:  # descend, open
                tgt = above.copy()
                tgt[2] = obj_pos[2] + self.grasp_z
                a[3] = 1.0
                if np.linalg.norm(above[:2] - grip_pos[:2]) > 0.03:
                    self.phase = 0
                elif abs(tgt[2] - grip_pos[2]) < 0.01:
                    self.phase, self.timer = 2, 0
            elif self.phase == 2:  # close
                tgt, a[3] = grip_pos.copy(), -1.0
                tgt[:2] = obj_pos[:2]
                self.timer += 1
                if self.timer >= self.close_steps:
                    self.phase = 3
            else:  # lift and carry to the goal
                a[3] = -1.0
                if np.linalg.norm(obj_pos - grip_pos) > 0.05:  # dropped it: start over
                    self.phase = 0
                    tgt = above
                elif np.linalg.norm(obj_pos[2] - self.table_z) < self.lift * 0.5 and np.linalg.norm(
                    self.goal[:2] - obj_pos[:2]
                ) > 0.03:
                    tgt = grip_pos.copy()
                    tgt[2] = self.table_z + self.lift + 0.02
                else:
                    goal = self.goal.copy()
                    goal[2] = max(goal[2], self.table_z + 0.005)
                    tgt = grip_pos + (goal - obj_pos)
            a[:3] = self._p(tgt, grip_pos)
        if self.noise > 0:
            a[:3] += self.rng.normal(0.0, self.noise, size=3)
        return np.clip(a, -1.0, 1.0)


def run_episode(sim: Fetch, rng: np.random.Generator, steps: int, pick_prob: float, random_every: int):
    env_seed = int(rng.integers(0, 2**31 - 1))
    goal = sim.reset(env_seed)
    table_z = float(sim.obj_pos()[2])
    mode = PICK if rng.uniform() < pick_prob else PUSH
    if mode == PICK and rng.uniform() < 0.5:
        # PICK: sometimes lift to a goal in the air (like the env does for half of its goals).
        goal = goal.copy()
        goal[2] = max(goal[2], table_z + rng.uniform(0.05, 0.25))
    policy = ScriptedPolicy(rng, mode, goal, table_z)
    states = np.empty((steps, 16), dtype=np.float32)
    actions = np.empty((steps, 4), dtype=np.float32)
    start = sim.obj_pos()
    for t in range(steps):
        states[t] = sim.state()
        a = policy.act(sim.grip_pos(), sim.obj_pos())
        if random_every > 0 and t % random_every == random_every - 1:
            a = rng.uniform(-1.0, 1.0, size=4)
        actions[t] = a
        sim.step(actions[t].astype(np.float64))
    end = sim.obj_pos()
    moved = float(np.linalg.norm(end - start))
    lifted = float(np.max(states[:, 11]) - table_z)
    return states, actions, mode, moved, lifted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--trajectories", type=int, default=10000, help="number of episodes N")
    p.add_argument("--steps", type=int, default=100, help="steps T per episode (ignores the env's 50-step limit)")
    p.add_argument("--seed", type=int, default=0, help="seed (output is deterministic for a given seed)")
    p.add_argument("--out", required=True, help="output .mcap path (written atomically)")
    p.add_argument("--env", default="FetchPickAndPlace-v4", choices=ENVS, help="gymnasium-robotics environment")
    p.add_argument("--robot-id", default="fetch-0", help="robot id in topics and messages")
    p.add_argument(
        "--pick-prob",
        type=float,
        default=0.5,
        help="probability of the PICK mode per episode (forced to 0 for FetchPush, whose gripper is blocked)",
    )
    p.add_argument("--random-every", type=int, default=4, help="every k-th action (t %% k == k-1) is uniform random; 0: never")
    args = p.parse_args(argv)
    if args.trajectories < 1 or args.steps < 1:
        p.error("--trajectories and --steps must be >= 1")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if not ROBOT_ID_RE.match(args.robot_id):
        p.error("--robot-id: 1-64 ASCII letters, digits, '-', '_', starting with a letter or digit")

    import mujoco
    import gymnasium_robotics
    from mcap.writer import CompressionType, Writer

    sim = Fetch(args.env)
    pick_prob = 0.0 if sim.block_gripper else args.pick_prob
    period_ns = int(round(sim.dt * 1e9))
    n, T, rid = args.trajectories, args.steps, args.robot_id
    train, test = split_ids(n, args.seed)
    config = (
        f'env = "{args.env}"\n'
        f"trajectories = {n}\n"
        f"steps = {T}\n"
        f"seed = {args.seed}\n"
        f'robot_id = "{rid}"\n'
        f"pick_prob = {pick_prob}\n"
        f"random_every = {args.random_every}\n"
    )
    header = {
        "format_version": FORMAT_VERSION,
        "robot_id": rid,
        "robot_kind": "fetch",
        "encoding": "json",
        "trajectories": str(n),
        "steps": str(T),
        "control_period_ns": str(period_ns),
        "generator": f"fetch_record.py mujoco-{mujoco.__version__} gymnasium-robotics-{gymnasium_robotics.__version__} {args.env}",
        "seed": str(args.seed),
        "config": config,
        "split_train": format_ids(train),
        "split_test": format_ids(test),
        "state_dim": "16",
        "action_dim": "4",
        "state_names": json.dumps(STATE_NAMES, separators=(",", ":")),
        "state_units": json.dumps(STATE_UNITS, separators=(",", ":")),
        "action_names": json.dumps(ACTION_NAMES, separators=(",", ":")),
        "action_units": json.dumps(ACTION_UNITS, separators=(",", ":")),
    }

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.tmp-{os.getpid()}"
    dumps = lambda o: json.dumps(o, separators=(",", ":"), allow_nan=False).encode()  # noqa: E731
    moved_n = lifted_n = 0
    modes = {PUSH: 0, PICK: 0}
    tty = sys.stderr.isatty()  # a live \r progress line on a terminal, one line per 100 episodes in a log
    lead, tail, every, nl = ("\r", "", 10, "\n") if tty else ("", "\n", 100, "")
    t0 = time.monotonic()
    try:
        with open(tmp, "wb") as f:
            w = Writer(f, compression=CompressionType.ZSTD)
            w.start(profile="", library="fetch_record.py")
            w.add_metadata("ebm-recording", header)
            ss = w.register_schema("ebm.RobotState", "jsonschema", dumps(state_schema()))
            sa = w.register_schema("ebm.Action", "jsonschema", dumps(action_schema()))
            meta = {"protocol_version": PROTOCOL_VERSION}
            cs = w.register_channel(f"ebm/{rid}/state", "json", ss, meta)
            ca = w.register_channel(f"ebm/{rid}/action", "json", sa, meta)
            for e in range(n):
                rng = np.random.default_rng(np.random.SeedSequence([args.seed, e]))
                states, actions, mode, moved, lifted = run_episode(sim, rng, T, pick_prob, args.random_every)
                modes[mode] += 1
                moved_n += moved > 0.02
                lifted_n += lifted > 0.03
                for t in range(T):
                    seq = e * T + t
                    stamp = seq * period_ns
                    # Compact JSON built directly (robot_id is plain ASCII, checked above).
                    hdr = f'{{"v":1,"msg":{{"robot_id":"{rid}","episode":{e},"seq":{seq},"stamp_ns":{stamp},'
                    sm = f'{hdr}"state":{f32_json(states[t])},"last_action":null}}}}'.encode()
                    am = f'{hdr}"action":{f32_json(actions[t])}}}}}'.encode()
                    w.add_message(cs, log_time=stamp, data=sm, publish_time=stamp, sequence=seq & 0xFFFFFFFF)
                    w.add_message(ca, log_time=stamp, data=am, publish_time=stamp, sequence=seq & 0xFFFFFFFF)
                done = e + 1
                if done % every == 0 or done == n:
                    el = time.monotonic() - t0
                    rate = done / el
                    print(
                        f"{lead}{done}/{n} episodes  {rate:.2f} ep/s  moved>2cm {moved_n / done:.0%}  "
                        f"lifted>3cm {lifted_n / done:.0%}  eta {(n - done) / rate:.0f}s",
                        end=tail,
                        file=sys.stderr,
                        flush=True,
                    )
            elapsed = time.monotonic() - t0
            w.add_metadata(
                "ebm-recording-summary",
                {
                    "moved_2cm_share": f"{moved_n / n:.4f}",
                    "lifted_3cm_share": f"{lifted_n / n:.4f}",
                    "episodes_push": str(modes[PUSH]),
                    "episodes_pick": str(modes[PICK]),
                },
            )
            w.finish()
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    print(
        f"{nl}wrote {out}: {n} episodes x {T} steps in {elapsed:.1f}s; object moved >2cm in {moved_n / n:.1%}, "
        f"lifted >3cm in {lifted_n / n:.1%}; push {modes[PUSH]}, pick {modes[PICK]}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
