"""WAV strategies: score a candidate by the verification cycle (wav.cycle), sparse or dense inverse model,
and the forward-first ablation."""

from __future__ import annotations

import torch
from torch import Tensor

from wav.acquire.base import Candidates, Models, register
from wav.cycle import distinct_rows, forward_first, uniform_discrete_actions, verify

CHUNK = 2048


def cycle_scores(cand: Candidates, models: Models, generator: torch.Generator, inverse, match_action: bool = True) -> Tensor:
    """Verification score of each candidate (s, a).

    The cycle runs once per distinct start state with K subgoals. With `match_action`, a candidate's
    score reduces (`models.reduce`, default min) the scores of the subgoals whose inferred action is its
    action (Bayes: those are samples of p(s'|s,a); see CycleResult.action_scores); otherwise the state's
    largest score, as in the authors' release (which ignores the candidate's action).
    """
    first, where = distinct_rows(cand.states)
    uniq = cand.states[first]
    per_state, per_action = [], []
    for i in range(0, len(uniq), CHUNK):
        res = verify(uniq[i : i + CHUNK], models.subgoal, inverse, models.world_model, models.k, generator)
        per_state.append(res.state_scores())
        if match_action:
            # score of every action id for each state: (B, n_actions)
            acts = torch.arange(models.n_actions)
            per_action.append(torch.stack([res.action_scores(acts[j].expand(len(res.states)), models.reduce, models.score_cap) for j in range(models.n_actions)], 1))
    if not match_action:
        return torch.cat(per_state)[where]
    table = torch.cat(per_action)  # (U, n_actions)
    return table[where, cand.actions.long()]


@register("wav")
def wav_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    return cycle_scores(cand, models, generator, models.inverse)


@register("wav-dense", needs=("dense_inverse",))
def wav_dense_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """WAV with the vanilla (unmasked) inverse model."""
    return cycle_scores(cand, models, generator, models.dense_inverse)


@register("wav-state")
def wav_state_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """WAV scored per start state only (the authors' pool variant: the candidate's action is ignored)."""
    return cycle_scores(cand, models, generator, models.inverse, match_action=False)


@register("forward-first")
def forward_first_scores(cand: Candidates, models: Models, generator: torch.Generator) -> Tensor:
    """The rejected forward-first cycle, per candidate: roll f(s, a), invert, mismatch with a (0/1)."""
    out = []
    for i in range(0, len(cand), CHUNK):
        s, a = cand.states[i : i + CHUNK], cand.actions[i : i + CHUNK]
        res = forward_first(s, lambda count, g, a=a: a, models.inverse, models.world_model, 1, generator)
        out.append(res.scores[:, 0])
    return torch.cat(out)
