"""The `Domain` protocol: everything the domain-agnostic loops (wav.loop) need to know about a world.

A domain is handed to the loops the way dreamerv3's runner is handed `make_agent` / `make_env`: it makes
and fits its models from a preset, turns its datasets into tensor batches, owns the action space,
evaluates a world model, and (for the online loop) steps its environment and gives the true outcome of a
candidate action. `docs/adding-a-domain.md` walks through writing one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from wav.config import TrainConfig
from wav.types import TransitionBatch

PARTS = ("world_model", "inverse", "dense_inverse", "ensemble")
"""the seed-set models a domain fits (names of wav.acquire.Models fields)"""


@dataclass
class PoolData:
    """The data of one experiment, in the domain's own dataset type (anything `Domain.batch` reads)."""

    seed_set: Any
    """the labelled seed set (warm-up)"""
    pool: Any
    """the candidate pool (empty for the online loop)"""
    test: Any
    """the test set every round is evaluated on"""
    extra_tests: dict[str, Any] = field(default_factory=dict)
    """more test sets evaluated every round (metrics prefixed `<name>/`)"""
    probes: Any = None
    """domain-specific evaluation inputs (MiniGrid: the start states of the action following score)"""


class Domain(Protocol):
    """A world the verification core can run in (see the module docstring)."""

    space: Any
    """the action space (wav.cycle.Discrete or wav.cycle.Box)"""

    def batch(self, data: Any) -> TransitionBatch:
        """The dataset as one-step transition tensors."""

    def concat(self, parts: list[Any]) -> Any:
        """Datasets joined (labelled set + acquired candidates)."""

    def subset(self, data: Any, index: np.ndarray) -> Any:
        """Rows `index` of a dataset."""

    def fit(self, part: str, data: Any, seed: int, train: TrainConfig | None = None, model: Any = None, members: int = 1) -> Any:
        """Fit one model (`part` in PARTS) on `data`: a new one from the domain's preset (`members` for an
        ensemble), or, given `model`, continue fitting it; `train` None = the preset's seed-set schedule."""

    def evaluate(self, world_model: Any, data: PoolData) -> dict:
        """One round's metrics of a world model (JSON-ready; `pred_error` is the headline number)."""

    # ---- the online loop (Algorithm 1) only

    def make_env(self, seed: int) -> Any:
        """A fresh environment, reset with `seed`."""

    def reset(self, env: Any, seed: int) -> None:
        """Start a new episode."""

    def observe(self, env: Any) -> tuple[Any, Callable[[Any], TransitionBatch]]:
        """The current state as a (1, D) tensor, and `outcomes(actions)`: the TransitionBatch of those
        actions from this state with their true next states (what the privileged strategies read)."""

    def step(self, env: Any, action: Any) -> tuple[Any, bool]:
        """Execute `action`: a record of the labelled transition, and whether the episode ended."""

    def transitions(self, records: list[Any]) -> Any:
        """The records of `step` as a dataset."""
