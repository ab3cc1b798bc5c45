#!/usr/bin/env python3
"""Record scripted in-hand manipulation of a block by the Shadow Dexterous Hand (MuJoCo) as an igebm-rs MCAP recording.

The paper's trajectory environment: OpenAI's Shadow hand with a block
(`HandManipulateBlock-v1` of gymnasium-robotics). The paper's trained policy
is not public, so each episode runs a scripted policy in one of four modes,
drawn at random, that move the block in different ways:

- WRIST: the two wrist joints swing at random frequencies (the block slides
  and tips on the palm);
- WAVE: the four fingers curl in a travelling wave (they roll the block);
- THUMB: the five thumb joints move on their own sinusoids (it pushes and
  turns the block);
- SQUEEZE: all fingers and the thumb close and open together (a grasp that
  tightens and loosens).

Half of the episodes add a second mode at half amplitude. Each episode
draws its own base pose offset, amplitude, frequency, phases and Gaussian
action noise; every 4th action (t % 4 == 3) is uniform random in [-1, 1]^20
instead. An episode in which the block falls off the hand (its height drops
more than 5 cm below where it started) is drawn again from the next
attempt's seed; the summary counts the redraws.

State (31 float32): the 24 hand joint positions (rad), the block's position
x, y, z (m) and quaternion x, y, z, w. Action (20 float32): the env's
actuator targets in [-1, 1] (absolute positions within each actuator's
range); action[t] is applied at state[t].

See README.md beside this file for the recording layout and the commands.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import recording

HAND_JOINTS = [
    "WRJ1", "WRJ0",
    "FFJ3", "FFJ2", "FFJ1", "FFJ0",
    "MFJ3", "MFJ2", "MFJ1", "MFJ0",
    "RFJ3", "RFJ2", "RFJ1", "RFJ0",
    "LFJ4", "LFJ3", "LFJ2", "LFJ1", "LFJ0",
    "THJ4", "THJ3", "THJ2", "THJ1", "THJ0",
]  # fmt: skip
ACTUATORS = [
    "A_WRJ1", "A_WRJ0",
    "A_FFJ3", "A_FFJ2", "A_FFJ1",
    "A_MFJ3", "A_MFJ2", "A_MFJ1",
    "A_RFJ3", "A_RFJ2", "A_RFJ1",
    "A_LFJ4", "A_LFJ3", "A_LFJ2", "A_LFJ1",
    "A_THJ4", "A_THJ3", "A_THJ2", "A_THJ1", "A_THJ0",
]  # fmt: skip
OBJECT_NAMES = ["block.x", "block.y", "block.z", "block.qx", "block.qy", "block.qz", "block.qw"]
STATE_NAMES = HAND_JOINTS + OBJECT_NAMES
STATE_UNITS = ["rad"] * 24 + ["m"] * 3 + ["1"] * 4
ACTION_UNITS = ["1"] * 20
ENV = "HandManipulateBlock-v1"

# Actuator indices by group.
WRIST = [0, 1]
CURL = [[3, 4], [6, 7], [9, 10], [13, 14]]  # J2, J1 (J1 drives the coupled J1 + J0) of FF, MF, RF, LF
THUMB = [15, 16, 17, 18, 19]
MODES = ["wrist", "wave", "thumb", "squeeze"]
DROP_M = 0.05  # the block fell off: its height dropped this much below the start
MAX_ATTEMPTS = 50


class Hand(recording.MujocoSim):
    """Thin fast wrapper around the unwrapped gymnasium-robotics hand env."""

    def __init__(self):
        import gymnasium as gym
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        self.env = gym.make(ENV)
        self.u = self.env.unwrapped
        self.model, self.data = self.u.model, self.u.data
        m = self.model
        self.joint_adr = np.array([int(m.joint("robot0:" + j).qposadr[0]) for j in HAND_JOINTS])
        self.obj_adr = int(m.joint("object:joint").qposadr[0])
        got = [m.actuator(i).name for i in range(m.nu)]
        if got != ["robot0:" + a for a in ACTUATORS]:
            raise RuntimeError(f"unexpected actuators in {ENV}: {got}")

    def reset(self, seed: int):
        self.u.reset(seed=seed)


class ScriptedPolicy:
    """Sinusoidal finger, thumb and wrist motions around a random base pose (one episode)."""

    def __init__(self, rng: np.random.Generator, dt: float):
        self.rng, self.dt = rng, dt
        self.base = rng.normal(0.0, 0.15, 20)
        self.noise = rng.uniform(0.0, 0.1)
        self.modes = [(int(rng.integers(len(MODES))), 1.0)]
        if rng.uniform() < 0.5:
            self.modes.append((int(rng.integers(len(MODES))), 0.5))
        self.params = [self._draw() for _ in self.modes]

    def _draw(self):
        r = self.rng
        return {
            "freq": r.uniform(0.3, 1.5),  # Hz
            "phase": r.uniform(0.0, 2 * np.pi),
            "amp": r.uniform(0.3, 0.9),
            "lag": r.uniform(0.3, 1.2),  # phase lag between neighbouring fingers (WAVE)
            "ratio": r.uniform(0.5, 2.0),  # frequency ratio of the second wrist joint (WRIST)
            "phases": r.uniform(0.0, 2 * np.pi, 20),
        }

    def act(self, t: int) -> np.ndarray:
        a = self.base.copy()
        for (mode, scale), p in zip(self.modes, self.params):
            amp = p["amp"] * scale
            w = 2 * np.pi * p["freq"] * t * self.dt + p["phase"]
            name = MODES[mode]
            if name == "wrist":
                a[0] += amp * np.sin(w)
                a[1] += amp * np.sin(w * p["ratio"] + p["phases"][1])
            elif name == "wave":
                for i, joints in enumerate(CURL):
                    a[joints] += amp * np.sin(w - i * p["lag"])
            elif name == "thumb":
                for j in THUMB:
                    a[j] += amp * np.sin(w + p["phases"][j])
            else:  # squeeze
                s = 0.5 + 0.5 * np.sin(w)
                for joints in CURL:
                    a[joints] += amp * s
                a[16] += amp * s
                a[19] -= amp * s
        a += self.rng.normal(0.0, self.noise, 20)
        return np.clip(a, -1.0, 1.0)


def run_episode(sim: Hand, rng: np.random.Generator, steps: int, random_every: int, dt: float):
    """One episode that keeps the block in the hand (redrawn after a drop)."""
    for attempt in range(MAX_ATTEMPTS):
        r = rng if attempt == 0 else np.random.default_rng(rng.integers(0, 2**63))
        sim.reset(int(r.integers(0, 2**31 - 1)))
        policy = ScriptedPolicy(r, dt)
        states = np.empty((steps, 31), dtype=np.float32)
        actions = np.empty((steps, 20), dtype=np.float32)
        z0 = float(sim.state()[26])
        dropped = False
        for t in range(steps):
            states[t] = sim.state()
            if states[t][26] < z0 - DROP_M:
                dropped = True
                break
            a = policy.act(t)
            if random_every > 0 and t % random_every == random_every - 1:
                a = r.uniform(-1.0, 1.0, size=20)
            actions[t] = a
            sim.step(actions[t].astype(np.float64))
        if not dropped:
            moved = float(np.linalg.norm(states[-1, 24:27] - states[0, 24:27]))
            dot = float(abs(np.dot(states[-1, 27:31], states[0, 27:31])))
            turned = float(np.degrees(2 * np.arccos(min(1.0, dot))))
            return states, actions, {"modes": [m for m, _ in policy.modes], "moved": moved, "turned": turned, "redraws": attempt}
    raise RuntimeError(f"the block fell in {MAX_ATTEMPTS} attempts in a row")


class HandRobot:
    """The generator's callbacks (module-level, so worker processes can pickle them)."""

    def __init__(self, random_every: int, dt: float):
        self.random_every, self.dt = random_every, dt

    def make_sim(self):
        return Hand()

    def episode(self, sim, rng, steps):
        return run_episode(sim, rng, steps, self.random_every, self.dt)


def summarise(infos):
    n = len(infos)
    moved = np.array([i["moved"] for i in infos])
    turned = np.array([i["turned"] for i in infos])
    redraws = sum(i["redraws"] for i in infos)
    counts = {m: sum(1 for i in infos if i["modes"][0] == k) for k, m in enumerate(MODES)}
    summary = {
        "moved_median_m": f"{np.median(moved):.4f}",
        "turned_median_deg": f"{np.median(turned):.1f}",
        "turned_over_30deg_share": f"{np.mean(turned > 30):.4f}",
        "redraws_after_drop": str(redraws),
        **{f"episodes_{m}": str(c) for m, c in counts.items()},
        "episodes_two_modes": str(sum(1 for i in infos if len(i["modes"]) > 1)),
    }
    text = (
        f"block moved {np.median(moved) * 100:.1f} cm and turned {np.median(turned):.0f} deg (medians); "
        f"turned > 30 deg in {np.mean(turned > 30):.0%}; {redraws} episodes redrawn after a drop; modes {counts}"
    )
    return summary, text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    recording.add_common_args(p, "shadow-hand-0", 50000)
    args = p.parse_args(argv)
    recording.check_common_args(p, args)

    import gymnasium_robotics
    import mujoco

    dt = Hand().u.dt
    cb = HandRobot(args.random_every, dt)
    robot = recording.Robot(
        kind="shadow_hand_block",
        state_names=STATE_NAMES,
        state_units=STATE_UNITS,
        action_names=ACTUATORS,
        action_units=ACTION_UNITS,
        state_doc="Shadow hand: 24 joint positions (rad), block x,y,z (m), quaternion x,y,z,w",
        action_doc="20 actuator targets in [-1, 1]",
        generator=f"hand_record.py mujoco-{mujoco.__version__} gymnasium-robotics-{gymnasium_robotics.__version__} {ENV}",
        config=f'env = "{ENV}"\nrobot_id = "{args.robot_id}"\nrandom_every = {args.random_every}\n',
        control_period_ns=int(round(dt * 1e9)),
        make_sim=cb.make_sim,
        episode=cb.episode,
        summarise=summarise,
    )
    return recording.run(robot, args)


if __name__ == "__main__":
    sys.exit(main())
