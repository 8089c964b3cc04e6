"""Collect labelled MiniGrid transitions (REFERENCE §2) with a scripted or random-play policy, and build
the balanced multi-task-policy test set of the acquisition experiment.

Seeding: episode `e` of a collection with seed `S` resets the env with a seed drawn from
`SeedSequence(S, spawn_key=(0, e))`; the policy's generator is `default_rng(SeedSequence(S,
spawn_key=(1,)))`. No global RNG is touched, so the same arguments give byte-identical arrays.
Terminal transitions (the step onto the goal) are not stored, as in the published files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from wav.data.policies import make_policy
from wav.envs.minigrid.encoding import GRID_SIZE, N_ACTIONS, N_CHANNELS
from wav.data.io import Transitions

# One step of a rollout: (grid, carried, action, next_grid, next_carried, episode index).
Step = tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, int]


def episode_seed(seed: int, episode: int) -> int:
    """The `reset(seed=...)` of episode `episode` of a collection seeded with `seed`."""
    return int(np.random.SeedSequence(seed, spawn_key=(0, episode)).generate_state(1)[0])


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """A registered WAV env (importing `wav.envs` registers them), without gymnasium's env checker; an env
    whose observations are not our grid encoding is refused with a ValueError."""
    import wav.envs  # noqa: F401  (registers the ids)

    try:
        env = gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))
    except gym.error.Error as e:  # unknown or malformed id
        from wav.envs.minigrid import ENV_IDS

        raise ValueError(f"cannot make env {env_id!r}: {e} Use one of {', '.join(ENV_IDS)}") from None
    except TypeError as e:  # an argument the env does not take
        raise ValueError(f"bad env arguments {env_kwargs} for {env_id!r}: {e}") from None
    try:
        _check_observations(env, env_id)
    except ValueError:
        env.close()
        raise
    return env


def _check_observations(env: gym.Env, env_id: str) -> None:
    """Refuse an env whose observations are not our grid encoding: {"grid": (6, 6, 3), "carried": (2,)}."""
    from wav.envs.minigrid import ENV_IDS

    space = env.observation_space
    parts = getattr(space, "spaces", None)
    shapes = {k: getattr(v, "shape", None) for k, v in (parts or {}).items()}
    want = {"grid": (GRID_SIZE, GRID_SIZE, N_CHANNELS), "carried": (2,)}
    if {k: shapes.get(k) for k in want} != want:
        seen = ("{" + ", ".join(f"{k} {v}" if v else k for k, v in shapes.items()) + "}") if parts else f"{type(space).__name__} {space.shape}"
        raise ValueError(f"{env_id!r} observes {seen}, not the WAV grid encoding {{grid {want['grid']}, carried {want['carried']}}}; "
                         f"use one of {', '.join(ENV_IDS)}")


def check_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """Make the env once and check its observations, before any collection starts."""
    make_env(env_id, env_kwargs).close()


def rollout(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    policy: str = "scripted",
    seed: int = 0,
    episode_steps: int | None = None,
) -> Iterator[Step]:
    """Endless stream of stored transitions, episode after episode.

    An episode ends when the env terminates or truncates, or after `episode_steps` steps; the
    terminal step itself is not yielded.
    """
    if episode_steps is not None and episode_steps < 1:
        raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
    env = make_env(env_id, env_kwargs)
    base = env.unwrapped
    pol = make_policy(policy, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))))
    episode = 0
    try:
        while True:
            obs, _ = env.reset(seed=episode_seed(seed, episode))
            pol.reset(base)
            t = 0
            while True:
                a = pol.act(base)
                nobs, _, terminated, truncated, _ = env.step(a)
                t += 1
                if not terminated:
                    yield obs["grid"], obs["carried"], a, nobs["grid"], nobs["carried"], episode
                obs = nobs
                if terminated or truncated or (episode_steps is not None and t >= episode_steps):
                    break
            episode += 1
    finally:
        env.close()


class _Buffer:
    """Preallocated arrays for n transitions in the published encoding."""

    def __init__(self, n: int):
        self.states = np.zeros((n, GRID_SIZE, GRID_SIZE, N_CHANNELS), np.uint8)
        self.next_states = np.zeros_like(self.states)
        self.carried = np.zeros((n, 2), np.int64)
        self.next_carried = np.zeros((n, 2), np.int64)
        self.actions = np.zeros(n, np.int64)
        self.episodes = np.zeros(n, np.int64)
        self.n = 0

    def add(self, step: Step) -> None:
        i = self.n
        self.states[i], self.carried[i], self.actions[i], self.next_states[i], self.next_carried[i], self.episodes[i] = step
        self.n += 1

    def transitions(self) -> tuple[Transitions, np.ndarray]:
        n = self.n
        tr = Transitions.from_arrays(
            self.states[:n], self.carried[:n], self.actions[:n], self.next_states[:n], self.next_carried[:n]
        )
        return tr, self.episodes[:n].copy()


def collect(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    policy: str = "scripted",
    transitions: int = 1000,
    seed: int = 0,
    episode_steps: int | None = None,
    progress: bool = True,
) -> tuple[Transitions, np.ndarray]:
    """Collect `transitions` stored transitions; returns them and their (N,) int64 episode indices.

    policy: "scripted" (the BFS policy of each episode's task; needs a task env) or "random"
    (balanced random play). The last episode is cut when the count is reached.
    """
    if transitions < 0:
        raise ValueError(f"transitions must be >= 0, got {transitions}")
    buf = _Buffer(transitions)
    if transitions:
        with tqdm(total=transitions, disable=not progress, unit="tr", desc=f"collect {env_id}") as bar:
            for step in rollout(env_id, env_kwargs, policy, seed, episode_steps):
                buf.add(step)
                if buf.n % 1000 == 0 or buf.n == transitions:
                    bar.update(buf.n - bar.n)
                if buf.n == transitions:
                    break
    return buf.transitions()


def transition_keys(states: np.ndarray, carried: np.ndarray, actions: np.ndarray) -> list[bytes]:
    """Hashable (state, carried, action) key per transition, for exact duplicate tests."""
    n = len(actions)
    rows = np.concatenate(
        [
            np.asarray(states, np.uint8).reshape(n, -1),  # (N, W*H*C)
            np.asarray(carried, np.int64).reshape(n, 2).astype(np.uint8),
            np.asarray(actions, np.int64).reshape(n, 1).astype(np.uint8),
        ],
        axis=1,
    )
    return [r.tobytes() for r in rows]


def make_testset(
    per_action: int = 1500,
    exclude: Transitions | None = None,
    seed: int = 0,
    env_id: str = "WAV/MultiTask-v0",
    env_kwargs: dict[str, Any] | None = None,
    max_transitions: int | None = None,
    progress: bool = True,
) -> tuple[Transitions, np.ndarray]:
    """A balanced multi-task-policy test set: up to `per_action` transitions of each action.

    Collects scripted transitions in order and keeps each one whose action is not yet full, dropping
    any whose (state, carried, action) appears in `exclude` (e.g. the candidate pool). Stops when all
    actions are full or after `max_transitions` collected transitions (default 100 x per_action; the
    rarest action, swap, occurs about once per two delivery episodes). Returns the set and its episode
    indices; an action may fall short of `per_action` only when the budget runs out.
    """
    if per_action < 1:
        raise ValueError(f"per_action must be >= 1, got {per_action}")
    budget = 100 * per_action if max_transitions is None else max_transitions
    excluded = set() if exclude is None else set(transition_keys(exclude.states, exclude.carried, exclude.actions))
    buf = _Buffer(per_action * N_ACTIONS)
    counts = np.zeros(N_ACTIONS, np.int64)
    with tqdm(total=per_action * N_ACTIONS, disable=not progress, unit="tr", desc="make-testset") as bar:
        for seen, step in enumerate(rollout(env_id, env_kwargs, "scripted", seed), start=1):
            grid, carried, a = step[0], step[1], step[2]
            if counts[a] < per_action and (not excluded or transition_keys(grid[None], carried[None], np.array([a]))[0] not in excluded):
                buf.add(step)
                counts[a] += 1
                if buf.n % 500 == 0:
                    bar.update(buf.n - bar.n)
            if counts.min() >= per_action or seen >= budget:
                break
        bar.update(buf.n - bar.n)
    return buf.transitions()
