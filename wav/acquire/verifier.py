"""WAV strategies: score a candidate by the verification cycle (wav.cycle), sparse or dense inverse model,
and the forward-first ablation."""

from __future__ import annotations

import torch
from torch import Tensor

from wav.acquire.base import Candidates, Models, register
from wav.cycle import CycleResult, distinct_rows, forward_first, uniform_discrete_actions, verify

CHUNK = 256  # start states per cycle call (x K proposals each)


def cycle_scores(cand: Candidates, models: Models, generator: torch.Generator, inverse, match_action: bool = True) -> Tensor:
    """Verification score of each candidate (s, a).

    The cycle runs once per distinct start state with K subgoals. With `match_action`, a candidate's
    score reduces (`models.reduce`, default min) the scores of the subgoals whose inferred action is its
    action (Bayes: those are samples of p(s'|s,a); see CycleResult.action_scores); otherwise the state's
    largest score, as in the authors' release (which ignores the candidate's action).
    """
    first, where = distinct_rows(cand.states)
    uniq = cand.states[first]
    per_state = []  # one chunk's cycle at a time: its intermediates are (CHUNK, K, D) tensors
    for i in range(0, len(uniq), CHUNK):
        res = verify(uniq[i : i + CHUNK], models.subgoal, inverse, models.world_model, models.k, generator)
        per_state.append(action_table(res, models.n_actions, models.reduce, models.score_cap) if match_action else res.state_scores())
    scores = torch.cat(per_state)  # (U, n_actions) or (U,)
    return scores[where, cand.actions.long()] if match_action else scores[where]


def action_table(res: CycleResult, n_actions: int, reduce: str, cap: float | None) -> Tensor:
    """Score of every action id at each state of a cycle result (CycleResult.action_scores): (B, n_actions)."""
    return torch.stack([res.action_scores(torch.full((len(res.states),), a), reduce, cap) for a in range(n_actions)], 1)


@register("wav", needs=("subgoal", "inverse"))
def wav_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    return cycle_scores(cand, models, generator, models.inverse)


@register("wav-dense", needs=("dense_inverse", "subgoal"))
def wav_dense_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """WAV with the vanilla (unmasked) inverse model."""
    return cycle_scores(cand, models, generator, models.dense_inverse)


@register("wav-state", needs=("subgoal", "inverse"))
def wav_state_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """WAV scored per start state only (the authors' pool variant: the candidate's action is ignored)."""
    return cycle_scores(cand, models, generator, models.inverse, match_action=False)


@register("forward-first", needs=("inverse",))
def forward_first_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """The rejected forward-first cycle, per candidate: roll f(s, a), invert, mismatch with a (0/1)."""
    out = []
    for i in range(0, len(cand), CHUNK):
        s, a = cand.states[i : i + CHUNK], cand.actions[i : i + CHUNK]
        res = forward_first(s, lambda count, g, a=a: a, models.inverse, models.world_model, 1, generator)
        out.append(res.scores[:, 0])
    return torch.cat(out)
