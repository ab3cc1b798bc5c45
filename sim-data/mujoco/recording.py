"""Shared writer of igebm-rs MCAP recordings for the MuJoCo generators.

A generator (fetch_record.py, hand_record.py) describes its robot (`Robot`:
names, units, schema descriptions) and runs one episode from its seed
(`Robot.episode`). This module does everything else, the same for every
robot:

- the layout: the `ebm-recording` header first, `ebm/<id>/state` and
  `ebm/<id>/action` JSON channels, episodes end to end (`seq = e*T + t`,
  `stamp_ns = seq * period`), a final `ebm-recording-summary`;
- the 90/10 split of episode ids (a seeded permutation);
- generation in shards (`<out>.shards/shard-NNNNN.mcap`, each written
  atomically) by several worker processes; a run that is stopped resumes
  where it was: finished shards are kept, the rest are made again. Episode
  `e` depends only on (seed, e), so the result does not depend on the
  number of shards or workers;
- the merge of the shards into one recording (written atomically).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

FORMAT_VERSION = "2"
PROTOCOL_VERSION = "1"
ROBOT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass
class Robot:
    """What a generator tells the writer about its robot and episodes."""

    kind: str  # robot_kind in the header
    state_names: list
    state_units: list
    action_names: list
    action_units: list
    state_doc: str  # description of the state array in the JSON schema
    action_doc: str
    generator: str  # "<script> <versions> <env>"
    config: str  # TOML of the generator's arguments (not trajectories/steps/seed: added here)
    control_period_ns: int
    # make_sim() -> sim (called once per worker process)
    make_sim: Callable = field(repr=False, default=None)
    # episode(sim, rng, steps) -> (states [T, S] f32, actions [T, A] f32, info dict)
    episode: Callable = field(repr=False, default=None)
    # summarise(list of info dicts) -> (summary metadata dict, one-line text)
    summarise: Callable = field(repr=False, default=None)


class MujocoSim:
    """Stepping of a gymnasium-robotics env (`self.u`, unwrapped; `self.data`)
    without observations or rewards, and the recorded state: the joints at
    `self.joint_adr`, then the free body at `self.obj_adr` as x, y, z, qx,
    qy, qz, qw. Subclasses set those attributes."""

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


def episode_rng(seed: int, e: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, e]))


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


def dumps(o) -> bytes:
    return json.dumps(o, separators=(",", ":"), allow_nan=False).encode()


def header(robot: Robot, robot_id: str, n: int, steps: int, seed: int) -> dict:
    train, test = split_ids(n, seed)
    config = f"trajectories = {n}\nsteps = {steps}\nseed = {seed}\n" + robot.config
    js = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
    return {
        "format_version": FORMAT_VERSION,
        "robot_id": robot_id,
        "robot_kind": robot.kind,
        "encoding": "json",
        "trajectories": str(n),
        "steps": str(steps),
        "control_period_ns": str(robot.control_period_ns),
        "generator": robot.generator,
        "seed": str(seed),
        "config": config,
        "split_train": format_ids(train),
        "split_test": format_ids(test),
        "state_dim": str(len(robot.state_names)),
        "action_dim": str(len(robot.action_names)),
        "state_names": js(robot.state_names),
        "state_units": js(robot.state_units),
        "action_names": js(robot.action_names),
        "action_units": js(robot.action_units),
    }


class _Writer:
    """An MCAP file with the recording's channels, written to `<out>.tmp-<pid>` and renamed on `close`."""

    def __init__(self, out: str, robot: Robot, robot_id: str, head: dict | None, library: str):
        from mcap.writer import CompressionType, Writer

        self.out, self.tmp = out, f"{out}.tmp-{os.getpid()}"
        self.f = open(self.tmp, "wb")
        self.w = Writer(self.f, compression=CompressionType.ZSTD)
        self.w.start(profile="", library=library)
        if head is not None:
            self.w.add_metadata("ebm-recording", head)
        s, a = len(robot.state_names), len(robot.action_names)
        state_schema = envelope_schema(
            "ebm.RobotState",
            {
                "state": floats_schema(s, robot.state_doc),
                "last_action": {"anyOf": [floats_schema(a, "previous action"), {"type": "null"}]},
            },
        )
        action_schema = envelope_schema("ebm.Action", {"action": floats_schema(a, robot.action_doc)})
        ss = self.w.register_schema("ebm.RobotState", "jsonschema", dumps(state_schema))
        sa = self.w.register_schema("ebm.Action", "jsonschema", dumps(action_schema))
        meta = {"protocol_version": PROTOCOL_VERSION}
        self.cs = self.w.register_channel(f"ebm/{robot_id}/state", "json", ss, meta)
        self.ca = self.w.register_channel(f"ebm/{robot_id}/action", "json", sa, meta)

    def add(self, channel, seq: int, stamp: int, data: bytes):
        self.w.add_message(channel, log_time=stamp, data=data, publish_time=stamp, sequence=seq & 0xFFFFFFFF)

    def close(self, metadata: dict[str, dict] = None):
        for name, m in (metadata or {}).items():
            self.w.add_metadata(name, m)
        self.w.finish()
        self.f.close()
        os.replace(self.tmp, self.out)

    def abandon(self):
        self.f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def _shard_path(out: str, i: int) -> str:
    return os.path.join(f"{out}.shards", f"shard-{i:05d}.mcap")


def _write_shard(job) -> tuple[int, float]:
    """One shard: episodes [lo, hi) into their own MCAP file (no header; info in its metadata)."""
    robot, robot_id, seed, steps, period, out, i, lo, hi = job
    global _SIM
    if _SIM is None:
        _SIM = robot.make_sim()
    t0 = time.monotonic()
    w = _Writer(_shard_path(out, i), robot, robot_id, None, "igebm-rs shard")
    try:
        infos = []
        for e in range(lo, hi):
            states, actions, info = robot.episode(_SIM, episode_rng(seed, e), steps)
            infos.append(info)
            for t in range(steps):
                seq = e * steps + t
                stamp = seq * period
                # Compact JSON built directly (robot_id is plain ASCII, checked by the caller).
                hdr = f'{{"v":1,"msg":{{"robot_id":"{robot_id}","episode":{e},"seq":{seq},"stamp_ns":{stamp},'
                w.add(w.cs, seq, stamp, f'{hdr}"state":{f32_json(states[t])},"last_action":null}}}}'.encode())
                w.add(w.ca, seq, stamp, f'{hdr}"action":{f32_json(actions[t])}}}}}'.encode())
        w.close({"ebm-shard": {"first": str(lo), "end": str(hi), "infos": json.dumps(infos)}})
    except BaseException:
        w.abandon()
        raise
    return i, time.monotonic() - t0


_SIM = None


def _shard_infos(path: str):
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        for m in make_reader(f).iter_metadata():
            if m.name == "ebm-shard":
                return int(m.metadata["first"]), int(m.metadata["end"]), json.loads(m.metadata["infos"])
    raise ValueError(f"{path} has no ebm-shard record")


def generate(robot: Robot, robot_id: str, n: int, steps: int, seed: int, out: str, workers: int, shard_size: int):
    """Makes the recording `out` (resumable: finished shards of an earlier run are kept)."""
    if not ROBOT_ID_RE.match(robot_id):
        raise SystemExit("--robot-id: 1-64 ASCII letters, digits, '-', '_', starting with a letter or digit")
    out = os.path.abspath(out)
    os.makedirs(f"{out}.shards", exist_ok=True)
    plan = f"trajectories={n} steps={steps} seed={seed} robot_id={robot_id} shard_size={shard_size}\n{robot.config}"
    plan_path = os.path.join(f"{out}.shards", "plan.txt")
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            if f.read() != plan:
                raise SystemExit(f"{out}.shards holds shards of other arguments (see its plan.txt): remove it or change --out")
    else:
        with open(plan_path, "w") as f:
            f.write(plan)
    bounds = [(i, lo, min(lo + shard_size, n)) for i, lo in enumerate(range(0, n, shard_size))]
    todo = [b for b in bounds if not os.path.exists(_shard_path(out, b[0]))]
    jobs = [(robot, robot_id, seed, steps, robot.control_period_ns, out, i, lo, hi) for i, lo, hi in todo]
    done_eps = sum(hi - lo for _, lo, hi in bounds) - sum(hi - lo for _, lo, hi in todo)
    print(f"{len(bounds) - len(todo)} of {len(bounds)} shards already made; {len(todo)} to make with {workers} workers", file=sys.stderr)
    t0 = time.monotonic()
    made = 0
    if jobs:
        sizes = {i: hi - lo for i, lo, hi in todo}
        ctx = mp.get_context("fork")
        with ctx.Pool(workers) if workers > 1 else _Inline() as pool:
            for i, _ in pool.imap_unordered(_write_shard, jobs):
                made += sizes[i]
                rate = made / (time.monotonic() - t0)
                left = sum(sizes.values()) - made
                print(f"shard {i}: {done_eps + made}/{n} episodes, {rate:.1f} ep/s, eta {left / rate:.0f}s", file=sys.stderr, flush=True)
    merge(robot, robot_id, n, steps, seed, out, [b[0] for b in bounds])
    return time.monotonic() - t0


class _Inline:
    """A one-process stand-in for a Pool."""

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def imap_unordered(self, f, jobs):
        return map(f, jobs)


def merge(robot: Robot, robot_id: str, n: int, steps: int, seed: int, out: str, shard_ids):
    from mcap.reader import make_reader

    head = header(robot, robot_id, n, steps, seed)
    w = _Writer(out, robot, robot_id, head, f"igebm-rs {robot.generator.split()[0]}")
    infos = []
    try:
        for i in shard_ids:
            path = _shard_path(out, i)
            infos += _shard_infos(path)[2]
            with open(path, "rb") as f:
                for _, channel, msg in make_reader(f).iter_messages(log_time_order=False):
                    ch = w.cs if channel.topic.endswith("/state") else w.ca
                    w.add(ch, msg.sequence, msg.log_time, msg.data)
        if len(infos) != n:
            raise ValueError(f"the shards hold {len(infos)} episodes, expected {n}")
        summary, text = robot.summarise(infos)
        w.close({"ebm-recording-summary": summary})
    except BaseException:
        w.abandon()
        raise
    print(f"wrote {out}: {n} episodes x {steps} steps; {text}", file=sys.stderr)


def run(robot: Robot, args) -> int:
    """Makes the recording the common arguments describe (see `add_common_args`)."""
    seconds = generate(robot, args.robot_id, args.trajectories, args.steps, args.seed, args.out, args.workers, args.shard_size)
    print(f"done in {seconds:.0f}s", file=sys.stderr)
    return 0


def add_common_args(p, default_robot_id: str, default_n: int):
    p.add_argument("--trajectories", type=int, default=default_n, help="number of episodes N")
    p.add_argument("--steps", type=int, default=100, help="steps T per episode (ignores the env's step limit)")
    p.add_argument("--seed", type=int, default=0, help="seed (the recording's content is a function of the arguments)")
    p.add_argument("--out", required=True, help="output .mcap path (written atomically; shards in <out>.shards/)")
    p.add_argument("--robot-id", default=default_robot_id, help="robot id in topics and messages")
    p.add_argument("--workers", type=int, default=1, help="worker processes (one MuJoCo model each)")
    p.add_argument("--shard-size", type=int, default=500, help="episodes per shard (the unit of resumption)")
    p.add_argument("--random-every", type=int, default=4, help="every k-th action (t %% k == k-1) is uniform random; 0: never")


def check_common_args(p, args):
    if args.trajectories < 1 or args.steps < 1:
        p.error("--trajectories and --steps must be >= 1")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.workers < 1 or args.shard_size < 1:
        p.error("--workers and --shard-size must be >= 1")
    if not ROBOT_ID_RE.match(args.robot_id):
        p.error("--robot-id: 1-64 ASCII letters, digits, '-', '_', starting with a letter or digit")
