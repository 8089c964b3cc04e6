"""Online Algorithm 1 in a manipulation simulator (issue 13 item 6): the pieces `ManipulationDomain` hands to the
shared online loop (`wav.loop.run_online`): an environment that remembers its episode, the current state, the
candidate rows the strategies score, and the labelled trajectories the steps make.

Rows follow the pool protocol's layout (`wav.domains.manipulation.flat_rows`): a state row is one frame s_t
(1, D); WAV's subgoal rows are [s_t, s~_{t+1}, ..., s~_{t+H}] from the action-free generator, its inferred
actions a whole H-step sequence of which the first is executed. A candidate action of the other strategies
(random, ensemble) is scored on the row [s_t, s_t]: the next frame is unknown before acting, the copy marks the
one step the ensemble's members predict (disagreement reads no target).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from wav.types import TransitionBatch


@dataclass
class OnlineEnv:
    """A simulator and its current episode: canonical states (quaternions sign-continuous), actions, an id."""

    env: object
    layout: dict
    episode: int = 0
    states: list = field(default_factory=list)
    actions: list = field(default_factory=list)

    def start(self, state: np.ndarray) -> None:
        from wav.domains.manipulation import continuous_quaternions

        self.states, self.actions = [continuous_quaternions(np.asarray(state, np.float32)[None], self.layout)[0]], []

    def add(self, action: np.ndarray, state: np.ndarray) -> None:
        """Append a step; the new frame's quaternions take the sign closer to the previous frame's."""
        from wav.domains.manipulation import quaternion_slices

        state = np.array(state, np.float32, copy=True)
        for sl in quaternion_slices(self.layout):
            if float(state[sl] @ self.states[-1][sl]) < 0:
                state[sl] *= -1
        self.actions.append(np.asarray(action, np.float32))
        self.states.append(state)


def make_env(task: str, seed: int) -> OnlineEnv:
    from wav.envs.manipulation import make_env as make

    env = make(task)
    online = OnlineEnv(env, env.layout.to_dict())
    reset(online, seed)
    return online


def reset(online: OnlineEnv, seed: int) -> None:
    state, _ = online.env.reset(seed=int(seed))
    online.episode += 1
    online.start(state)


def observe(online: OnlineEnv) -> tuple[Tensor, object]:
    """The current canonical state (1, D) and `outcomes(actions)`: one [s_t, s_t] row per candidate action."""
    state = torch.from_numpy(online.states[-1].copy())[None]

    def outcomes(actions: Tensor) -> TransitionBatch:
        rows = state.repeat(len(actions), 2)  # (K, 2D): the next frame is not known before acting
        return TransitionBatch(rows, actions.float().reshape(len(actions), -1), rows)

    return state, outcomes


def step(online: OnlineEnv, action, action_dim: int) -> tuple[tuple, bool]:
    """Execute the first action of `action` (a WAV choice is an H-step sequence); the record is (episode id,
    step, action, next canonical state)."""
    a = np.clip(np.asarray(action, np.float64).reshape(-1)[:action_dim], -1.0, 1.0)
    state, _, term, trunc, _ = online.env.step(a)
    online.add(a, state)
    return (online.episode, len(online.actions), online.states[-2], a.astype(np.float32), online.states[-1]), bool(term or trunc)


def trajectories(records: list[tuple]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The step records as (states (T+1, D), actions (T, A)) per episode, in the order they were played."""
    out: dict[int, tuple[list, list]] = {}
    for ep, _, s, a, s_next in records:
        states, actions = out.setdefault(ep, ([s], []))
        actions.append(a)
        states.append(s_next)
    return [(np.stack(s), np.stack(a)) for s, a in out.values()]
