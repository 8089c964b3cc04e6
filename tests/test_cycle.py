"""The verification cycle on hand-computed cases (STYLE habit 10)."""

import numpy as np
import torch

from wav.cycle import forward_first, uniform_discrete_actions, verify
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
    res = forward_first(s, uniform_discrete_actions(N_ACTIONS), TrueInverseModel(), TrueWorldModel(), k=7, generator=torch.Generator().manual_seed(0))
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
