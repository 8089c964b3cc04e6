"""The verification cycle (REFERENCE §1): states -> K subgoals -> inferred actions -> predictions -> scores.

This is the one pipeline that the WAV strategies, the online loop (Algorithm 1), the plots and the tests
share. It is domain-agnostic: states are (B, D) tensors and the three models are anything that satisfies
the protocols of :mod:`wav.types` (MiniGrid grids or manipulation state vectors alike).

The reverse cycle scores a proposed subgoal s~ by the world model's loss l(s~, f(s, h(s, s~))): high means
the world model cannot realise a plausible transition under the action that reaches it. The
forward-first cycle (rejected by the paper, kept as an ablation) samples actions, rolls the world model
forward and asks the inverse model whether it recovers the sampled action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from wav.types import InverseModel, SubgoalGenerator, WorldModel

REDUCTIONS = ("expected", "conditional", "min", "median", "mean")


class ActionSpace(Protocol):
    """What the cycle needs to know about a domain's actions."""

    def match(self, inferred: Tensor, actions: Tensor) -> Tensor:
        """Which inferred actions (B, K[, A]) are the candidate actions (B[, A]): (B, K) bool."""

    def sample(self, count: int, generator: torch.Generator | None) -> Tensor:
        """`count` actions drawn uniformly from the space: (count,) or (count, A)."""


@dataclass(frozen=True)
class Discrete:
    """Action ids 0..n-1; an inferred action matches a candidate when they are equal."""

    n: int
    names: tuple[str, ...] = ()

    def match(self, inferred: Tensor, actions: Tensor) -> Tensor:
        return inferred == actions[:, None]  # (B, K)

    def sample(self, count: int, generator: torch.Generator | None) -> Tensor:
        return torch.randint(self.n, (count,), generator=generator)

    def all(self) -> Tensor:
        """Every action id, (n,)."""
        return torch.arange(self.n)

    def counts(self, actions: np.ndarray) -> list[int]:
        """How often each action id occurs (the `chosen_actions` record of a round)."""
        return np.bincount(np.asarray(actions, np.int64), minlength=self.n).tolist()


@dataclass(frozen=True)
class Box:
    """Continuous actions in [low, high]^dim. An inferred action matches a candidate when their RMS distance
    per dimension is at most `tolerance` x the half-width of the box (default 0.1: 10% of the range)."""

    dim: int
    low: float = -1.0
    high: float = 1.0
    tolerance: float = 0.1

    def match(self, inferred: Tensor, actions: Tensor) -> Tensor:
        rms = ((inferred - actions[:, None]) ** 2).mean(-1).sqrt()  # (B, K)
        return rms <= self.tolerance * (self.high - self.low) / 2

    def sample(self, count: int, generator: torch.Generator | None) -> Tensor:
        return self.low + (self.high - self.low) * torch.rand(count, self.dim, generator=generator)

    def counts(self, actions: np.ndarray) -> list[float]:
        """Mean action per dimension over the finite rows (the `chosen_actions` record of a round; NaN
        rows are padding, e.g. of trajectories shorter than the longest)."""
        a = np.asarray(actions, np.float64).reshape(-1, self.dim)
        a = a[np.isfinite(a).all(1)]
        return a.mean(0).tolist() if len(a) else [float("nan")] * self.dim


def tie_broken_argmax(values: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the largest value, ties (e.g. all zero) broken uniformly at random."""
    top = np.flatnonzero(values == values.max())
    return int(top[rng.integers(len(top))])


@dataclass(frozen=True)
class CycleResult:
    """Every intermediate of one pass; shapes use B states and K candidates per state."""

    states: Tensor  # (B, D)
    subgoals: Tensor  # (B, K, D): proposed next states (forward-first: the world model's rollouts)
    actions: Tensor  # (B, K) or (B, K, A): the candidate action of each subgoal
    predictions: Tensor  # (B, K, D): the world model's predicted outcome of each candidate action
    scores: Tensor  # (B, K): verification score, higher = the world model is more likely wrong
    weights: Tensor | None = None  # (B, K): probability of each proposal under p(s' | s); None = uniform 1/K

    @property
    def best(self) -> Tensor:
        """Index (B,) of the most surprising (non-padding) candidate of each state (Algorithm 1's argmax)."""
        return torch.where(self.proposal_weights() > 0, self.scores, torch.full_like(self.scores, -torch.inf)).argmax(1)

    def best_actions(self) -> Tensor:
        """The action to execute at each state: (B,) or (B, A)."""
        idx = self.best
        return self.actions[torch.arange(len(idx)), idx]

    def state_scores(self) -> Tensor:
        """One score per state (B,): the largest verification score among its (non-padding) candidates."""
        return torch.where(self.proposal_weights() > 0, self.scores, torch.full_like(self.scores, -torch.inf)).max(1).values

    def proposal_weights(self) -> Tensor:
        """(B, K) probability of each proposal: the generator's mode probabilities, or 1/K for i.i.d. samples."""
        if self.weights is not None:
            return self.weights
        return torch.full_like(self.scores, 1.0 / self.scores.shape[1])

    def action_scores(self, actions: Tensor, reduce: str = "min", cap: float | None = None, space: ActionSpace | None = None) -> Tensor:
        """Score of executing a given action at each state (B,).

        By Bayes, p(s' | s, a) is proportional to p(s' | s) p(a | s, s'): the proposals whose inferred
        action equals `actions` are the samples of the candidate's outcome, and the candidate's score
        reduces their verification scores.
        * "expected": sum_k w_k 1[a^_k = a] l_k, the expected verification score over
          p(s' | s) of the outcomes that action a reaches, i.e. P(a | s) x E[l | s, a]. An outcome the
          generator finds unlikely (most of its errors are) counts only by its probability.
        * "conditional": the same normalised by P(a | s), i.e. E[l | s, a].
        * "min" (what WAV uses): does the prediction agree with ANY proposed outcome of a (robust to a
          wrong proposal when a right one exists); "median", "mean": unweighted over the matched proposals.
        For min/median/mean, where no proposal maps to the action the same reduction over all K stands
        in; for expected/conditional such a candidate scores 0.

        `cap` saturates every verification score before the reduction (a robust loss): an implausible
        proposal the world model rightly rejects (say a hand "emptied" into grey, id 5, instead of a red
        object, id 0: 10 x 25 in the published error) then weighs no more than a plain wrong outcome.
        `space` matches inferred and candidate actions (default: equality of discrete ids).
        """
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be expected, conditional, min, median or mean, got {reduce!r}")
        if space is None and actions.dtype.is_floating_point:
            raise ValueError("continuous actions need an action space (wav.cycle.Box) to match inferred actions")
        match = space.match(self.actions, actions) if space is not None else self.actions == actions[:, None]  # (B, K)
        w = self.proposal_weights()
        scores = self.scores if cap is None else self.scores.clamp(max=cap)
        if reduce in ("expected", "conditional"):
            wm = w * match  # (B, K)
            total = (wm * scores).sum(1)
            return total if reduce == "expected" else total / wm.sum(1).clamp_min(1e-12)
        fill = {"min": float("inf"), "median": float("nan"), "mean": float("nan")}[reduce]
        real = w > 0  # weight-0 entries pad a state's proposals and never count
        matched = torch.where(match & real, scores, torch.full_like(scores, fill))
        every = torch.where(real, scores, torch.full_like(scores, fill))
        if reduce == "min":
            per, every = matched.min(1).values, every.min(1).values
        elif reduce == "median":
            per, every = matched.nanmedian(1).values, every.nanmedian(1).values
        else:
            per, every = matched.nanmean(1), every.nanmean(1)
        return torch.where((match & real).any(1), per, every)


def action_table(res: CycleResult, space: Discrete, reduce: str, cap: float | None) -> Tensor:
    """Score of every action of a discrete space at each state of a cycle result (`action_scores`): (B, n)."""
    return torch.stack([res.action_scores(torch.full((len(res.states),), int(a)), reduce, cap, space) for a in space.all()], 1)


def choose(res: CycleResult, space: ActionSpace, reduce: str, cap: float | None, rng: np.random.Generator) -> Tensor:
    """Algorithm 1's action at the first state of `res`: the most surprising one, ties broken at random.

    With K i.i.d. subgoals (no weights) it is the inferred action of the most surprising subgoal, as
    Algorithm 1 is written; with the generator's weighted modes it is the action (of a discrete space)
    whose proposed outcomes are the most surprising under the reduction `reduce`."""
    if res.weights is None:
        return res.actions[0, tie_broken_argmax(res.scores[0].numpy(), rng)]
    if not isinstance(space, Discrete):
        raise ValueError("choosing among weighted modes needs a discrete action space; pass k to sample subgoals i.i.d.")
    return space.all()[tie_broken_argmax(action_table(res, space, reduce, cap)[0].double().numpy(), rng)]


def predict_and_loss(world_model: WorldModel, states: Tensor, actions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The world model's prediction and its loss on `targets`, in one pass when the model offers it.

    A model with `predict_and_losses` runs once per distinct (state, action) and scores every target
    against its row's prediction (the verification cycle maps many subgoals of a state to one action)."""
    if hasattr(world_model, "predict_and_losses"):
        first, where = distinct_rows(states, actions.reshape(len(actions), -1))
        if len(first) < len(states):
            pred, loss = world_model.predict_and_losses(states[first], actions[first], targets, where)
            return pred[where], loss
    if hasattr(world_model, "predict_and_loss"):
        return world_model.predict_and_loss(states, actions, targets)
    return world_model.predict(states, actions), world_model.loss(states, actions, targets)


def distinct_rows(*parts: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows of the integer tensors `parts` side by side: (index of each distinct row's first
    occurrence, in sorted row order; for every input row, the index of its distinct row).

    Float inputs (manipulation) are not deduplicated: every row is its own.
    """
    n = parts[0].shape[0]
    if any(p.dtype.is_floating_point for p in parts) or n == 0:
        idx = torch.arange(n)
        return idx, idx
    rows = torch.cat([p.reshape(n, -1) for p in parts], 1).numpy()
    if rows.min() >= 0 and rows.max() < 256:  # pack to bytes: a fast 1-d unique over fixed-width keys
        keys = np.ascontiguousarray(rows.astype(np.uint8)).view(np.dtype((np.void, rows.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return torch.from_numpy(first), torch.from_numpy(inverse.reshape(-1))


def _flat(states: Tensor, k: int) -> Tensor:
    return states.repeat_interleave(k, 0)  # (B*K, D): each state once per candidate


@torch.no_grad()
def verify(
    states: Tensor,
    subgoal: SubgoalGenerator,
    inverse: InverseModel,
    world_model: WorldModel,
    k: int | None,
    generator: torch.Generator | None = None,
) -> CycleResult:
    """The reverse cycle: s -> s~ ~ p(s'|s) -> a^ = h(s, s~) -> s^ = f(s, a^); score l(s~, s^).

    `k` proposals are sampled i.i.d. (uniform weights); `k=None` asks the generator for its weighted
    modes instead (a `wav.types.WeightedSubgoalGenerator`: subgoals (B, K, D), probabilities (B, K)).
    """
    b = states.shape[0]
    if k is None:
        if not hasattr(subgoal, "propose"):
            raise ValueError(f"{type(subgoal).__name__} has no weighted proposals (propose); pass k to sample i.i.d.")
        subgoals, weights = subgoal.propose(states)  # (B, K, D), (B, K)
        k = subgoals.shape[1]
    else:
        subgoals, weights = subgoal.sample(states, k, generator), None  # (B, K, D)
    s = _flat(states, k)  # (B*K, D)
    g = subgoals.reshape(b * k, -1)  # (B*K, D)
    pairs, where = distinct_rows(s, g)  # most of the K proposals repeat: run h and f once per distinct (s, s~)
    actions = inverse.infer(s[pairs], g[pairs])  # (U,) or (U, A)
    predictions, scores = predict_and_loss(world_model, s[pairs], actions, g[pairs])  # (U, D), (U,)
    actions, predictions, scores = actions[where], predictions[where], scores[where]  # back to (B*K, ...)
    return CycleResult(
        states=states,
        subgoals=subgoals,
        actions=actions.reshape(b, k, *actions.shape[1:]),
        predictions=predictions.reshape(b, k, -1),
        scores=scores.reshape(b, k),
        weights=weights,
    )


@torch.no_grad()
def forward_first(
    states: Tensor,
    sample_actions: Callable[[int, torch.Generator | None], Tensor],
    inverse: InverseModel,
    world_model: WorldModel,
    k: int,
    generator: torch.Generator | None = None,
) -> CycleResult:
    """The rejected forward-first cycle: a ~ uniform, s^ = f(s, a), a~ = h(s, s^); score = action mismatch.

    `sample_actions(count, generator)` draws the candidate actions (an action space's `sample`, or the
    candidates' own actions).

    Discrete actions score 1 where the inverse model does not recover the sampled action; continuous ones
    the squared distance. `subgoals` holds the world model's own rollouts, `predictions` the same.
    """
    b = states.shape[0]
    s = _flat(states, k)  # (B*K, D)
    actions = sample_actions(b * k, generator)  # (B*K,) or (B*K, A)
    rollouts = world_model.predict(s, actions)  # (B*K, D)
    recovered = inverse.infer(s, rollouts)
    if actions.dtype.is_floating_point:
        scores = ((recovered - actions) ** 2).sum(-1)
    else:
        scores = (recovered != actions).float()
    rollouts = rollouts.reshape(b, k, -1)
    return CycleResult(states, rollouts, actions.reshape(b, k, *actions.shape[1:]), rollouts, scores.reshape(b, k))
