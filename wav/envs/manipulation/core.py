"""The shared kernel of the manipulation envs: task registry, state layout and the gymnasium wrapper.

A backend (robosuite_backend, maniskill_backend) supplies a simulator handle with reset/step/state
features; ManipulationEnv turns it into a gymnasium env with a flat float32 state and 7-D actions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

ACTION_DIM = 7  # end-effector delta position (3) + delta rotation (3, axis-angle) + gripper (1)
IMAGE_SIZE = 64
GROUPS = ("ee", "robot", "object")


@dataclass(frozen=True)
class StateLayout:
    """Where each named feature lives in the flat state vector, and which group it belongs to.

    Groups: "ee" = end-effector pose and gripper (what the 7-D action moves directly), "robot" = the
    remaining proprioception (joints), "object" = task objects and goals (what the sparse inverse model
    should not need to explain an action).
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    groups: tuple[str, ...]

    def __post_init__(self):
        if not (len(self.names) == len(self.sizes) == len(self.groups)):
            raise ValueError("StateLayout: names, sizes and groups differ in length")
        bad = [g for g in self.groups if g not in GROUPS]
        if bad:
            raise ValueError(f"StateLayout: unknown group(s) {bad}; expected one of {GROUPS}")

    @property
    def dim(self) -> int:
        return int(sum(self.sizes))

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def mask(self, group: str) -> np.ndarray:
        """Boolean (D,) mask of the features in `group`."""
        m = np.zeros(self.dim, bool)
        for name, g in zip(self.names, self.groups):
            if g == group:
                m[self.slices[name]] = True
        return m

    def split(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """Named views of a (..., D) state."""
        return {name: state[..., s] for name, s in self.slices.items()}

    def to_dict(self) -> dict:
        return {"names": list(self.names), "sizes": list(self.sizes), "groups": list(self.groups)}

    @staticmethod
    def from_dict(d: dict) -> "StateLayout":
        return StateLayout(tuple(d["names"]), tuple(int(s) for s in d["sizes"]), tuple(d["groups"]))


@dataclass(frozen=True)
class TaskSpec:
    """One manipulation task: which backend runs it and how long an episode may last."""

    name: str
    backend: str  # "robosuite" or "maniskill"
    sim_id: str  # robosuite env name or ManiSkill env id
    horizon: int
    extra: str  # the pip extra that provides the simulator
    post_success_steps: int | None = 10  # episode ends this many steps after the first success; None: at the horizon
    kwargs: dict = field(default_factory=dict)


TASKS: dict[str, TaskSpec] = {
    "Lift": TaskSpec("Lift", "robosuite", "Lift", 150, "robot"),
    "Can": TaskSpec("Can", "robosuite", "PickPlaceCan", 250, "robot"),
    "Square": TaskSpec("Square", "robosuite", "NutAssemblySquare", 300, "robot"),
    # ManiSkill episodes have a fixed length (its own convention), which also keeps every trajectory longer
    # than the world model's 32-step evaluation horizon.
    "PokeCube": TaskSpec("PokeCube", "maniskill", "PokeCube-v1", 50, "maniskill", post_success_steps=None),
    "PullCube": TaskSpec("PullCube", "maniskill", "PullCube-v1", 50, "maniskill", post_success_steps=None),
    "LiftPeg": TaskSpec("LiftPeg", "maniskill", "LiftPegUpright-v1", 80, "maniskill", post_success_steps=None),
}
BACKENDS = {
    "robosuite": "wav.envs.manipulation.robosuite_backend:RobosuiteSim",
    "maniskill": "wav.envs.manipulation.maniskill_backend:ManiSkillSim",
}


SIM_MODULES = {"robosuite": "robosuite", "maniskill": "mani_skill"}


def require_simulator(task: str) -> TaskSpec:
    """The task's spec, or ImportError naming the missing extra (checked without importing the simulator)."""
    import importlib.util

    spec = task_spec(task)
    if importlib.util.find_spec(SIM_MODULES[spec.backend]) is None:
        raise ImportError(
            f"task {task} needs {SIM_MODULES[spec.backend]} (pip install -c constraints.txt -e '.[{spec.extra}]'; "
            "system packages: scripts/setup_robot.sh; see docs/robot.md)"
        )
    return spec


def task_spec(task: str) -> TaskSpec:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown manipulation task {task!r}; choose from {sorted(TASKS)}") from None


class ManipulationEnv(gym.Env):
    """A manipulation task with a flat state, 7-D actions in [-1, 1] and a sparse success reward.

    ## Description
    The task's simulator (robosuite OSC_POSE or ManiSkill pd_ee_delta_pose, CPU) behind one interface.
    An episode ends `post_success_steps` steps after the first success (robosuite tasks: 10), or is
    truncated at the horizon (ManiSkill tasks run their fixed length).

    ## Actions
    Box([-1, 1]^7): end-effector delta position, delta rotation (axis-angle, base frame) and gripper.
    The gripper sign follows the simulator (robosuite +1 closes, ManiSkill +1 opens); experts and
    policies see the raw simulator action.

    ## Observation
    Box(D,) float32 (`layout` names every slice and its group), or with `camera=True` a Dict of that
    state and a 64x64x3 uint8 image.

    ## Features the sparse inverse model should need
    The "ee" group: end-effector pose and gripper opening respond to the action directly; "object"
    features change only through contact, "robot" features (joints) follow the controller.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, camera: bool = False, horizon: int | None = None, post_success_steps: int | None | str = "task"):
        spec = require_simulator(task)
        module, cls = BACKENDS[spec.backend].split(":")
        sim_cls = getattr(importlib.import_module(module), cls)
        self.spec_ = spec
        self.horizon = int(horizon or spec.horizon)
        self.camera = camera
        self.post_success_steps = spec.post_success_steps if post_success_steps == "task" else post_success_steps
        self.sim = sim_cls(spec, camera=camera)
        self.layout: StateLayout = self.sim.layout
        state_space = gym.spaces.Box(-np.inf, np.inf, (self.layout.dim,), np.float32)
        if camera:
            image_space = gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
            self.observation_space = gym.spaces.Dict({"state": state_space, "image": image_space})
        else:
            self.observation_space = state_space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._t = 0
        self._success_at: int | None = None

    @property
    def task(self) -> str:
        return self.spec_.name

    def _obs(self):
        state = self.sim.state()
        return {"state": state, "image": self.sim.image()} if self.camera else state

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31 - 1))
        self.sim.reset(int(seed))
        self._t, self._success_at = 0, None
        return self._obs(), {"success": False}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(ACTION_DIM), -1.0, 1.0)
        self.sim.step(action)
        self._t += 1
        success_now = bool(self.sim.success())
        if success_now and self._success_at is None:
            self._success_at = self._t
        success = self._success_at is not None
        terminated = success and self.post_success_steps is not None and self._t - self._success_at >= self.post_success_steps
        truncated = self._t >= self.horizon and not terminated
        return self._obs(), float(success_now), terminated, truncated, {"success": success, "success_now": success_now}

    def snapshot(self) -> dict:
        """The simulator's full state and the episode's clock, for `restore`: the same actions from a restored
        snapshot visit the same states (a planner's what-if rollouts in the true dynamics)."""
        if not hasattr(self.sim, "snapshot"):
            raise NotImplementedError(f"{self.task}: this backend has no simulator snapshots")
        return {"sim": self.sim.snapshot(), "t": self._t, "success_at": self._success_at}

    def restore(self, snap: dict) -> None:
        self.sim.restore(snap["sim"])
        self._t, self._success_at = snap["t"], snap["success_at"]

    def dense_reward(self) -> float:
        """The simulator's shaped task reward at the current state (privileged; diagnostics only): robosuite's
        shaped reward, or ManiSkill's normalised dense reward."""
        if not hasattr(self.sim, "dense_reward"):
            raise NotImplementedError(f"{self.task}: this backend has no shaped task reward")
        return self.sim.dense_reward()

    def privileged(self) -> dict:
        """Simulator-side quantities for scripted experts (object poses, goal, grasp sites)."""
        return self.sim.privileged()

    def render(self):
        return self.sim.image()

    def close(self):
        self.sim.close()


def make_env(task: str, camera: bool = False, horizon: int | None = None, post_success_steps: int | None | str = "task") -> ManipulationEnv:
    """Factory used by experts, rollouts and benchmarks; post_success_steps "task" takes the task's default."""
    return ManipulationEnv(task, camera=camera, horizon=horizon, post_success_steps=post_success_steps)
