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
import sys

import numpy as np

import recording

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
PUSH, PICK = 0, 1
MODE_NAMES = {PUSH: "push", PICK: "pick"}


class Fetch(recording.MujocoSim):
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


class FetchRobot:
    """The generator's callbacks (module-level, so worker processes can pickle them)."""

    def __init__(self, env_name: str, pick_prob: float, random_every: int):
        self.env_name, self.pick_prob, self.random_every = env_name, pick_prob, random_every

    def make_sim(self):
        return Fetch(self.env_name)

    def episode(self, sim, rng, steps):
        states, actions, mode, moved, lifted = run_episode(sim, rng, steps, self.pick_prob, self.random_every)
        return states, actions, {"mode": mode, "moved": moved, "lifted": lifted}


def summarise(infos):
    n = len(infos)
    moved_n = sum(i["moved"] > 0.02 for i in infos)
    lifted_n = sum(i["lifted"] > 0.03 for i in infos)
    modes = {m: sum(1 for i in infos if i["mode"] == m) for m in (PUSH, PICK)}
    summary = {
        "moved_2cm_share": f"{moved_n / n:.4f}",
        "lifted_3cm_share": f"{lifted_n / n:.4f}",
        "episodes_push": str(modes[PUSH]),
        "episodes_pick": str(modes[PICK]),
    }
    text = f"object moved >2cm in {moved_n / n:.1%}, lifted >3cm in {lifted_n / n:.1%}; push {modes[PUSH]}, pick {modes[PICK]}"
    return summary, text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    recording.add_common_args(p, "fetch-0", 10000)
    p.add_argument("--env", default="FetchPickAndPlace-v4", choices=ENVS, help="gymnasium-robotics environment")
    p.add_argument(
        "--pick-prob",
        type=float,
        default=0.5,
        help="probability of the PICK mode per episode (forced to 0 for FetchPush, whose gripper is blocked)",
    )
    args = p.parse_args(argv)
    recording.check_common_args(p, args)

    import gymnasium_robotics
    import mujoco

    sim = Fetch(args.env)
    pick_prob = 0.0 if sim.block_gripper else args.pick_prob
    cb = FetchRobot(args.env, pick_prob, args.random_every)
    robot = recording.Robot(
        kind="fetch",
        state_names=STATE_NAMES,
        state_units=STATE_UNITS,
        action_names=ACTION_NAMES,
        action_units=ACTION_UNITS,
        state_doc="Fetch: 7 arm joints (rad), 2 fingers (m), object x,y,z (m), quaternion x,y,z,w",
        action_doc="dx, dy, dz, gripper in [-1, 1]",
        generator=f"fetch_record.py mujoco-{mujoco.__version__} gymnasium-robotics-{gymnasium_robotics.__version__} {args.env}",
        config=f'env = "{args.env}"\nrobot_id = "{args.robot_id}"\npick_prob = {pick_prob}\nrandom_every = {args.random_every}\n',
        control_period_ns=int(round(sim.dt * 1e9)),
        make_sim=cb.make_sim,
        episode=cb.episode,
        summarise=summarise,
    )
    return recording.run(robot, args)


if __name__ == "__main__":
    sys.exit(main())
