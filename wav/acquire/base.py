"""What every strategy sees and returns: candidates in, one score per candidate out, top-B with a random mix."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Candidates:
    """N candidate transitions: what a strategy may look at (states, actions) and the privileged truth."""

    states: Tensor  # (N, D) start states
    actions: Tensor  # (N,) or (N, A) the action that would be executed
    next_states: Tensor  # (N, D) true outcomes: only privileged strategies (oracle, progress) read them

    def __len__(self) -> int:
        return int(self.states.shape[0])


@dataclass
class Models:
    """The models a strategy may use in one round; absent ones are None."""

    world_model: Any
    subgoal: Any = None
    inverse: Any = None
    dense_inverse: Any = None
    ensemble: Any = None
    previous_world_model: Any = None  # EMA of past world models (learning progress)
    round: int = 1
    k: int | None = None  # subgoals per state: None = the generator's weighted modes, else K i.i.d. samples
    n_actions: int = 7
    mc_passes: int = 20
    reduce: str = "min"  # how WAV reduces the scores of the subgoals matched to a candidate's action
    score_cap: float | None = None  # WAV's verification scores saturate here (CycleResult.action_scores)


@dataclass(frozen=True)
class Strategy:
    """A named scoring rule with the share of each batch that is drawn uniformly at random instead."""

    name: str
    score_fn: Callable[[Candidates, Models, torch.Generator], Tensor]
    random_mix: float = 0.0
    needs: frozenset = frozenset()  # extra models: "inverse", "dense_inverse", "ensemble", "previous", "subgoal" (the generator)
    privileged: bool = False  # reads the true outcomes

    def score(self, cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
        return self.score_fn(cand, models, generator)


REGISTRY: dict[str, Strategy] = {}


def register(name: str, random_mix: float = 0.0, needs=(), privileged: bool = False):
    """Decorator: add a score function to the registry under `name`."""

    def deco(fn):
        REGISTRY[name] = Strategy(name, fn, random_mix, frozenset(needs), privileged)
        return fn

    return deco


def make_strategy(name: str, random_mix: float | None = None) -> Strategy:
    """The registered strategy `name`, optionally with another random-mix ratio."""
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy '{name}'; known: {sorted(REGISTRY)}")
    s = REGISTRY[name]
    if random_mix is not None:
        if not 0 <= random_mix <= 1:
            raise ValueError(f"random_mix must be in [0, 1], got {random_mix}")
        s = replace(s, random_mix=random_mix)
    return s


def select(scores: np.ndarray, budget: int, random_mix: float, rng: np.random.Generator, available: np.ndarray | None = None) -> np.ndarray:
    """Indices of `budget` candidates: the top (1 - random_mix) share by score, the rest uniformly at random.

    Ties in score are broken at random. `available` (N,) bool excludes candidates already taken.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    avail = np.ones(n, bool) if available is None else np.asarray(available, bool).copy()
    budget = min(int(budget), int(avail.sum()))
    n_random = int(round(random_mix * budget))
    idx = np.flatnonzero(avail)
    order = idx[np.lexsort((rng.random(len(idx)), -scores[idx]))]  # by score desc, ties random
    top = order[: budget - n_random]
    avail[top] = False
    rest = np.flatnonzero(avail)
    rand = rng.choice(rest, size=n_random, replace=False) if n_random else np.empty(0, np.int64)
    return np.concatenate([top, rand]).astype(np.int64)
