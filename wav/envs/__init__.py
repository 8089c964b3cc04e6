"""Environments: the interactive MiniGrid world (registered on import) and, optionally, manipulation."""

from wav.envs.minigrid import register_envs

register_envs()
