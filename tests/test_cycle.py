"""The verification cycle on hand-computed cases (STYLE habit 10)."""

import numpy as np
import pytest
import torch

from wav.cycle import Discrete, forward_first, verify
from wav.envs.minigrid.encoding import N_ACTIONS, TOGGLE, to_features
from wav.envs.minigrid.oracles import TrueInverseModel, TrueSubgoalGenerator, TrueWorldModel
from wav.envs.minigrid.states import random_states


def _states(n=64, seed=0):
    g, c = random_states(np.random.default_rng(seed), n)
    return torch.from_numpy(to_features(g, c))


class CorruptedWorldModel(TrueWorldModel):
    """Knows every action except one: toggle is predicted as a no-op."""

    def predict(self, states, actions):
        pred = super().predict(states, actions)
        return torch.where((actions == TOGGLE)[:, None], states, pred)

    def loss(self, states, actions, next_states):
        pred = self.predict(states, actions)
        grid = (pred[:, :-2] != next_states[:, :-2]).float().sum(1) / 36
        return grid + 10 * ((pred[:, -2:] - next_states[:, -2:]).float() ** 2).sum(1)


def test_perfect_world_model_scores_zero():
    s = _states()
    res = verify(s, TrueSubgoalGenerator(), TrueInverseModel(), TrueWorldModel(), k=8, generator=torch.Generator().manual_seed(0))
    assert res.subgoals.shape == (64, 8, s.shape[1]) and res.actions.shape == (64, 8)
    assert res.predictions.shape == res.subgoals.shape and res.scores.shape == (64, 8)
    assert torch.all(res.scores == 0)
    assert torch.equal(res.predictions, res.subgoals)


def test_corrupted_action_is_found():
    s = _states(200, seed=1)
    res = verify(s, TrueSubgoalGenerator(), TrueInverseModel(), CorruptedWorldModel(), k=16, generator=torch.Generator().manual_seed(0))
    high = res.scores > 0
    assert high.any()
    # every surprising candidate is a toggle whose true outcome differs from "nothing happens"
    assert torch.all(res.actions[high] == TOGGLE)
    best = res.best_actions()
    assert torch.all(best[res.state_scores() > 0] == TOGGLE)
    # per-action scores: toggle carries all the surprise
    tog = res.action_scores(torch.full((200,), TOGGLE))
    fwd = res.action_scores(torch.full((200,), 2))
    assert tog.sum() > 0 and torch.all(fwd[(res.actions == 2).any(1)] == 0)


def test_forward_first_with_true_models_recovers_actions_up_to_aliasing():
    s = _states(100, seed=2)
    res = forward_first(s, Discrete(N_ACTIONS).sample, TrueInverseModel(), TrueWorldModel(), k=7, generator=torch.Generator().manual_seed(0))
    # mismatches only where two actions alias to the same outcome (e.g. a blocked forward = no-op)
    inv = TrueInverseModel().infer(s.repeat_interleave(7, 0), res.predictions.reshape(700, -1)).reshape(100, 7)
    assert torch.equal((inv != res.actions).float(), res.scores)


def test_deduplicated_pass_equals_row_by_row():
    """verify runs h and f once per distinct (s, s~) pair; the result must equal the naive pass."""
    s = _states(40, seed=3)
    gen = torch.Generator().manual_seed(1)
    wm, inv, sg = CorruptedWorldModel(), TrueInverseModel(), TrueSubgoalGenerator()
    res = verify(s, sg, inv, wm, k=12, generator=gen)
    flat_s = s.repeat_interleave(12, 0)
    flat_g = res.subgoals.reshape(480, -1)
    a = inv.infer(flat_s, flat_g)
    assert torch.equal(res.actions.reshape(-1), a)
    assert torch.equal(res.predictions.reshape(480, -1), wm.predict(flat_s, a))
    assert torch.equal(res.scores.reshape(-1), wm.loss(flat_s, a, flat_g))


def test_action_score_reductions():
    from wav.cycle import CycleResult

    scores = torch.tensor([[1.0, 5.0, 3.0, 9.0]])
    actions = torch.tensor([[2, 2, 2, 4]])
    res = CycleResult(torch.zeros(1, 3), torch.zeros(1, 4, 3), actions, torch.zeros(1, 4, 3), scores)
    two, six = torch.tensor([2]), torch.tensor([6])
    assert res.action_scores(two, "min").item() == 1.0
    assert res.action_scores(two, "median").item() == 3.0
    assert res.action_scores(two, "mean").item() == 3.0
    assert res.action_scores(six, "min").item() == 1.0  # no subgoal maps to 6: all K stand in
    assert res.best_actions().item() == 4 and res.state_scores().item() == 9.0


def test_expected_reductions_use_proposal_weights():
    """expected = sum_k w_k 1[a_k = a] l_k; conditional divides by P(a | s); unknown action -> 0."""
    from wav.cycle import CycleResult

    scores = torch.tensor([[1.0, 5.0, 3.0, 9.0]])
    actions = torch.tensor([[2, 2, 2, 4]])
    weights = torch.tensor([[0.5, 0.1, 0.2, 0.2]])
    res = CycleResult(torch.zeros(1, 3), torch.zeros(1, 4, 3), actions, torch.zeros(1, 4, 3), scores, weights)
    two, four, six = torch.tensor([2]), torch.tensor([4]), torch.tensor([6])
    assert res.action_scores(two, "expected").item() == pytest.approx(0.5 * 1 + 0.1 * 5 + 0.2 * 3)
    assert res.action_scores(two, "conditional").item() == pytest.approx((0.5 + 0.5 + 0.6) / 0.8)
    assert res.action_scores(four, "expected").item() == pytest.approx(0.2 * 9)
    assert res.action_scores(six, "expected").item() == 0.0
    assert res.action_scores(four, "min", cap=4.0).item() == 4.0  # scores saturate before the reduction
    assert res.action_scores(two, "expected", cap=2.0).item() == pytest.approx(0.5 * 1 + 0.1 * 2 + 0.2 * 2)
    uniform = CycleResult(torch.zeros(1, 3), torch.zeros(1, 4, 3), actions, torch.zeros(1, 4, 3), scores)
    assert uniform.action_scores(two, "expected").item() == pytest.approx((1 + 5 + 3) / 4)
    with pytest.raises(ValueError, match="reduce"):
        res.action_scores(two, "max")


def test_weighted_proposals_of_a_perfect_world_model_score_zero():
    """verify(k=None) takes the generator's weighted modes; with the true world model every valid
    proposal scores 0, and the weights of each state sum to 1."""
    from wav.config import SubgoalConfig
    from wav.models import MixtureSubgoalGenerator

    s = _states(30, seed=4)
    sg = MixtureSubgoalGenerator(SubgoalConfig(hidden=8, layers=1, codes=4, code_hidden=8))
    res = verify(s, sg, TrueInverseModel(), TrueWorldModel(), k=None)
    assert res.subgoals.shape == (30, 4, s.shape[1]) and res.weights.shape == (30, 4)
    torch.testing.assert_close(res.weights.sum(1), torch.ones(30))
    valid = TrueInverseModel().infer(s.repeat_interleave(4, 0), res.subgoals.reshape(120, -1)).reshape(30, 4)
    ok = (TrueWorldModel().predict(s.repeat_interleave(4, 0), valid.reshape(-1)).reshape(30, 4, -1) == res.subgoals).all(-1)
    assert torch.all(res.scores[ok] == 0)
    with pytest.raises(ValueError, match="propose"):
        verify(s, TrueSubgoalGenerator(), TrueInverseModel(), TrueWorldModel(), k=None)
