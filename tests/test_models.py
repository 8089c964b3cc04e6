"""Contracts of the MiniGrid and continuous models on small hand-made cases (shapes, protocols,
the published Prediction Error, ensembles, MC-dropout, determinism, the mask)."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wav.config import ContinuousInverseConfig, ContinuousWorldModelConfig, InverseConfig, SubgoalConfig, TrainConfig, WorldModelConfig
from wav.envs.minigrid.encoding import N_ACTIONS, N_FEATURES, to_features
from wav.envs.minigrid.states import random_states
from wav.evaluate import true_successors
from wav.models import GridWorldModel, MixtureSubgoalGenerator, MLPWorldModel, SparseContinuousInverse, SparseInverseModel
from wav.models import nets
from wav.models.inverse import token_mask_to_features
from wav.models.mask import binary_mask
from wav.models.world_model import prediction_error
from wav.train import build, fit
from wav.types import InverseModel, SubgoalGenerator, WorldModel

SMALL_WM = WorldModelConfig(hidden=8, layers=2)


def _states(n=8, seed=0):
    g, c = random_states(np.random.default_rng(seed), n)
    return torch.from_numpy(to_features(g, c))


def test_models_satisfy_protocols():
    assert isinstance(GridWorldModel(SMALL_WM), WorldModel)
    assert isinstance(SparseInverseModel(InverseConfig(hidden=8)), InverseModel)
    assert isinstance(MixtureSubgoalGenerator(SubgoalConfig(hidden=8, code_hidden=8, codes=3)), SubgoalGenerator)
    assert isinstance(MLPWorldModel(ContinuousWorldModelConfig(hidden=8)), WorldModel)
    assert isinstance(SparseContinuousInverse(ContinuousInverseConfig(hidden=8)), InverseModel)


@pytest.mark.parametrize("pointer", [True, False])
def test_world_model_shapes_and_ensemble_members_are_independent(pointer):
    s, a = _states(5), torch.arange(5) % N_ACTIONS
    m = build(GridWorldModel, WorldModelConfig(hidden=8, layers=2, members=3, pointer=pointer), 0)
    c, k = m.logits(s, a)
    assert c.shape == (3, 5, 36, 21) and k.shape == (3, 5, 17)
    assert m.predict(s, a).shape == (5, N_FEATURES) and m.predict(s, a).dtype == torch.long
    assert m.loss(s, a, s).shape == (5,) and m.member_loss(s, a, s).shape == (3, 5)
    # perturbing member 2's weights leaves members 0 and 1 untouched: one call, M separate networks
    with torch.no_grad():
        m.trunk.convs[0].weight[16:] += 1.0
        m.cell_head.weight[2] += 1.0
    c2, _ = m.logits(s, a)
    assert torch.allclose(c2[:2], c[:2]) and not torch.allclose(c2[2], c[2])
    # a row's output does not depend on the other rows of the batch
    c1, k1 = m.logits(s[:1], a[:1])
    assert torch.allclose(c1, c2[:, :1], atol=1e-5) and torch.allclose(k1, m.logits(s, a)[1][:, :1], atol=1e-5)
    # outputs are log-probabilities, normalised per channel
    torch.testing.assert_close(torch.stack([c[..., sl].exp().sum(-1) for sl in nets.CELL_SLICES]), torch.ones(3, 3, 5, 36))
    torch.testing.assert_close(torch.stack([k[..., sl].exp().sum(-1) for sl in nets.CARRIED_SLICES]), torch.ones(2, 3, 5))


def test_prediction_error_matches_hand_computation():
    s = _states(2)
    uniform = nets.block_log_softmax(torch.zeros(2, 36, 21), nets.CELL_SLICES)  # models return log-probabilities
    probs = nets.carried_softmax(torch.zeros(2, 17))  # expected ids: colour 2.5, type 5
    target = s.clone()
    target[:, -2:] = torch.tensor([5, 1])  # empty hand
    expected = math.log(11) + math.log(6) + math.log(4) + 10 * ((2.5 - 5) ** 2 + (5 - 1) ** 2)
    assert torch.allclose(prediction_error(uniform, probs, target), torch.full((2,), expected), atol=1e-4)
    # a certain, correct model has zero error
    sure_cells = nets.block_log_softmax(50.0 * nets.cell_onehot(target), nets.CELL_SLICES)
    sure_hand = nets.carried_softmax(50.0 * nets.carried_onehot(target))
    assert prediction_error(sure_cells, sure_hand, target).abs().max() < 1e-4
    assert torch.equal(nets.decode(sure_cells, 50.0 * nets.carried_onehot(target)), target)


def test_untrained_world_model_copies_its_input():
    # the copy bonus makes "no change" the default prediction
    s, a = _states(6), torch.arange(6) % N_ACTIONS
    m = build(GridWorldModel, SMALL_WM, 0)
    with torch.no_grad():
        for p in (m.cell_head.weight, m.cell_head.bias, m.carried_head.weight, m.carried_head.bias):
            p.zero_()
    assert torch.equal(m.predict(s, a), s)


def test_mc_dropout_is_seeded_and_off_without_a_generator():
    s, a = _states(4), torch.zeros(4, dtype=torch.long)
    m = build(GridWorldModel, WorldModelConfig(hidden=8, layers=2, dropout=0.5, members=2), 0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    c1, k1 = m.mc_logits(s, a, passes=5, generator=g1)
    c2, _ = m.mc_logits(s, a, passes=5, generator=g2)
    assert c1.shape == (5, 2, 4, 36, 21) and k1.shape == (5, 2, 4, 17)
    assert torch.equal(c1, c2) and not torch.allclose(c1[0], c1[1])
    assert torch.equal(m.logits(s, a)[0], m.logits(s, a)[0])


def test_subgoal_generator_never_reads_actions_and_samples_are_seeded():
    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=8, code_hidden=8, codes=4), 0)
    s = _states(3)
    out = m.sample(s, 6, torch.Generator().manual_seed(0))
    assert out.shape == (3, 6, N_FEATURES) and out.dtype == torch.long
    assert torch.equal(out, m.sample(s, 6, torch.Generator().manual_seed(0)))
    assert m.training_loss(s, s).ndim == 0  # (states, next_states): no action argument exists


def test_subgoal_generator_learns_two_modes_of_one_state():
    # one state, two observed successors (turn left / turn right): K samples must be exactly those two
    s = _states(1, seed=1)
    succ = torch.from_numpy(true_successors(s.numpy()))[0, :2]  # (2, D)
    states, nxt = s.repeat(64, 1), succ.repeat(32, 1)
    # min_class_prob < 1: a code that stays split 50/50 between the two turns yields both when sampled
    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=16, code_hidden=16, codes=4, min_class_prob=0.2), 0)
    fit(m, (states, nxt), TrainConfig(epochs=60, lr=1e-2, batch_size=64, val_fraction=0), seed=0)
    out = m.sample(s, 8, torch.Generator().manual_seed(0))[0]  # (8, D)
    hits = (out[:, None] == succ[None]).all(-1)  # (8, 2)
    assert hits.any(1).all() and hits.any(0).all()


def test_local_subgoal_generator_learns_two_modes_and_copies_the_rest():
    # the agent-centred edit decoder (the paper preset's): both turns of one state are proposed, and every
    # proposal equals s outside the 3x3 window around the agent
    s = _states(2, seed=1)
    succ = torch.from_numpy(true_successors(s[:1].numpy()))[0, :2]  # (2, D)
    states, nxt = s[:1].repeat(64, 1), succ.repeat(32, 1)
    cfg = SubgoalConfig(hidden=16, layers=1, code_hidden=16, codes=4, local=True, edit=True, context=False)
    m = build(MixtureSubgoalGenerator, cfg, 0)
    fit(m, (states, nxt), TrainConfig(epochs=60, lr=1e-2, batch_size=64, val_fraction=0), seed=0)
    out = m.sample(s, 8, torch.Generator().manual_seed(0))  # (2, 8, D)
    hits = (out[0][:, None] == succ[None]).all(-1)  # (8, 2)
    assert hits.any(1).all() and hits.any(0).all()
    where, valid, _ = m._window(s)
    inside = torch.zeros(2, 36, dtype=torch.bool)
    inside[torch.arange(2)[:, None].expand_as(where)[valid], where[valid]] = True
    grid_s, grid_out = s[:, :108].reshape(2, 1, 36, 3), out[:, :, :108].reshape(2, 8, 36, 3)
    assert torch.equal((grid_out != grid_s).any(-1) & ~inside[:, None], torch.zeros(2, 8, 36, dtype=torch.bool))
    sub, w = m.propose(s)  # the cycle's weighted modes work for this decoder too
    assert sub.shape[:2] == w.shape and torch.allclose(w.sum(1), torch.ones(2))


def test_inverse_model_is_deterministic_and_returns_its_mask():
    s, sn = _states(6), _states(6, seed=2)
    m = build(SparseInverseModel, InverseConfig(hidden=8), 0)
    a1, mask1 = m.infer_with_mask(s, sn)
    a2, mask2 = m.infer_with_mask(s, sn)
    assert torch.equal(a1, a2) and torch.equal(mask1, mask2) and torch.equal(m.infer(s, sn), a1)
    assert mask1.shape == (6, N_FEATURES) and set(mask1.unique().tolist()) <= {0.0, 1.0}
    dense = build(SparseInverseModel, InverseConfig(hidden=8, dense=True), 0)
    assert torch.equal(dense.infer_with_mask(s, sn)[1], torch.ones(6, N_FEATURES))


def test_token_mask_maps_to_state_features():
    tok = torch.zeros(1, 37, 3)
    tok[0, 7, 1] = 1  # cell 7 colour -> feature 7*3+1
    tok[0, 36, 0] = 1  # carried token slot 0 = carried type -> feature 109
    feat = token_mask_to_features(tok)
    assert feat.shape == (1, N_FEATURES) and feat.nonzero()[:, 1].tolist() == [22, 109]


def test_binary_mask_hard_forward_soft_gradient():
    logits = torch.tensor([-3.0, -0.1, 0.2, 4.0], requires_grad=True)
    assert binary_mask(logits, 0.5).tolist() == [0.0, 0.0, 1.0, 1.0]
    m = binary_mask(logits, 0.5, torch.Generator().manual_seed(0))
    assert set(m.detach().tolist()) <= {0.0, 1.0}
    m.sum().backward()
    assert (logits.grad > 0).all()


def test_inverse_model_learns_agent_actions_from_few_samples():
    # turning and moving are identifiable from the agent cell alone; 60 samples suffice
    g, c = random_states(np.random.default_rng(0), 60, noise_floors=(0, 0))
    s = torch.from_numpy(to_features(g, c))
    a = torch.arange(60) % 2  # left / right
    sn = torch.from_numpy(true_successors(s.numpy()))[torch.arange(60), a]
    m = build(SparseInverseModel, InverseConfig(hidden=16), 0)
    fit(m, (s, a, sn), TrainConfig(epochs=60, lr=1e-2, batch_size=30, val_fraction=0), seed=0)
    assert (m.infer(s, sn) == a).float().mean() == 1.0
    assert m.infer_with_mask(s, sn)[1].sum(1).mean() < 20  # far fewer than the 110 features


def test_continuous_models_shapes_and_disagreement():
    cfg = ContinuousWorldModelConfig(state_dim=4, action_dim=2, hidden=8, members=3)
    wm = build(MLPWorldModel, cfg, 0)
    s, a = torch.randn(5, 4), torch.randn(5, 2)
    mean, log_var = wm.outputs(s, a)
    assert mean.shape == (3, 5, 4) and log_var.shape == (3, 5, 4)
    assert wm.predict(s, a).shape == (5, 4) and wm.loss(s, a, s).shape == (5,)
    assert (wm.disagreement(s, a) > 0).all()
    single = build(MLPWorldModel, ContinuousWorldModelConfig(state_dim=4, action_dim=2, hidden=8), 0)
    assert torch.equal(single.disagreement(s, a), torch.zeros(5))
    inv = build(SparseContinuousInverse, ContinuousInverseConfig(state_dim=4, action_dim=2, hidden=8), 0)
    act, mask = inv.infer_with_mask(s, s + 1)
    assert act.shape == (5, 2) and mask.shape == (5, 4)


def test_continuous_sparse_inverse_finds_the_action_block():
    # s' = s + [a, 0, 0] + noise in the distractor dims: the mask should keep the first two dims
    gen = torch.Generator().manual_seed(0)
    s, a = torch.randn(512, 6, generator=gen), torch.randn(512, 2, generator=gen)
    sn = s + torch.cat([a, 3 * torch.randn(512, 4, generator=gen)], 1)
    inv = build(SparseContinuousInverse, ContinuousInverseConfig(state_dim=6, action_dim=2, hidden=32, l1=0.3), 0)
    fit(inv, (s, a, sn), TrainConfig(epochs=40, lr=3e-3, batch_size=64, val_fraction=0), seed=0)
    pred, mask = inv.infer_with_mask(s, sn)
    assert ((pred - a) ** 2).mean() < 0.1
    assert mask[:, :2].mean() == 1.0 and mask[:, 2:].mean() < 0.5


def test_iid_subgoals_follow_the_prior():
    """The cycle's view draws codes i.i.d. from p(z|s): repeats allowed, shapes as the protocol says."""
    import torch

    from wav.config import SubgoalConfig
    from wav.domains.minigrid import FrozenSubgoals
    from wav.models.subgoal import MixtureSubgoalGenerator
    from wav.types import SubgoalGenerator

    model = MixtureSubgoalGenerator(SubgoalConfig(hidden=8, layers=1, codes=4, code_hidden=8)).eval()
    view = FrozenSubgoals(model)
    assert isinstance(view, SubgoalGenerator)
    s = torch.zeros(3, 110, dtype=torch.long)
    s[:, 0] = 10
    out = view.sample(s, 20, torch.Generator().manual_seed(0))
    assert out.shape == (3, 20, 110)
    distinct = model.sample(s, 4, torch.Generator().manual_seed(0))
    assert distinct.shape == (3, 4, 110)


@pytest.mark.parametrize("pointer", [True, False])
def test_mc_dropout_pass_is_one_network_shared_by_its_rows(pointer):
    """Each MC pass draws one dropout mask per layer for all its rows (one sampled network): a state
    repeated in the batch gets the same prediction within a pass; the passes differ; no pass is the
    deterministic model."""
    s = _states(1).repeat(4, 1)
    a = torch.full((4,), 3)
    m = build(GridWorldModel, WorldModelConfig(hidden=8, layers=2, pointer=pointer, dropout=0.3), 0)
    c, k = m.mc_logits(s, a, 3, torch.Generator().manual_seed(5))  # (T, M, B, ...)
    assert c.shape == (3, 1, 4, 36, 21) and k.shape == (3, 1, 4, 17)
    torch.testing.assert_close(c, c[:, :, :1].expand_as(c))
    torch.testing.assert_close(k, k[:, :, :1].expand_as(k))
    assert not torch.allclose(c[0], c[1])
    assert not torch.allclose(c[0, 0], m.logits(s, a)[0])


def test_frozen_subgoal_memo_round_trips():
    """The proposals memo exported once per experiment and imported by each run gives the same proposals."""
    from wav.domains.minigrid import FrozenSubgoals

    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=8, code_hidden=8, codes=5, min_prior=0.1), 0)
    s = _states(6)
    a = FrozenSubgoals(m)
    a.warm(s, chunk=4)
    b = FrozenSubgoals(m)
    b.import_modes(a.export_modes())
    assert b._modes.keys() == a._modes.keys()
    for x, y in zip(a.propose(s), b.propose(s)):
        assert torch.equal(x, y)


def test_generator_proposals_are_weighted_modes():
    from wav.types import WeightedSubgoalGenerator

    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=8, code_hidden=8, codes=5, min_prior=0.15), 0)
    assert isinstance(m, WeightedSubgoalGenerator)
    s = _states(7)
    sub, w = m.propose(s)
    prior = m(s)[0].exp()  # (B, Z)
    kept = (prior >= 0.15).sum(1)
    assert sub.shape[:2] == w.shape and w.shape[1] == int(kept.clamp_min(1).max())
    torch.testing.assert_close(w.sum(1), torch.ones(7))
    assert torch.equal((w > 0).sum(1), kept.clamp_min(1))  # one proposal per kept code, the rest padding
    pad = w == 0
    assert torch.equal(sub[pad], s[:, None].expand_as(sub)[pad])  # padding copies the state


def test_min_codes_keeps_the_most_probable_codes_whatever_their_prior():
    """min_codes = N: `propose` and `sample` use the codes with prior >= min_prior plus the N most probable,
    and no other code."""
    s = _states(7)
    for local in (False, True):
        cfg = SubgoalConfig(hidden=8, code_hidden=8, codes=5, min_prior=0.9, local=local, edit=local, context=not local)
        m = build(MixtureSubgoalGenerator, cfg, 0)
        prior = m(s)[0].exp()  # (B, Z)
        assert (prior < 0.9).all()  # min_prior alone keeps nothing: the fallback proposes every code
        for n in (1, 3):
            m.cfg = dataclasses.replace(cfg, min_codes=n)
            sub, w = m.propose(s)
            assert torch.equal((w > 0).sum(1), torch.full((7,), n))
            top = prior.topk(n, -1).values
            kept = torch.sort(w, -1, descending=True).values[:, :n]
            torch.testing.assert_close(kept, top / top.sum(-1, keepdim=True))  # the n most probable, renormalised
            allowed = m._allowed(prior)
            assert torch.equal(allowed.sum(1), torch.full((7,), n)) and (prior[allowed].min() >= prior[~allowed].max() - 1e-7 or n == 5)
            g = torch.Generator().manual_seed(0)
            samples = m.sample(s, 8, g)  # (B, 8, D): every sample decodes an allowed code
            decoded, _ = m.propose(s)
            for b in range(7):
                modes = {tuple(x.tolist()) for x, keep in zip(decoded[b], w[b] > 0) if keep}
                assert {tuple(x.tolist()) for x in samples[b]} <= modes


def _change_keys(m, s, nexts):
    with torch.no_grad():
        return m._change_keys(m._local(s), nexts)


def test_change_keys_name_the_change_in_the_agents_frame():
    """`seen_changes` keys: a turn is one change wherever the agent stands and faces and whatever it holds;
    left, right and no change are three; a change of the hand also names the cell in front."""
    cfg = SubgoalConfig(hidden=8, layers=1, code_hidden=8, codes=4, local=True, edit=True, context=False, seen_changes=True)
    m = build(MixtureSubgoalGenerator, cfg, 0)
    s = _states(40, seed=3)
    succ = torch.from_numpy(true_successors(s.numpy()))  # (B, 7, D): left, right, forward, ...
    keys = _change_keys(m, s, torch.stack([succ[:, 0], succ[:, 1], s], 1))  # (B, 3)
    for j in range(3):
        assert (keys[:, j] == keys[0, j]).all()
    assert len(set(keys[0].tolist())) == 3
    # the same hand change in front of two different cells: two keys
    a, b = s[:1].clone(), s[:1].clone()
    front = int(m._window(a)[0][0, m._front_slot])
    a[0, 3 * front : 3 * front + 3] = torch.tensor([5, 0, 0])  # a red key in front
    b[0, 3 * front : 3 * front + 3] = torch.tensor([6, 2, 0])  # a blue ball in front
    na, nb = a.clone(), b.clone()
    na[0, -2:] = nb[0, -2:] = torch.tensor([0, 7])  # the hand now holds a red box
    assert a[0, -2:].tolist() != [0, 7]
    assert _change_keys(m, a, na[:, None]) != _change_keys(m, b, nb[:, None])


def test_unseen_decode_is_projected_onto_its_largest_seen_part():
    """A decode whose change was never seen (a left turn plus an artefact in the cell in front) becomes
    its seen part (the left turn); a seen decode stays; a decode with no seen part is left as it is."""
    cfg = SubgoalConfig(hidden=8, layers=1, code_hidden=8, codes=4, local=True, edit=True, context=False, seen_changes=True)
    m = build(MixtureSubgoalGenerator, cfg, 0)
    s = _states(6, seed=7)
    left = torch.from_numpy(true_successors(s.numpy()))[:, 0]
    with torch.no_grad():
        t = m._local(s)
    m.seen = torch.unique(m._change_keys(t, left[:, None]))
    assert len(m.seen) == 1
    front = m._window(s)[0][:, m._front_slot]  # (B,) grid cell in front
    artefact = left.clone()
    artefact[torch.arange(6), 3 * front] = torch.where(artefact[torch.arange(6), 3 * front] == 6, 5, 6)  # a ball (or key) appears
    nothing_seen = s.clone()
    nothing_seen[torch.arange(6), 3 * front] = artefact[torch.arange(6), 3 * front]  # only the artefact
    out = m._project(t, torch.stack([artefact, left, nothing_seen], 1))
    assert torch.equal(out[:, 0], left) and torch.equal(out[:, 1], left) and torch.equal(out[:, 2], nothing_seen)


def test_seen_changes_proposes_only_changes_seen_in_training():
    """Trained on turns only, a `seen_changes` generator remembers two changes (left, right) and proposes
    and samples nothing else; the memory survives a checkpoint round trip; misuse is refused."""
    from wav.train import load_checkpoint, save_checkpoint

    s = _states(64, seed=4)
    succ = torch.from_numpy(true_successors(s.numpy()))
    states, nxt = torch.cat([s, s]), torch.cat([succ[:, 0], succ[:, 1]])
    cfg = SubgoalConfig(hidden=16, layers=1, code_hidden=16, codes=4, local=True, edit=True, context=False, seen_changes=True)
    m = build(MixtureSubgoalGenerator, cfg, 0)
    with pytest.raises(ValueError, match="remember_changes"):
        m.propose(s[:2])
    fit(m, (states, nxt), TrainConfig(epochs=60, lr=1e-2, batch_size=64, val_fraction=0), seed=0)
    m.remember_changes(states, nxt)
    assert len(m.seen) == 2
    test = _states(30, seed=5)
    sub, w = m.propose(test)
    keys = _change_keys(m, test, sub)
    assert torch.isin(keys[w > 0], m.seen).all() and (w > 0).any(1).all()
    kept = [sub[b][w[b] > 0] for b in range(len(test))]  # one proposal per distinct subgoal
    assert all(len(torch.unique(x, dim=0)) == len(x) for x in kept)
    torch.testing.assert_close(w.sum(1), torch.ones(len(test)))
    samples = m.sample(test, 6, torch.Generator().manual_seed(0))
    assert torch.isin(_change_keys(m, test, samples), m.seen).all()
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "sg.pt"
    save_checkpoint(path, m, {})
    back = load_checkpoint(path, "subgoal")
    assert torch.equal(back.seen, m.seen)
    sub2, w2 = back.propose(test)
    assert torch.equal(sub2, sub) and torch.equal(w2, w)
    with pytest.raises(ValueError, match="local"):
        MixtureSubgoalGenerator(SubgoalConfig(hidden=8, code_hidden=8, codes=3, seen_changes=True))


def test_frozen_view_memoises_proposals():
    from wav.domains.minigrid import FrozenSubgoals

    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=8, code_hidden=8, codes=5, min_prior=0.15), 0)
    view = FrozenSubgoals(m)
    s = _states(9)
    sub, w = view.propose(s)
    ref_s, ref_w = m.propose(s)
    torch.testing.assert_close(w, ref_w)
    assert torch.equal(sub, ref_s)
    with torch.no_grad():  # a changed generator is not asked again: the view serves what it memoised
        m.prior[-1].bias += 5.0
    sub2, w2 = view.propose(torch.cat([s[3:], s[:3]]))
    assert torch.equal(sub2, torch.cat([sub[3:], sub[:3]])) and torch.equal(w2, torch.cat([w[3:], w[:3]]))


def test_block_log_softmax_matches_a_log_softmax_per_block_with_gradients():
    """The shifted two-product form equals one log-softmax per block, value and gradient, including rows
    where one block lies far below another (the exact per-block fallback)."""
    x = torch.randn(5, 36, nets.N_CELL_LOGITS, dtype=torch.float64) * 4
    x[0, 0, nets.CELL_SLICES[0]] += 200.0  # the type block dwarfs the others: their exp-sums underflow after the row shift
    for logits in (x[1:], x):
        a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        ref = torch.cat([torch.log_softmax(b[..., s], -1) for s in nets.CELL_SLICES], -1)
        out = nets.block_log_softmax(a, nets.CELL_SLICES)
        torch.testing.assert_close(out, ref)
        w = torch.randn_like(ref)
        (out * w).sum().backward()
        (ref * w).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)
        assert torch.isfinite(out).all()


def test_cell_inputs_are_the_concatenated_one_hots_and_reject_bad_actions():
    s = _states(6)
    a = torch.arange(6) % N_ACTIONS
    ref = torch.cat([nets.cell_onehot(s), nets.carried_onehot(s)[:, None].expand(-1, 36, -1),
                     torch.nn.functional.one_hot(a, N_ACTIONS).float()[:, None].expand(-1, 36, -1)], -1)
    assert torch.equal(nets.cell_inputs(s, a, N_ACTIONS), ref)
    for bad in (-1, N_ACTIONS):
        with pytest.raises(ValueError, match="actions"):
            nets.cell_inputs(s, torch.full((6,), bad), N_ACTIONS)


def test_frozen_subgoal_import_keeps_the_modes_it_already_holds():
    """Importing a memo that overlaps the view's own keeps every state's proposals as the generator gave them."""
    from wav.domains.minigrid import FrozenSubgoals

    m = build(MixtureSubgoalGenerator, SubgoalConfig(hidden=8, code_hidden=8, codes=5, min_prior=0.1), 0)
    s = _states(8)
    full = FrozenSubgoals(m)
    full.warm(s)
    part = FrozenSubgoals(m)
    part.propose(s[2:5])
    part.import_modes(full.export_modes())
    assert len(part._modes) == len(full._modes)
    for x, y in zip(part.propose(s), m.propose(s)):
        assert torch.equal(x, y)
