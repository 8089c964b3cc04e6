"""The interactive MiniGrid world of the paper (REFERENCE §2) on Farama minigrid 3.x."""

from __future__ import annotations

ENV_IDS = (
    "WAV/Interact-v0",
    "WAV/KeyDelivery-v0",
    "WAV/BallDelivery-v0",
    "WAV/ObjectMatching-v0",
    "WAV/MultiTask-v0",
)


def register_envs() -> None:
    """Register the WAV env ids with gymnasium (idempotent)."""
    import gymnasium as gym

    entry = "wav.envs.minigrid.env"
    specs = {
        "WAV/Interact-v0": f"{entry}:InteractEnv",
        "WAV/KeyDelivery-v0": "wav.envs.minigrid.tasks:KeyDeliveryEnv",
        "WAV/BallDelivery-v0": "wav.envs.minigrid.tasks:BallDeliveryEnv",
        "WAV/ObjectMatching-v0": "wav.envs.minigrid.tasks:ObjectMatchingEnv",
        "WAV/MultiTask-v0": "wav.envs.minigrid.tasks:MultiTaskEnv",
    }
    for env_id, ep in specs.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ep)
