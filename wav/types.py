"""Named batch types and the three model protocols that the verification cycle (wav.cycle) plugs together.

Shape letters used across the project:
  N  transitions in a dataset          B  states in a batch          K  subgoals per state
  D  flat state features               A  action classes (discrete) or action dims (continuous)
  W, H  grid width and height (6)       C  grid channels (type, colour, state) = 3
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # torch is heavy to import; the data layer does not need it
    import torch
    from torch import Tensor


@dataclass(frozen=True)
class Transitions:
    """A labelled MiniGrid transition set in the published npz schema (squeezed).

    states, next_states: uint8 (N, W, H, C); carried, next_carried: int64 (N, 2) = (colour, type);
    actions: int64 (N,); rewards: float32 (N,); dones: bool (N,).
    """

    states: np.ndarray
    carried: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    next_carried: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def subset(self, index) -> "Transitions":
        """Rows selected by an index array, slice or boolean mask."""
        return Transitions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: "list[Transitions]") -> "Transitions":
        return Transitions(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Transitions)})

    @staticmethod
    def from_arrays(states, carried, actions, next_states, next_carried, rewards=None, dones=None) -> "Transitions":
        n = len(actions)
        return Transitions(
            states=np.asarray(states, dtype=np.uint8),
            carried=np.asarray(carried, dtype=np.int64).reshape(n, 2),
            actions=np.asarray(actions, dtype=np.int64),
            next_states=np.asarray(next_states, dtype=np.uint8),
            next_carried=np.asarray(next_carried, dtype=np.int64).reshape(n, 2),
            rewards=np.zeros(n, np.float32) if rewards is None else np.asarray(rewards, dtype=np.float32),
            dones=np.zeros(n, bool) if dones is None else np.asarray(dones, dtype=bool),
        )

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (N, D) int64 features of start and next states (see wav.envs.minigrid.encoding)."""
        from wav.envs.minigrid.encoding import to_features

        return to_features(self.states, self.carried), to_features(self.next_states, self.next_carried)


@runtime_checkable
class WorldModel(Protocol):
    """Forward model f(s, a) -> s'. States are (B, D) tensors, actions (B,) long or (B, A) float."""

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """Most likely next state, (B, D), in the same encoding as `states`."""

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Per-sample prediction error (B,) of `next_states` under the model; the verification score."""


@runtime_checkable
class InverseModel(Protocol):
    """Inverse model h(s, s') -> a (deterministic at evaluation)."""

    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        """Inferred action for each pair: (B,) long (discrete) or (B, A) float (continuous)."""


@runtime_checkable
class SubgoalGenerator(Protocol):
    """Action-free generator p(s' | s)."""

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """K plausible next states for each state: (B, D) -> (B, K, D)."""


@runtime_checkable
class WeightedSubgoalGenerator(SubgoalGenerator, Protocol):
    """A subgoal generator that can also list its modes with their probabilities (`verify(..., k=None)`)."""

    def propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Subgoals (B, K, D) and their probabilities under p(s' | s), (B, K) (rows sum to 1; 0 = padding)."""
