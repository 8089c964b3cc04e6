"""Strategies and selection on hand-computed cases."""

import numpy as np
import pytest
import torch

from wav.acquire import REGISTRY, Models, make_strategy, select
from wav.config import ScoringConfig
from wav.cycle import Discrete
from wav.models.world_model import categorical_bald
from wav.types import TransitionBatch
from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import N_ACTIONS, TOGGLE, to_features
from wav.envs.minigrid.oracles import TrueInverseModel, TrueSubgoalGenerator, TrueWorldModel
from wav.envs.minigrid.states import random_states


def test_registry_has_every_named_strategy_with_published_mixes():
    for name in ("random", "uncertainty", "ensemble", "progress", "wav", "wav-dense", "forward-first", "oracle"):
        assert name in REGISTRY
    assert REGISTRY["uncertainty"].random_mix == 0.3 and REGISTRY["progress"].random_mix == 0.3
    assert REGISTRY["oracle"].random_mix == 0.1 and REGISTRY["wav"].random_mix == 0.0
    assert make_strategy("uncertainty", 0.0).random_mix == 0.0
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("curiosity")


def test_select_top_and_random_share():
    scores = np.arange(100.0)
    rng = np.random.default_rng(0)
    top = select(scores, 10, 0.0, rng)
    assert sorted(top) == list(range(90, 100))
    mixed = select(scores, 10, 0.3, rng)
    assert len(set(mixed)) == 10 and set(range(93, 100)) <= set(mixed)
    avail = np.ones(100, bool)
    avail[95:] = False
    assert sorted(select(scores, 5, 0.0, rng, avail)) == [90, 91, 92, 93, 94]


def _candidates(n=300, seed=0):
    rng = np.random.default_rng(seed)
    g, c = random_states(rng, n)
    a = rng.integers(0, N_ACTIONS, n)
    ng, nc = step_batch(g, c, a)
    return TransitionBatch(torch.from_numpy(to_features(g, c)), torch.from_numpy(a), torch.from_numpy(to_features(ng, nc)))


class ToggleBlindWorldModel(TrueWorldModel):
    def predict(self, states, actions):
        pred = super().predict(states, actions)
        return torch.where((actions == TOGGLE)[:, None], states, pred)

    def loss(self, states, actions, next_states):
        pred = self.predict(states, actions)
        return (pred != next_states).float().sum(1)


def test_oracle_ranks_the_true_worst_candidate_first():
    cand = _candidates()
    models = Models(world_model=ToggleBlindWorldModel())
    scores = REGISTRY["oracle"].score(cand, models, ScoringConfig(), torch.Generator().manual_seed(0))
    truth = (models.world_model.predict(cand.states, cand.actions) != cand.next_states).float().sum(1)
    assert int(scores.argmax()) == int(truth.argmax()) and torch.equal(scores, truth)
    # the capped diagnostic saturates at WAV's cap and is the oracle below it
    capped = REGISTRY["oracle-capped"].score(cand, Models(world_model=ToggleBlindWorldModel()), ScoringConfig(score_cap=1.0), torch.Generator())
    assert torch.equal(capped, truth.clamp(max=1.0))


def test_wav_with_true_generator_and_inverse_finds_the_blind_spot():
    cand = _candidates(400, seed=1)
    models = Models(world_model=ToggleBlindWorldModel(), space=Discrete(N_ACTIONS), subgoal=TrueSubgoalGenerator(), inverse=TrueInverseModel())
    scores = REGISTRY["wav"].score(cand, models, ScoringConfig(k=32), torch.Generator().manual_seed(0))
    oracle = REGISTRY["oracle"].score(cand, models, ScoringConfig(), torch.Generator())
    # every candidate the world model gets wrong is a toggle that changes the world; WAV scores them > 0
    wrong = oracle > 0
    assert wrong.any() and torch.all(scores[wrong] > 0)
    assert scores[wrong].min() > scores[cand.actions != TOGGLE].max()


def test_bald_zero_when_passes_agree_and_positive_when_they_disagree():
    from wav.models import nets

    norm = lambda x, sl: nets.block_log_softmax(x, sl)  # noqa: E731  (the models return normalised log-probs)
    logits = torch.randn(1, 4, 36, 21).expand(5, -1, -1, -1)
    carried = norm(torch.randn(1, 4, 17).expand(5, -1, -1), nets.CARRIED_SLICES)
    same = categorical_bald(norm(logits, nets.CELL_SLICES), carried, nets.CELL_SLICES, nets.CARRIED_SLICES)
    assert torch.allclose(same, torch.zeros(4), atol=1e-5)
    noisy = categorical_bald(norm(logits + 3 * torch.randn(5, 4, 36, 21), nets.CELL_SLICES), carried, nets.CELL_SLICES, nets.CARRIED_SLICES)
    assert torch.all(noisy > 0.1)


def test_bald_matches_the_per_head_definition():
    """H[mean p] - mean H[p] per head and cell, max over cells, summed over heads, + 10 x Var[E id]."""
    from wav.models import nets

    g = torch.Generator().manual_seed(0)
    c = nets.block_log_softmax(2 * torch.randn(6, 3, 36, 21, generator=g), nets.CELL_SLICES)
    k = nets.block_log_softmax(2 * torch.randn(6, 3, 17, generator=g), nets.CARRIED_SLICES)
    ent = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    want = sum((ent(c[..., sl].exp().mean(0)) - ent(c[..., sl].exp()).mean(0)).max(-1).values for sl in nets.CELL_SLICES)
    want = want + 10 * sum((k[..., sl].exp() * torch.arange(sl.stop - sl.start)).sum(-1).var(0, unbiased=False) for sl in nets.CARRIED_SLICES)
    torch.testing.assert_close(categorical_bald(c, k, nets.CELL_SLICES, nets.CARRIED_SLICES), want)


def test_progress_is_true_loss_in_round_one_and_difference_after():
    cand = _candidates(50)
    wm = ToggleBlindWorldModel()
    r1 = REGISTRY["progress"].score(cand, Models(world_model=wm), ScoringConfig(), torch.Generator())
    assert torch.equal(r1, REGISTRY["oracle"].score(cand, Models(world_model=wm), ScoringConfig(), torch.Generator()))
    r2 = REGISTRY["progress"].score(cand, Models(world_model=TrueWorldModel(), previous_world_model=wm), ScoringConfig(), torch.Generator())
    assert torch.allclose(r2, r1 - TrueWorldModel().loss(cand.states, cand.actions, cand.next_states))


def test_strategies_declare_what_they_use():
    assert REGISTRY["wav"].inverse == "inverse" and REGISTRY["wav"].subgoal and REGISTRY["wav"].act is not None
    assert REGISTRY["wav-dense"].inverse == "dense_inverse" and REGISTRY["wav-dense"].parts == ("dense_inverse",)
    assert REGISTRY["ensemble"].parts == ("ensemble",) and REGISTRY["progress"].progress and REGISTRY["progress"].privileged
    assert REGISTRY["oracle"].oracle and not REGISTRY["oracle-capped"].oracle
    assert not REGISTRY["forward-first"].refits_inverse and REGISTRY["random"].parts == ()


def test_uncertainty_refuses_a_model_without_an_uncertainty_signal():
    """No silent fallback: a world model that cannot give MC-dropout passes, or an ensemble of one, is refused."""
    from wav.config import WorldModelConfig
    from wav.models import GridWorldModel

    cand = _candidates(20)
    with pytest.raises(ValueError, match="uncertainty"):
        REGISTRY["uncertainty"].score(cand, Models(world_model=ToggleBlindWorldModel()), ScoringConfig(mc_passes=2), torch.Generator())
    no_dropout = GridWorldModel(WorldModelConfig(hidden=8, layers=1, dropout=0.0))
    with pytest.raises(ValueError, match="dropout"):
        REGISTRY["uncertainty"].score(cand, Models(world_model=no_dropout), ScoringConfig(mc_passes=2), torch.Generator())
    one = GridWorldModel(WorldModelConfig(hidden=8, layers=1))
    with pytest.raises(ValueError, match="2 members"):
        REGISTRY["ensemble"].score(cand, Models(world_model=one, ensemble=one), ScoringConfig(), torch.Generator())
    two = GridWorldModel(WorldModelConfig(hidden=8, layers=1, members=2))
    assert REGISTRY["ensemble"].score(cand, Models(world_model=one, ensemble=two), ScoringConfig(), torch.Generator()).shape == (20,)
