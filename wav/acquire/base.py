"""What every strategy sees and returns: candidates in, one score per candidate out, top-B with a random mix.

A `Strategy` declares what it uses (which inverse model it reads and refits, the generator, an ensemble,
the previous world model, the true outcomes) as fields, so the loops never branch on a strategy's name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from wav.config import ScoringConfig
from wav.types import InverseModel, SubgoalGenerator, TransitionBatch, WorldModel


@dataclass
class Models:
    """The models of one round and the action space they act in; absent models are None."""

    world_model: WorldModel
    space: Any = None
    """the domain's action space (wav.cycle.Discrete or Box)"""
    subgoal: SubgoalGenerator | None = None
    inverse: InverseModel | None = None
    """the sparse inverse model"""
    dense_inverse: InverseModel | None = None
    """the vanilla (unmasked) inverse model"""
    ensemble: WorldModel | None = None
    """an ensemble world model (members >= 2) for the `ensemble` baseline"""
    previous_world_model: WorldModel | None = None
    """EMA of past world models (learning progress)"""


# Act: (strategy, state (1, D), models, scoring, outcomes, rng, generator) -> the action to execute.
# `outcomes(actions)` gives the TransitionBatch of those actions from this state with their true outcomes.
Act = Callable[..., Tensor | int]


@dataclass(frozen=True)
class Strategy:
    """A named scoring rule, what it uses, and the share of each batch drawn uniformly at random instead."""

    name: str
    score_fn: Callable[[TransitionBatch, Models, ScoringConfig, torch.Generator], Tensor]
    random_mix: float = 0.0
    inverse: str | None = None
    """the inverse model it reads: "inverse" (sparse) or "dense_inverse" (vanilla); None: none"""
    refits_inverse: bool = True
    """refit that inverse model on all labels after each round (Algorithm 1 updates h with f)"""
    subgoal: bool = False
    """uses the action-free subgoal generator"""
    ensemble: bool = False
    """uses an ensemble world model (fit on the seed set and refit each round)"""
    progress: bool = False
    """keeps an EMA of past world models (models.previous_world_model)"""
    privileged: bool = False
    """reads the candidates' true outcomes"""
    oracle: bool = False
    """its scores are the true error itself (the rank correlation reuses them)"""
    reads_actions: bool = True
    """scores a candidate by its own action (WAV: only in a discrete action space, where a candidate is an
    (s, a) pair; a trajectory's actions are never read)"""
    act: Act | None = None
    """online action choice (Algorithm 1); None: score every action of a discrete space on its true outcome"""

    def reads_actions_in(self, space) -> bool:
        """Whether its score reads the candidates' own actions in `space`: the cycle strategies (those with
        subgoals) match a candidate's action only in a discrete space (`wav.acquire.verifier.cycle_scores`)."""
        from wav.cycle import Discrete

        return bool(self.reads_actions and (isinstance(space, Discrete) or not self.subgoal))

    def score(self, cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator) -> Tensor:
        return self.score_fn(cand, models, scoring, generator)

    @property
    def parts(self) -> tuple[str, ...]:
        """The seed-set models it needs besides the world model (names of `Models` fields)."""
        return tuple(p for p, used in (("inverse", self.inverse == "inverse"), ("dense_inverse", self.inverse == "dense_inverse"),
                                       ("ensemble", self.ensemble)) if used)

    def inverse_model(self, models: Models) -> InverseModel | None:
        return getattr(models, self.inverse) if self.inverse else None


REGISTRY: dict[str, Strategy] = {}


def register(name: str, random_mix: float = 0.0, **uses):
    """Decorator: add a score function to the registry under `name` (`uses`: the other Strategy fields)."""

    def deco(fn):
        REGISTRY[name] = Strategy(name, fn, random_mix, **uses)
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
