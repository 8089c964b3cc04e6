"""Manipulation worlds of the robot setting (REFERENCE §6): robosuite Lift/Can/Square, ManiSkill3
PokeCube/PullCube/LiftPeg, behind one gymnasium interface with a flat state and named feature slices.

The simulators are optional extras (`pip install -e '.[robot,maniskill]'`, scripts/setup_robot.sh) and
are imported only when an env is made, so `import wav` works without them.
"""

from wav.envs.manipulation.core import ACTION_DIM, IMAGE_SIZE, TASKS, ManipulationEnv, StateLayout, TaskSpec, make_env

ENV_IDS = tuple(f"WAV/{task}-v0" for task in TASKS)


def register_envs() -> None:
    """Register WAV/<task>-v0 with gymnasium (idempotent; the simulator is imported only on gym.make)."""
    import gymnasium as gym

    for task, env_id in zip(TASKS, ENV_IDS):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="wav.envs.manipulation.core:ManipulationEnv", kwargs={"task": task},
                         disable_env_checker=True)


register_envs()

__all__ = ["ACTION_DIM", "ENV_IDS", "IMAGE_SIZE", "TASKS", "ManipulationEnv", "StateLayout", "TaskSpec", "make_env", "register_envs"]
