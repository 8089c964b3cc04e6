"""robosuite (MuJoCo) backend for Lift, Can and Square: Panda arm, OSC_POSE delta control at 20 Hz.

State features follow robomimic's low-dim convention (eef pose, gripper, object-state) plus joint
positions and velocities so that the state is Markov for a world model.
"""

from __future__ import annotations

import copy
import os

import numpy as np

from wav.envs.manipulation.core import IMAGE_SIZE, StateLayout, TaskSpec

EE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_gripper_qvel")
ROBOT_KEYS = ("robot0_joint_pos", "robot0_joint_vel")
CAMERA = "agentview"


class RobosuiteSim:
    """One robosuite env; `state()` is the flat feature vector of the last observation."""

    def __init__(self, spec: TaskSpec, camera: bool = False):
        os.environ.setdefault("MUJOCO_GL", "egl")
        import robosuite
        from robosuite.controllers import load_composite_controller_config

        controller = load_composite_controller_config(controller="BASIC", robot="Panda")
        if controller["body_parts"]["right"]["type"] != "OSC_POSE":
            raise RuntimeError("robosuite's BASIC Panda controller is no longer OSC_POSE; pin robosuite==1.5.2")
        # Only the arm exists on a Panda; dropping the other parts silences robosuite's warnings.
        controller["body_parts"] = {"right": controller["body_parts"]["right"]}
        self.camera = camera
        self.env = robosuite.make(
            spec.sim_id,
            robots="Panda",
            controller_configs=controller,
            has_renderer=False,
            has_offscreen_renderer=camera,
            use_camera_obs=camera,
            camera_names=CAMERA,
            camera_heights=IMAGE_SIZE,
            camera_widths=IMAGE_SIZE,
            use_object_obs=True,
            reward_shaping=False,
            control_freq=20,
            horizon=10**6,
            ignore_done=True,
            hard_reset=False,
            seed=0,
            **spec.kwargs,
        )
        self._obs = self.env.reset()
        object_keys = tuple(
            k for k in self._obs if not k.startswith("robot0_") and k != "object-state" and not k.endswith("_image")
        )
        keys = EE_KEYS + ROBOT_KEYS + object_keys
        groups = ("ee",) * len(EE_KEYS) + ("robot",) * len(ROBOT_KEYS) + ("object",) * len(object_keys)
        self.layout = StateLayout(keys, tuple(int(np.size(self._obs[k])) for k in keys), groups)

    def reset(self, seed: int) -> None:
        # Placement samplers hold a reference to env.rng, so reseed that generator in place.
        self.env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self._obs = self.env.reset()

    def step(self, action: np.ndarray) -> None:
        self._obs, _, _, _ = self.env.step(action)

    def success(self) -> bool:
        return bool(self.env._check_success())

    def dense_reward(self) -> float:
        """robosuite's shaped task reward at the current state (Lift: reaching + grasping, or the lift bonus):
        privileged, for diagnostics only (the task-reward ceiling of `wav.planning.probe`)."""
        before = self.env.reward_shaping
        self.env.reward_shaping = True
        try:
            return float(self.env.reward(None))
        finally:
            self.env.reward_shaping = before

    def _stateful(self) -> list:
        """Python objects whose fields carry state from one step to the next: the arm and gripper controllers
        (OSC goal, gripper command), the gripper models (their smoothed action), the observables (sampling
        phase, last value) and the env itself (clocks)."""
        robots = self.env.robots
        return ([c for r in robots for c in r.part_controllers.values()] + [g for r in robots for g in r.gripper.values()]
                + list(self.env._observables.values()) + [self.env])

    @staticmethod
    def _fields(obj) -> dict:
        # owned arrays and scalars only: an array that is a view (of MuJoCo's buffers) is refreshed by the sim
        return {k: copy.deepcopy(v) for k, v in vars(obj).items()
                if isinstance(v, (bool, int, float, np.generic)) or (isinstance(v, np.ndarray) and v.base is None)}

    def snapshot(self) -> dict:
        """Everything the next steps depend on; `restore(snapshot)` then the same actions give the same states
        bit for bit (tested)."""
        sim = self.env.sim
        return {"mujoco": sim.get_state().flatten().copy(), "warmstart": np.array(sim.data.qacc_warmstart),
                "objects": [self._fields(o) for o in self._stateful()], "obs": copy.deepcopy(self._obs)}

    def restore(self, snap: dict) -> None:
        sim = self.env.sim
        sim.set_state_from_flattened(snap["mujoco"])
        sim.data.qacc_warmstart[:] = snap["warmstart"]
        sim.forward()
        for obj, fields in zip(self._stateful(), snap["objects"]):
            for k, v in fields.items():
                setattr(obj, k, copy.deepcopy(v))
        self._obs = copy.deepcopy(snap["obs"])

    def state(self) -> np.ndarray:
        return np.concatenate([np.ravel(self._obs[k]) for k in self.layout.names]).astype(np.float32)

    def image(self) -> np.ndarray:
        if not self.camera:
            raise RuntimeError("this env was made without camera=True")
        return np.ascontiguousarray(self._obs[f"{CAMERA}_image"][::-1]).astype(np.uint8)  # MuJoCo renders bottom-up

    def privileged(self) -> dict:
        env, data = self.env, self.env.sim.data
        eef_site = env.robots[0].eef_site_id["right"]
        out = {
            "eef_pos": np.array(data.site_xpos[eef_site]),
            "eef_mat": np.array(data.site_xmat[eef_site]).reshape(3, 3),
            "gripper_qpos": np.array(self._obs["robot0_gripper_qpos"]),
            "joint_pos": np.array(self._obs["robot0_joint_pos"]),
        }
        name = type(env).__name__
        if name == "Lift":
            out["object_pos"] = np.array(data.body_xpos[env.cube_body_id])
            out["object_mat"] = np.array(data.body_xmat[env.cube_body_id]).reshape(3, 3)
        elif name == "PickPlaceCan":
            body = env.obj_body_id["Can"]
            out["object_pos"] = np.array(data.body_xpos[body])
            out["target_pos"] = np.array(env.target_bin_placements[env.object_to_id["can"]])
        elif name == "NutAssemblySquare":
            nut = env.nuts[env.nut_to_id["square"]]
            out["object_pos"] = np.array(data.body_xpos[env.obj_body_id[nut.name]])
            out["object_mat"] = np.array(data.body_xmat[env.obj_body_id[nut.name]]).reshape(3, 3)
            out["handle_pos"] = np.array(data.site_xpos[env.sim.model.site_name2id(nut.important_sites["handle"])])
            out["target_pos"] = np.array(data.body_xpos[env.peg1_body_id])
        return out

    def close(self) -> None:
        self.env.close()
