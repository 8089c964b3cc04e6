"""Scripted experts for the six manipulation tasks: waypoint state machines tracked by a delta-pose
P-controller on privileged simulator state. They produce the demonstrations the policy learns from.

PullCube and LiftPeg follow the waypoints of ManiSkill's shipped motion-planning solutions (reach behind
the cube and pull; grasp the peg near one end loosely, lift, let it swing upright, lower), re-expressed as
`pd_ee_delta_pose` actions instead of planned joint paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

# Full-scale action = this much motion per step (robosuite OSC_POSE output_max; ManiSkill pd_ee_delta_pose,
# whose rotation is scaled by rot_lower = -0.1, i.e. a positive action turns the other way).
ROBOSUITE_SCALE = (0.05, 0.5)
MANISKILL_SCALE = (0.1, -0.1)
# robosuite NutAssembly geometry (pegs_arena.xml, square-nut.xml): half-height of peg 1, half-thickness of the nut.
PEG_HALF_HEIGHT = 0.1
NUT_HALF = 0.01
PANDA_WRIST_LIMIT = 2.9  # |joint 7| range of the Panda (rad)


def _yaw(mat: np.ndarray) -> float:
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def _wrap(angle: float, period: float) -> float:
    """angle modulo `period`, in [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def pose_action(pos, mat, target_pos, target_mat, gripper: float, scale, gain: float = 1.0) -> np.ndarray:
    """7-D action moving (pos, mat) toward (target_pos, target_mat): base-frame delta and axis-angle."""
    dpos = (np.asarray(target_pos) - pos) / scale[0] * gain
    drot = Rotation.from_matrix(target_mat @ mat.T).as_rotvec() / scale[1] * gain
    return np.clip(np.concatenate([dpos, drot, [gripper]]), -1.0, 1.0)


@dataclass
class Phase:
    """One waypoint: where to go, with what gripper command, until within `tol` or `max_steps` elapsed."""

    name: str
    target: np.ndarray
    yaw: float
    gripper: float
    tol: float = 0.01
    max_steps: int = 60
    min_steps: int = 0
    tilt: bool = False  # orientation target is set by the expert's target_mat hook, not by `yaw`
    speed: float = 1.0  # cap on the norm of the position action (1 = the controller's full step)
    rot_tol: float = np.inf  # the phase also waits until the orientation error (rad) is below this


class WaypointExpert:
    """Base: subclasses implement `plan(priv) -> list[Phase]`, re-planned from fresh state every step."""

    scale = ROBOSUITE_SCALE
    gain = 1.0

    def reset(self, env) -> None:
        priv = env.privileged()
        self.mat0 = self._mat(priv)
        self.phase, self.steps = 0, 0

    def _pos(self, priv) -> np.ndarray:
        return priv["eef_pos"]

    def _mat(self, priv) -> np.ndarray:
        return priv["eef_mat"]

    def plan(self, priv) -> list[Phase]:
        raise NotImplementedError

    def act(self, env) -> np.ndarray:
        priv = env.privileged()
        phases = self.plan(priv)
        pos, mat = self._pos(priv), self._mat(priv)
        while self.phase < len(phases) - 1:
            ph = phases[self.phase]
            err = np.linalg.norm(ph.target - pos)
            rot_ok = ph.rot_tol == np.inf or Rotation.from_matrix(self.target_mat(ph, priv, mat) @ mat.T).magnitude() < ph.rot_tol
            if self.steps >= ph.max_steps or (err < ph.tol and rot_ok and self.steps >= ph.min_steps):
                self.phase, self.steps = self.phase + 1, 0
            else:
                break
        ph = phases[self.phase]
        self.steps += 1
        action = pose_action(pos, mat, ph.target, self.target_mat(ph, priv, mat), ph.gripper, self.scale, self.gain)
        norm = np.linalg.norm(action[:3])
        if norm > ph.speed:
            action[:3] *= ph.speed / norm
        return action

    def target_mat(self, ph: Phase, priv: dict, mat: np.ndarray) -> np.ndarray:
        return Rotation.from_euler("z", ph.yaw).as_matrix() @ self.mat0


class LiftExpert(WaypointExpert):
    """Above the cube, down, close, lift 20 cm (robosuite: gripper +1 closes)."""

    def reset(self, env):
        super().reset(env)
        self.yaw = _wrap(_yaw(env.privileged()["object_mat"]) - _yaw(self.mat0), np.pi / 2)

    def plan(self, priv):
        cube, y = priv["object_pos"], self.yaw
        return [
            Phase("above", cube + [0, 0, 0.08], y, -1, tol=0.01),
            Phase("down", cube + [0, 0, -0.003], y, -1, tol=0.006),
            Phase("grasp", cube + [0, 0, -0.003], y, 1, tol=0.0, max_steps=8),
            Phase("lift", cube + [0, 0, 0.2], y, 1),
        ]


class CanExpert(WaypointExpert):
    """Grasp the can, carry it over its target bin at a safe height, lower, release, back off."""

    def plan(self, priv):
        can, goal = priv["object_pos"], priv["target_pos"]
        high = goal[2] + 0.25
        return [
            Phase("above", can + [0, 0, 0.1], 0.0, -1, tol=0.015),
            Phase("down", can + [0, 0, 0.005], 0.0, -1, tol=0.008),
            Phase("grasp", can + [0, 0, 0.005], 0.0, 1, tol=0.0, max_steps=8),
            Phase("lift", np.array([can[0], can[1], high]), 0.0, 1, tol=0.03),
            Phase("carry", np.array([goal[0], goal[1], high]), 0.0, 1, tol=0.035, max_steps=100),
            Phase("lower", np.array([goal[0], goal[1], goal[2] + 0.12]), 0.0, 1, tol=0.035, max_steps=30),
            Phase("release", np.array([goal[0], goal[1], goal[2] + 0.12]), 0.0, -1, tol=0.0, max_steps=8),
            # robosuite counts the can as placed only once the gripper is > 4 cm away from it.
            Phase("retreat", np.array([goal[0], goal[1], high]), 0.0, -1, tol=0.0, max_steps=100),
        ]


def square_yaw(nut_yaw: float) -> float:
    """The nut yaw to set over the square peg: the nearest multiple of pi/2, except that the handle (the
    nut's +x axis) must not point away from the robot (+x), where holding it puts the hand out of reach."""
    k = int(np.round(nut_yaw / (np.pi / 2)))
    if k % 4 == 0:
        k += 1 if nut_yaw >= k * np.pi / 2 else -1
    return float(k * np.pi / 2)


def grasp_yaw(yaw: float, turn: float, wrist: float, limit: float = PANDA_WRIST_LIMIT - 0.7) -> float:
    """The hand yaw (relative to its start) to grasp at, `yaw` or `yaw` -/+ pi (a parallel gripper is
    symmetric): the one with the least rotation whose wrist angle stays within `limit` both at the grasp
    and after the later `turn`; the Panda's last joint turns opposite to the hand's yaw. Without a fit, the
    one farthest from the joint's limits."""
    options = sorted((yaw, yaw - np.pi, yaw + np.pi), key=abs)
    reach = [max(abs(wrist - y), abs(wrist - y - turn)) for y in options]
    fits = [y for y, r in zip(options, reach) if r <= limit]
    return float(fits[0] if fits else options[int(np.argmin(reach))])


class SquareExpert(WaypointExpert):
    """Grasp the nut's handle across its bar, lift, turn the nut square to the peg (closed loop on the nut's
    yaw), centre it over peg 1 just above the peg's top, lower it slowly, release.

    Two details carry the success rate: the fingers close 1 cm further out along the handle than its
    site, which lies only ~1 cm outside the nut's ring (closing at the site, a finger lands on the ring and
    tips the nut about a quarter of the time); and the nut is centred to within a few mm before it goes
    down (the hole leaves 6.75 mm of clearance around the peg, and an off-centre nut jams on its top).
    """

    grip_out = 0.01  # grasp this far beyond the handle site, away from the ring
    clearance = 0.025  # nut bottom above the peg's top while centring

    def reset(self, env):
        super().reset(env)
        priv = env.privileged()
        nut_yaw = _yaw(priv["object_mat"])
        # Fingers close across the handle bar: gripper yaw follows the nut's yaw (mod pi).
        self.grasp_yaw = grasp_yaw(_wrap(nut_yaw - _yaw(self.mat0) + np.pi / 2, np.pi), square_yaw(nut_yaw) - nut_yaw, priv["joint_pos"][6])

    def plan(self, priv):
        handle, nut, peg = priv["handle_pos"], priv["object_pos"], priv["target_pos"]
        gy = self.grasp_yaw
        out = (handle - nut) * [1, 1, 0]
        grip = handle + self.grip_out * out / max(np.linalg.norm(out), 1e-6)
        # Once lifted: turn the hand by the nut's yaw error so the nut sits square to the axis-aligned peg.
        hand_yaw = _yaw(priv["eef_mat"]) - _yaw(self.mat0)
        nut_yaw = _yaw(priv["object_mat"])
        py = hand_yaw + square_yaw(nut_yaw) - nut_yaw
        offset = priv["eef_pos"] - nut  # gripper relative to the nut centre, re-read every step
        over = np.array([peg[0] + offset[0], peg[1] + offset[1], 0.0])
        top = peg[2] + 0.15
        # The peg body's origin is its centre: its top is PEG_HALF_HEIGHT above, the nut is NUT_HALF thick.
        centre = peg[2] + PEG_HALF_HEIGHT + NUT_HALF + self.clearance + offset[2]
        return [
            Phase("above", grip + [0, 0, 0.08], gy, -1, tol=0.01, rot_tol=0.05, max_steps=80),
            Phase("down", grip + [0, 0, -0.005], gy, -1, tol=0.01, max_steps=40),
            Phase("grasp", grip + [0, 0, -0.005], gy, 1, tol=0.0, max_steps=15),  # the fingers close slowly
            Phase("lift", np.array([grip[0], grip[1], top]), gy, 1, tol=0.02),
            Phase("turn", over + [0, 0, top], py, 1, tol=0.012, max_steps=80, min_steps=15),
            # The position error here is the nut's offset from the peg axis (plus the height error).
            Phase("centre", over + [0, 0, centre], py, 1, tol=0.003, max_steps=60, min_steps=5, speed=0.5),
            Phase("lower", over + [0, 0, peg[2] - 0.02], py, 1, tol=0.01, max_steps=60, speed=0.3),
            Phase("release", over + [0, 0, peg[2] - 0.02], py, -1, tol=0.0, max_steps=100),
        ]


class ManiSkillExpert(WaypointExpert):
    scale = MANISKILL_SCALE

    def _pos(self, priv):
        return priv["tcp_pos"]

    def _mat(self, priv):
        w, x, y, z = priv["tcp_quat"]
        return Rotation.from_quat([x, y, z, w]).as_matrix()


class PullCubeExpert(ManiSkillExpert):
    """ManiSkill's solution: closed gripper behind the cube (+x side), then pull it to the goal (-x)."""

    def plan(self, priv):
        cube, goal = priv["obj_pos"], priv["goal_region_pos"]
        behind = cube + [0.05, 0, 0]
        return [
            Phase("over", behind + [0, 0, 0.08], 0.0, -1, tol=0.02),
            Phase("down", np.array([behind[0], behind[1], 0.02]), 0.0, -1, tol=0.01),
            Phase("pull", np.array([goal[0] + 0.05, goal[1], 0.02]), 0.0, -1, tol=0.01, max_steps=200),
        ]


class PokeCubeExpert(ManiSkillExpert):
    """Grasp the peg at its tail, line its head up behind the cube, push the cube onto the goal, hold still."""

    grasp_back = 0.06  # grasp this far behind the peg centre (away from the head)

    def plan(self, priv):
        peg, cube, goal = priv["peg_pos"], priv["cube_pos"], priv["goal_region_pos"]
        grasp = peg + [-self.grasp_back, 0, 0]
        if self.phase >= 3:
            # Peg is in hand: place the tcp so the peg head (0.12 ahead of its centre) meets the cube.
            head_from_tcp = peg + [0.12, 0, 0] - priv["tcp_pos"]
        else:
            head_from_tcp = np.array([0.12 + self.grasp_back, 0, 0])
        z = 0.03
        line_up = np.array([cube[0] - 0.05, cube[1], z]) - head_from_tcp
        push = np.array([goal[0] - 0.03, goal[1], z]) - head_from_tcp
        return [
            Phase("over", grasp + [0, 0, 0.08], 0.0, 1, tol=0.015),
            Phase("down", grasp + [0, 0, 0.0], 0.0, 1, tol=0.008),
            Phase("grasp", grasp + [0, 0, 0.0], 0.0, -1, tol=0.0, max_steps=6),
            Phase("raise", np.array([grasp[0], grasp[1], z + 0.01]), 0.0, -1, tol=0.01, max_steps=15),
            Phase("line_up", line_up, 0.0, -1, tol=0.01, max_steps=40, speed=0.5),
            # Slowly: a fast peg launches the cube off the table or past the goal.
            Phase("push", push, 0.0, -1, tol=0.008, max_steps=40, speed=0.2),
            Phase("hold", push, 0.0, -1, tol=0.0, max_steps=100),
        ]


class LiftPegExpert(ManiSkillExpert):
    """ManiSkill's solution: grasp the lying peg 10 cm from its centre with a loose grip (-0.6), lift 30 cm
    so it swings toward upright, tilt the hand until the peg is vertical, set it down on its end. Unlike
    the shipped solution it always grasps the end nearer the robot."""

    half_length = 0.12
    grasp_from_centre = 0.10

    def reset(self, env):
        super().reset(env)
        # The end nearer the robot: the far end of a peg near the workspace edge can be out of reach.
        self.end = env.privileged()["peg_pos"] + [-self.grasp_from_centre, 0, 0]

    def _peg_tilt(self, priv) -> float:
        """Angle of the peg's axis from vertical in the x-z plane (0 when upright)."""
        w, x, y, z = priv["peg_quat"]
        axis = Rotation.from_quat([x, y, z, w]).as_matrix()[:, 0]
        axis = axis if axis[2] >= 0 else -axis
        return float(np.arctan2(axis[0], axis[2]))

    def plan(self, priv):
        grasp, tcp = self.end, priv["tcp_pos"]
        high = grasp + [0, 0, 0.30]
        down = np.array([high[0], high[1], tcp[2] - (priv["peg_pos"][2] - self.half_length) + 0.002])
        return [
            Phase("over", grasp + [0, 0, 0.06], 0.0, 1, tol=0.015),
            Phase("down", grasp, 0.0, 1, tol=0.008),
            Phase("grasp", grasp, 0.0, -0.6, tol=0.0, max_steps=6),
            Phase("lift", high, 0.0, -0.6, tol=0.02, max_steps=40),
            Phase("tilt", high, 0.0, -0.6, tol=0.0, max_steps=12, tilt=True),
            Phase("lower", down, 0.0, -0.6, tol=0.004, max_steps=40, tilt=True),
            Phase("release", down, 0.0, 1, tol=0.0, max_steps=100, tilt=True),
        ]

    def target_mat(self, ph, priv, mat):
        if ph.tilt:  # turn the hand about world y by minus the peg's tilt
            return Rotation.from_euler("y", -self._peg_tilt(priv)).as_matrix() @ mat
        return super().target_mat(ph, priv, mat)


EXPERTS = {
    "Lift": LiftExpert,
    "Can": CanExpert,
    "Square": SquareExpert,
    "PokeCube": PokeCubeExpert,
    "PullCube": PullCubeExpert,
    "LiftPeg": LiftPegExpert,
}


def make_expert(task: str) -> WaypointExpert:
    try:
        return EXPERTS[task]()
    except KeyError:
        raise ValueError(f"no scripted expert for {task!r}; choose from {sorted(EXPERTS)}") from None
