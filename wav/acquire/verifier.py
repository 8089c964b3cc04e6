"""WAV strategies: score a candidate by the verification cycle (wav.cycle), sparse or dense inverse model,
and the forward-first ablation."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wav.acquire.base import Models, Strategy, register
from wav.config import ScoringConfig
from wav.cycle import Discrete, action_table, choose, distinct_rows, forward_first, verify
from wav.types import TransitionBatch

CHUNK = 256  # start states per cycle call (x K proposals each)


def cycle_scores(cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator, inverse, match_action: bool = True) -> Tensor:
    """Verification score of each candidate (s, a).

    The cycle runs once per distinct start state with K subgoals. With `match_action` in a discrete
    action space, a candidate's score reduces (`scoring.reduce`, default min) the scores of the subgoals
    whose inferred action is its action (Bayes: those are samples of p(s'|s,a); see
    CycleResult.action_scores); otherwise the state's largest score, as in the authors' release (which
    ignores the candidate's action). In a continuous space a candidate is a recorded trajectory whose
    actions are the label acquiring it buys: its score never reads them.
    """
    match_action = match_action and isinstance(models.space, Discrete)
    first, where = distinct_rows(cand.states)
    uniq = cand.states[first]
    per_state = []  # one chunk's cycle at a time: its intermediates are (CHUNK, K, D) tensors
    for i in range(0, len(uniq), CHUNK):
        res = verify(uniq[i : i + CHUNK], models.subgoal, inverse, models.world_model, scoring.k, generator)
        per_state.append(action_table(res, models.space, scoring.reduce, scoring.score_cap) if match_action else res.state_scores())
    scores = torch.cat(per_state)  # (U, n_actions) or (U,)
    return scores[where, cand.actions.long()] if match_action else scores[where]


def cycle_act(strategy: Strategy, state: Tensor, models: Models, scoring: ScoringConfig, outcomes, rng: np.random.Generator, generator: torch.Generator):
    """Algorithm 1 at one state (1, D): subgoals -> inferred actions -> predictions -> the most surprising action."""
    res = verify(state, models.subgoal, strategy.inverse_model(models), models.world_model, scoring.k, generator)
    return choose(res, models.space, scoring.reduce, scoring.score_cap, rng)


@register("wav", subgoal=True, inverse="inverse", act=cycle_act)
def wav_scores(cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator) -> Tensor:
    return cycle_scores(cand, models, scoring, generator, models.inverse)


@register("wav-dense", subgoal=True, inverse="dense_inverse", act=cycle_act)
def wav_dense_scores(cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator) -> Tensor:
    """WAV with the vanilla (unmasked) inverse model."""
    return cycle_scores(cand, models, scoring, generator, models.dense_inverse)


@register("wav-state", subgoal=True, inverse="inverse", reads_actions=False)
def wav_state_scores(cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator) -> Tensor:
    """WAV scored per start state only (the authors' pool variant: the candidate's action is ignored)."""
    return cycle_scores(cand, models, scoring, generator, models.inverse, match_action=False)


# the ablation keeps its seed-set inverse model: it isolates the direction of the cycle
@register("forward-first", inverse="inverse", refits_inverse=False)
def forward_first_scores(cand: TransitionBatch, models: Models, scoring: ScoringConfig, generator: torch.Generator) -> Tensor:
    """The rejected forward-first cycle, per candidate: roll f(s, a), invert, mismatch with a (0/1)."""
    out = []
    for i in range(0, len(cand), CHUNK):
        s, a = cand.states[i : i + CHUNK], cand.actions[i : i + CHUNK]
        res = forward_first(s, lambda count, g, a=a: a, models.inverse, models.world_model, 1, generator)
        out.append(res.scores[:, 0])
    return torch.cat(out)
