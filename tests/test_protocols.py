"""Contracts of the verification core: every model's outputs have the shapes and dtypes the cycle relies
on (checked on a tiny batch, not by isinstance), and the online loop's action choice picks what the
verification cycle says on a case whose right answer is known."""

import numpy as np
import pytest
import torch

from wav.acquire import REGISTRY, Models
from wav.config import (ContinuousInverseConfig, ContinuousWorldModelConfig, InverseConfig, ROUND_PRESETS, ScoringConfig, SubgoalConfig,
                        WorldModelConfig)
from wav.cycle import Box, Discrete, action_table, choose, verify
from wav.domains.minigrid import SPACE, MiniGridDomain
from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import N_ACTIONS, N_FEATURES, TOGGLE, to_features
from wav.envs.minigrid.oracles import TrueInverseModel, TrueSubgoalGenerator, TrueWorldModel
from wav.envs.minigrid.states import random_states
from wav.loop import act
from wav.models import GridWorldModel, MixtureSubgoalGenerator, MLPWorldModel, SparseContinuousInverse, SparseInverseModel
from wav.domains.minigrid import FrozenSubgoals

B, K = 5, 3


def _grid_batch(seed=0):
    rng = np.random.default_rng(seed)
    g, c = random_states(rng, B)
    a = rng.integers(0, N_ACTIONS, B)
    ng, nc = step_batch(g, c, a)
    return torch.from_numpy(to_features(g, c)), torch.from_numpy(a), torch.from_numpy(to_features(ng, nc))


def _check_world_model(wm, s, a, sn, state_dtype):
    pred = wm.predict(s, a)
    assert pred.shape == s.shape and pred.dtype == state_dtype
    loss = wm.loss(s, a, sn)
    assert loss.shape == (len(s),) and loss.dtype.is_floating_point and torch.isfinite(loss).all() and (loss >= 0).all()
    assert wm.training_loss(s, a, sn, generator=torch.Generator().manual_seed(0)).shape == ()


@pytest.mark.parametrize("members", [1, 2])
def test_grid_world_model_contract(members):
    s, a, sn = _grid_batch()
    wm = GridWorldModel(WorldModelConfig(hidden=8, layers=1, members=members)).eval()
    _check_world_model(wm, s, a, sn, torch.int64)
    u = wm.uncertainty(s, a, 3, torch.Generator().manual_seed(0))
    d = wm.disagreement(s, a)
    assert u.shape == d.shape == (B,) and (u >= -1e-6).all() and (d >= -1e-6).all()
    assert wm.members == members and (members > 1 or torch.allclose(d, torch.zeros(B), atol=1e-6))


def test_grid_inverse_and_subgoal_contracts():
    s, a, sn = _grid_batch(1)
    for dense in (False, True):
        inv = SparseInverseModel(InverseConfig(hidden=8, dense=dense)).eval()
        act_, mask = inv.infer_with_mask(s, sn)
        assert act_.shape == (B,) and act_.dtype == torch.int64 and ((act_ >= 0) & (act_ < N_ACTIONS)).all()
        assert mask.shape == (B, N_FEATURES) and set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(inv.infer(s, sn), act_)
    gen = FrozenSubgoals(MixtureSubgoalGenerator(SubgoalConfig(hidden=8, layers=1, codes=4, code_hidden=8)).eval())
    sg = gen.sample(s, K, torch.Generator().manual_seed(0))
    assert sg.shape == (B, K, N_FEATURES) and sg.dtype == torch.int64
    modes, w = gen.propose(s)
    assert modes.shape[:2] == w.shape and modes.shape[0] == B and modes.dtype == torch.int64
    torch.testing.assert_close(w.sum(1), torch.ones(B, dtype=w.dtype))


def test_continuous_contracts_and_box_matching():
    ds, da = 6, 3
    g = torch.Generator().manual_seed(0)
    s, a, sn = torch.randn(B, ds, generator=g), torch.rand(B, da, generator=g) * 2 - 1, torch.randn(B, ds, generator=g)
    wm = MLPWorldModel(ContinuousWorldModelConfig(state_dim=ds, action_dim=da, hidden=8, members=2)).eval()
    _check_world_model(wm, s, a, sn, torch.float32)
    assert wm.disagreement(s, a).shape == (B,)
    inv = SparseContinuousInverse(ContinuousInverseConfig(state_dim=ds, action_dim=da, hidden=8)).eval()
    out, mask = inv.infer_with_mask(s, sn)
    assert out.shape == (B, da) and out.dtype == torch.float32 and mask.shape == (B, ds)
    box = Box(da, tolerance=0.1)
    near = a[:, None] + 0.05  # RMS 0.05 <= 0.1 x half-width 1
    far = a[:, None] + 0.5
    assert box.match(torch.cat([near, far], 1), a).tolist() == [[True, False]] * B
    assert box.sample(7, g).shape == (7, da) and (box.sample(100, g).abs() <= 1).all()


def test_cycle_scores_continuous_actions_through_the_box_space():
    """The cycle runs unchanged on float states and actions; a candidate's score comes from the subgoals
    whose inferred action lies within the box's tolerance of it."""
    from wav.cycle import CycleResult

    acts = torch.tensor([[[0.0, 0.0], [0.9, 0.9], [0.02, -0.01]]])  # (1, 3, 2)
    res = CycleResult(torch.zeros(1, 4), torch.zeros(1, 3, 4), acts, torch.zeros(1, 3, 4), torch.tensor([[1.0, 7.0, 3.0]]))
    space = Box(2)
    assert res.action_scores(torch.tensor([[0.0, 0.0]]), "min", space=space).item() == 1.0
    assert res.action_scores(torch.tensor([[0.9, 0.9]]), "mean", space=space).item() == 7.0
    with pytest.raises(ValueError, match="action space"):
        res.action_scores(torch.tensor([[0.0, 0.0]]), "min")


class ToggleBlindWorldModel(TrueWorldModel):
    """Right about every action except toggle, whose outcome it predicts as 'nothing happens'."""

    def predict(self, states, actions):
        return torch.where((actions == TOGGLE)[:, None], states, super().predict(states, actions))


def _toggle_state():
    """A state where toggling changes the world (a key or ball in front of the agent)."""
    rng = np.random.default_rng(3)
    g, c = random_states(rng, 400)
    ng, nc = step_batch(g, c, np.full(400, TOGGLE))
    i = int(np.flatnonzero((to_features(ng, nc) != to_features(g, c)).any(1))[0])
    return torch.from_numpy(to_features(g[i : i + 1], c[i : i + 1]))


@pytest.mark.parametrize("k", [None, 64])
def test_online_wav_chooses_the_action_the_world_model_gets_wrong_and_random_does_not(k):
    """Known answer: the world model is wrong only about toggle, and toggle acts here. WAV (the cycle's
    choice through `wav.loop.act`) must pick toggle every time; random must not."""
    state = _toggle_state()
    s0 = state[0].numpy()
    models = Models(world_model=ToggleBlindWorldModel(), space=SPACE, subgoal=WeightedTrueSubgoals(), inverse=TrueInverseModel())
    cfg = ROUND_PRESETS["paper"]
    cfg = cfg if k is None else type(cfg)(scoring=ScoringConfig(k=k))

    def outcomes(actions):
        from wav.types import TransitionBatch

        g, c = (x.reshape(len(actions), *x.shape[1:]) for x in _decode(np.repeat(s0[None], len(actions), 0)))
        ng, nc = step_batch(g, c, actions.numpy())
        return TransitionBatch(state.repeat(len(actions), 1), actions, torch.from_numpy(to_features(ng, nc)))

    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    wav = [int(act(REGISTRY["wav"], state, models, cfg, outcomes, rng, gen)) for _ in range(10)]
    rand = [int(act(REGISTRY["random"], state, models, cfg, outcomes, rng, gen)) for _ in range(30)]
    assert wav == [TOGGLE] * 10
    assert len(set(rand)) > 3


def _decode(features):
    from wav.envs.minigrid.encoding import from_features

    return from_features(features)


class WeightedTrueSubgoals(TrueSubgoalGenerator):
    """The true successor set as weighted modes: every action's outcome with probability 1/7."""

    def propose(self, states):
        g, c = _decode(states.numpy())
        b = len(g)
        succ = [to_features(*step_batch(g, c, np.full(b, a))) for a in range(N_ACTIONS)]
        return torch.from_numpy(np.stack(succ, 1)), torch.full((b, N_ACTIONS), 1.0 / N_ACTIONS)


def test_action_table_and_choice_agree_with_a_hand_computed_case():
    from wav.cycle import CycleResult

    acts = torch.tensor([[2, 2, 4, 6]])
    res = CycleResult(torch.zeros(1, 1), torch.zeros(1, 4, 1), acts, torch.zeros(1, 4, 1), torch.tensor([[1.0, 5.0, 9.0, 3.0]]),
                      weights=torch.tensor([[0.25, 0.25, 0.25, 0.25]]))
    table = action_table(res, Discrete(7), "min", None)[0]
    assert table[2].item() == 1.0 and table[4].item() == 9.0 and table[6].item() == 3.0
    assert int(choose(res, Discrete(7), "min", None, np.random.default_rng(0))) == 4
    iid = CycleResult(res.states, res.subgoals, acts, res.predictions, res.scores)
    assert int(choose(iid, Discrete(7), "min", None, np.random.default_rng(0))) == 4  # the most surprising subgoal's action


def test_minigrid_domain_fits_every_part_and_evaluates():
    from wav.data.collect import collect
    from wav.domains.base import PoolData

    tr = collect("WAV/MultiTask-v0", None, "scripted", 120, 0, progress=False)[0]
    d = MiniGridDomain(models="debug", afs_states=5)
    for part in ("world_model", "inverse", "dense_inverse"):
        assert d.fit(part, tr, seed=0) is not None
    assert d.fit("ensemble", tr, seed=0, members=2).members == 2
    with pytest.raises(ValueError, match="unknown model part"):
        d.fit("critic", tr, seed=0)
    wm = d.fit("world_model", tr, seed=0)
    row = d.evaluate(wm, PoolData(seed_set=tr, pool=tr, test=tr, probes=d.probes(tr)))
    assert {"pred_error", "dynamic_accuracy", "per_action_error", "afs"} <= set(row)
    batch = d.batch(tr)
    assert batch.states.shape == (len(tr), N_FEATURES) and batch.actions.dtype == torch.int64
    assert verify(batch.states[:3], TrueSubgoalGenerator(), TrueInverseModel(), wm, 4, torch.Generator().manual_seed(0)).scores.shape == (3, 4)


def test_medoid_refit_keeps_the_fit_that_agrees_with_the_others():
    """Three 'fits' predicting constants 0, 0.1 and 5 under an absolute-error loss: pairwise sums 10.2, 10.0
    and 19.8, so the medoid is the second; the fits get seeds seed + 1000 j."""
    from wav.loop import medoid_fit, probe_rows
    from wav.types import TransitionBatch

    class Constant:
        def __init__(self, c):
            self.c = c

        def predict(self, states, actions):
            return torch.full((len(states), 1), self.c)

        def loss(self, states, actions, next_states):
            return (next_states[:, 0] - self.c).abs()

    seeds, values = [], {5: 0.0, 1005: 0.1, 2005: 5.0}

    def fit(seed):
        seeds.append(seed)
        return Constant(values[seed])

    cand = TransitionBatch(torch.arange(10.0).reshape(5, 2), torch.zeros(5, dtype=torch.long), torch.zeros(5, 2))
    probe = probe_rows(cand, Discrete(3), np.random.default_rng(0), n=4)
    assert len(probe) == 12 and probe.actions.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(probe.states[:4], probe.states[8:])  # the same 4 states under every action
    model, k = medoid_fit(fit, 3, 5, probe)
    assert seeds == [5, 1005, 2005] and k == 1 and model.c == 0.1
    with pytest.raises(ValueError, match="n >= 1"):
        medoid_fit(fit, 0, 5, probe)
