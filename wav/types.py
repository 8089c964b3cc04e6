"""Named batch types and the model protocols that the verification cycle (wav.cycle) plugs together.

Every domain (wav.domains: MiniGrid grids, manipulation state vectors) turns its data into these batches
and its models satisfy these protocols; nothing here knows a domain.

Shape letters used across the project:
  N  transitions in a dataset          B  states (or windows) in a batch   K  subgoals per state
  D  flat state features               A  action classes (discrete) or action dims (continuous)
  T  steps of a window                 H  steps of an open-loop rollout
  W, H  grid width and height (6)       C  grid channels (type, colour, state) = 3
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is heavy to import; the data layer does not need it
    import torch
    from torch import Tensor


@dataclass(frozen=True)
class TransitionBatch:
    """N labelled transitions (s, a, s') as tensors: what one-step models train on and strategies score.

    For a strategy these are candidates: it may read `states` and `actions`; `next_states` is the true
    outcome, which only privileged strategies (oracle, progress) read.
    """

    states: Tensor  # (N, D) start states
    actions: Tensor  # (N,) long (discrete) or (N, A) float (continuous)
    next_states: Tensor  # (N, D) true outcomes

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def subset(self, index) -> "TransitionBatch":
        """Rows selected by an index tensor, slice or boolean mask."""
        return TransitionBatch(*(getattr(self, f.name)[index] for f in fields(self)))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """(states, actions, next_states): the arguments of a one-step model's `training_loss`."""
        return self.states, self.actions, self.next_states


@dataclass(frozen=True)
class SequenceBatch:
    """B windows of T consecutive steps, for latent sequence models (an RSSM).

    states (B, T, D); actions (B, T, A): a_t is the action taken at s_t (so s_{t+1} follows it);
    is_first (B, T) bool: a new episode starts at step t (the model resets its latent state there).
    """

    states: Tensor
    actions: Tensor
    is_first: Tensor

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def subset(self, index) -> "SequenceBatch":
        return SequenceBatch(*(getattr(self, f.name)[index] for f in fields(self)))


@runtime_checkable
class WorldModel(Protocol):
    """One-step forward model f(s, a) -> s'. States are (B, D) tensors, actions (B,) long or (B, A) float."""

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """Most likely next state, (B, D), in the same encoding as `states`."""

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Per-sample prediction error (B,) of `next_states` under the model; the verification score."""


@runtime_checkable
class UncertainWorldModel(WorldModel, Protocol):
    """A world model that can say how unsure it is (the `uncertainty` and `ensemble` baselines)."""

    def uncertainty(self, states: Tensor, actions: Tensor, passes: int, generator: torch.Generator) -> Tensor:
        """Epistemic uncertainty (B,) of the outcome from `passes` stochastic passes (MC dropout)."""

    def disagreement(self, states: Tensor, actions: Tensor) -> Tensor:
        """Disagreement (B,) of the members of an ensemble (0 for one member)."""


@runtime_checkable
class SequenceWorldModel(Protocol):
    """A latent sequence world model (an RSSM): observe a context, then roll forward open-loop.

    The latent state is opaque to the cycle: only the model builds and reads it.
    """

    def observe(self, context: SequenceBatch) -> Any:
        """Posterior latent state after the last step of each window (B windows)."""

    def imagine(self, latent: Any, actions: Tensor) -> Tensor:
        """Open-loop prior rollout from `latent` under actions (B, H, A): decoded states (B, H, D)."""


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
