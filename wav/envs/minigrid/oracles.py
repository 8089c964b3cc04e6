"""Models that know the true MiniGrid dynamics: references for tests, ceilings for metrics.

They satisfy the protocols of :mod:`wav.types` on the flat feature encoding, so the verification cycle
can run on them: a true world model scores every true successor 0, a true inverse model recovers an
action (the lowest id among aliasing ones) for every reachable subgoal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wav.envs.minigrid.dynamics import step_batch, successors
from wav.envs.minigrid.encoding import N_ACTIONS, N_CELLS, from_features, to_features


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


class TrueWorldModel:
    """f(s, a) = step_batch(s, a); loss = mismatched grid channels / 36 + 10 * squared carried error."""

    def __init__(self, box_toggle: str = "swap"):
        self.box_toggle = box_toggle

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        g, c = from_features(_np(states))
        ng, nc = step_batch(g, c, _np(actions), self.box_toggle)
        return torch.from_numpy(to_features(ng, nc))

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        pred = self.predict(states, actions)
        grid = (pred[:, :-2] != next_states[:, :-2]).float().sum(1) / N_CELLS
        return grid + 10 * ((pred[:, -2:] - next_states[:, -2:]).float() ** 2).sum(1)


class TrueInverseModel:
    """h(s, s') = the lowest action id whose true outcome is s' (0 when none is)."""

    def __init__(self, box_toggle: str = "swap"):
        self.box_toggle = box_toggle

    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        g, c = from_features(_np(states))
        sg, sc = successors(g, c, self.box_toggle)  # (B, 7, W, H, 3), (B, 7, 2)
        b = len(g)
        succ = to_features(sg.reshape(b * N_ACTIONS, *g.shape[1:]), sc.reshape(b * N_ACTIONS, 2)).reshape(b, N_ACTIONS, -1)
        hit = (succ == _np(next_states)[:, None]).all(-1)  # (B, 7)
        return torch.from_numpy(np.where(hit.any(1), hit.argmax(1), 0))


class TrueSubgoalGenerator:
    """p(s' | s) = the true outcome of a uniformly random action."""

    def __init__(self, box_toggle: str = "swap"):
        self.box_toggle = box_toggle

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        b = states.shape[0]
        actions = torch.randint(N_ACTIONS, (b * k,), generator=generator)
        g, c = from_features(_np(states.repeat_interleave(k, 0)))
        ng, nc = step_batch(g, c, _np(actions), self.box_toggle)
        return torch.from_numpy(to_features(ng, nc)).reshape(b, k, -1)
