"""ManiSkill3 (SAPIEN) backend for PokeCube, PullCube and LiftPeg: Panda, pd_ee_delta_pose, CPU sim.

SAPIEN needs a Vulkan driver even without a GPU (Mesa lavapipe >= 24; scripts/setup_robot.sh).
"""

from __future__ import annotations

import copy

import numpy as np

from wav.envs.manipulation.core import IMAGE_SIZE, StateLayout, TaskSpec


def _np(x) -> np.ndarray:
    """First (only) env of a batched ManiSkill tensor as float64 numpy."""
    x = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    return x[0].astype(np.float64) if x.ndim >= 1 and x.shape[0] == 1 else x.astype(np.float64)


class ManiSkillSim:
    def __init__(self, spec: TaskSpec, camera: bool = False):
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401  (registers the ManiSkill env ids)

        kwargs = dict(obs_mode="state_dict", control_mode="pd_ee_delta_pose", sim_backend="cpu", reward_mode="sparse")
        if camera:
            kwargs.update(render_mode="rgb_array", human_render_camera_configs=dict(width=IMAGE_SIZE, height=IMAGE_SIZE))
        # Our wrapper owns the horizon; ManiSkill's own TimeLimit is lifted out of the way.
        self.env = gym.make(spec.sim_id, max_episode_steps=10**6, **kwargs, **spec.kwargs)
        self.camera = camera
        obs, _ = self.env.reset(seed=0)
        self._obs, self._info = obs, {}
        extra = [k for k in obs["extra"] if k != "tcp_pose"]
        names = ("tcp_pose", "gripper_qpos", "gripper_qvel", "arm_qpos", "arm_qvel", *extra)
        groups = ("ee", "ee", "ee", "robot", "robot") + ("object",) * len(extra)
        sizes = tuple(np.size(self._feature(obs, n)) for n in names)
        self.layout = StateLayout(names, sizes, groups)

    @staticmethod
    def _feature(obs, name: str) -> np.ndarray:
        qpos, qvel = _np(obs["agent"]["qpos"]), _np(obs["agent"]["qvel"])
        split = {"gripper_qpos": qpos[7:], "gripper_qvel": qvel[7:], "arm_qpos": qpos[:7], "arm_qvel": qvel[:7]}
        return split[name] if name in split else _np(obs["extra"][name]).ravel()

    def reset(self, seed: int) -> None:
        # A plain reset keeps PhysX's contact and solver caches from the previous episode, so an episode
        # replayed in a used env drifts from the same seed in a fresh one (1e-2 by step 10 of PullCube).
        # Rebuilding the scene costs ~0.4 s and makes every episode a function of its seed alone.
        self._obs, _ = self.env.reset(seed=seed, options={"reconfigure": True})
        self._info = {}

    def step(self, action: np.ndarray) -> None:
        self._obs, _, _, _, self._info = self.env.step(action.astype(np.float32)[None])

    def snapshot(self) -> dict:
        """Poses and velocities of every actor and articulation (ManiSkill's state dict), the controller's
        state, the env's step counter and the last observation, for `restore`. PhysX's contact and solver
        caches are not part of it, so 8 steps replayed from a restored snapshot match an uninterrupted run to
        ~1e-5 in positions and ~1e-2 in joint velocities rather than bit for bit (tests/test_robot.py); two
        replays from the same snapshot agree with each other far more closely (`wav.planning.probe`'s replay
        check)."""
        u = self.env.unwrapped
        return {"physx": copy.deepcopy(u.get_state_dict()), "controller": copy.deepcopy(u.agent.controller.get_state()),
                "elapsed": copy.deepcopy(getattr(u, "_elapsed_steps", None)), "obs": copy.deepcopy(self._obs),
                "info": copy.deepcopy(self._info)}

    def restore(self, snap: dict) -> None:
        u = self.env.unwrapped
        u.set_state_dict(copy.deepcopy(snap["physx"]))
        u.agent.controller.set_state(copy.deepcopy(snap["controller"]))
        if snap["elapsed"] is not None:
            u._elapsed_steps = copy.deepcopy(snap["elapsed"])
        self._obs, self._info = copy.deepcopy(snap["obs"]), copy.deepcopy(snap["info"])

    def dense_reward(self) -> float:
        """ManiSkill's normalised shaped reward (in [0, 1]) at the current state; these tasks' shaped rewards
        read the state only, not the action."""
        u = self.env.unwrapped
        return float(_np(u.compute_normalized_dense_reward(obs=None, action=None, info=u.evaluate())))

    def success(self) -> bool:
        return bool(_np(self._info["success"])) if "success" in self._info else False

    def state(self) -> np.ndarray:
        return np.concatenate([self._feature(self._obs, n) for n in self.layout.names]).astype(np.float32)

    def image(self) -> np.ndarray:
        if not self.camera:
            raise RuntimeError("this env was made without camera=True")
        img = self.env.render()
        img = img.cpu().numpy() if hasattr(img, "cpu") else np.asarray(img)
        return np.ascontiguousarray(img.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, img.shape[-1])[0, ..., :3]).astype(np.uint8)

    def privileged(self) -> dict:
        u = self.env.unwrapped
        tcp = u.agent.tcp.pose
        out = {"tcp_pos": _np(tcp.p), "tcp_quat": _np(tcp.q), "gripper_qpos": _np(u.agent.robot.get_qpos())[7:]}
        for name in ("cube", "obj", "peg", "goal_region"):
            actor = getattr(u, name, None)
            if actor is not None:
                out[f"{name}_pos"], out[f"{name}_quat"] = _np(actor.pose.p), _np(actor.pose.q)
        return out

    def close(self) -> None:
        self.env.close()
