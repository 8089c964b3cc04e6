"""The sparse inverse model's optional identity-free token flags (`fill_flags`, `visible_flags`), used
by the Proposition 3.1 diagnosis (benchmarks/idm_ood_diagnosis.py), on hand-made transitions."""

import numpy as np
import torch

from wav.config import InverseConfig
from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import DIR_VEC, DROP, N_CELLS, PICKUP, agent_pose, from_features, to_features
from wav.envs.minigrid.states import random_states
from wav.models.inverse import SparseInverseModel, tokens
from wav.train import build


def _transitions(action: int, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """States where `action` changes the world, their successors, and each state's front-cell index."""
    g, c = random_states(np.random.default_rng(seed), 4000, noise_floors=(0, 0))
    ng, nc = step_batch(g, c, np.full(len(g), action))
    s, sn = to_features(g, c), to_features(ng, nc)
    keep = np.flatnonzero((s != sn).any(1))[:n]
    ax, ay, d = agent_pose(g[keep])
    front = (ax + DIR_VEC[d, 0]) * 6 + (ay + DIR_VEC[d, 1])
    return torch.from_numpy(s[keep]), torch.from_numpy(sn[keep]), front


def test_fill_flags_mark_what_empties_and_fills():
    for action, hand, cell in ((DROP, 5, 6), (PICKUP, 6, 5)):  # drop: hand empties, front fills; pickup: the reverse
        s, sn, front = _transitions(action)
        assert len(s) > 10
        _, flags = tokens(s, sn, fill_flags=True)  # (B, 37, 7)
        rows = torch.arange(len(s))
        assert flags.shape[-1] == 7 and tokens(s, sn)[1].shape[-1] == 5
        assert (flags[:, N_CELLS, hand] == 1).all() and (flags[:, N_CELLS, cell] == 0).all()
        assert (flags[rows, torch.from_numpy(front), cell] == 1).all() and (flags[rows, torch.from_numpy(front), hand] == 0).all()
        assert flags[..., 5:].sum() == 2 * len(s)  # nothing else empties or fills


def _closed(model: SparseInverseModel) -> SparseInverseModel:
    """Every mask logit very negative: the mask keeps no feature."""
    with torch.no_grad():
        model.mask_net[-1].weight.zero_()
        model.mask_net[-1].bias.fill_(-10.0)
    return model


def test_visible_flags_pass_the_closed_mask_and_gated_flags_do_not():
    s_drop, sn_drop, _ = _transitions(DROP, 8)
    s_pick, sn_pick, _ = _transitions(PICKUP, 8, seed=1)
    s, sn = torch.cat([s_drop, s_pick]), torch.cat([sn_drop, sn_pick])
    cfg = InverseConfig(hidden=16, visible_flags=False)
    gated = _closed(build(SparseInverseModel, cfg, 0))
    with torch.no_grad():
        out = gated(s, sn)[0]
    assert torch.allclose(out, out[:1].expand_as(out))  # a closed mask hides everything: one output for all
    visible = _closed(SparseInverseModel(InverseConfig(hidden=16, fill_flags=True, visible_flags=True)))
    with torch.no_grad():
        fast = visible(s, sn)[0]  # inference path: encodes only tokens that are kept or flagged
    assert not torch.allclose(fast[:8].mean(0), fast[8:].mean(0), atol=1e-4)  # the flags still tell drop from pickup
    with torch.enable_grad():
        full = visible(s, sn)[0]  # training path: encodes every token
    assert torch.allclose(fast, full.detach(), atol=1e-5)
    assert visible.infer_with_mask(s, sn)[1].sum() == 0


def test_changed_only_mask_keeps_only_slots_that_changed():
    """`changed_only`: whatever the mask net says, a slot whose value is the same in s and s' is closed, in
    training samples and at evaluation, and it adds nothing to the L1 penalty."""
    from wav.models.inverse import slot_values, token_mask_to_features

    s_drop, sn_drop, _ = _transitions(DROP, 8)
    s_pick, sn_pick, _ = _transitions(PICKUP, 8, seed=1)
    s, sn = torch.cat([s_drop, s_pick]), torch.cat([sn_drop, sn_pick])
    changed = (slot_values(s) != slot_values(sn)).float()  # (B, 37, 3)
    model = build(SparseInverseModel, InverseConfig(hidden=16, changed_only=True), 0)
    with torch.no_grad():
        model.mask_net[-1].weight.zero_()
        model.mask_net[-1].bias.fill_(10.0)  # the net wants every slot
    g = torch.Generator().manual_seed(0)
    _, m_train, logits = model(s, sn, generator=g)
    _, m_eval, _ = model(s, sn)
    assert torch.equal(m_eval, changed) and torch.equal(m_train.detach(), changed)
    assert torch.sigmoid(logits)[changed == 0].sum() == 0
    kept = model.infer_with_mask(s, sn)[1]
    assert torch.equal(kept, token_mask_to_features(changed)) and 0 < kept.sum(1).min()
    everything = build(SparseInverseModel, InverseConfig(hidden=16, changed_only=False), 0)
    with torch.no_grad():
        everything.mask_net[-1].weight.zero_()
        everything.mask_net[-1].bias.fill_(10.0)
    assert everything.infer_with_mask(s, sn)[1].sum(1).min() == 110  # without it the same net keeps every feature


def test_an_inverse_checkpoint_saved_before_the_options_loads_as_the_token_model(tmp_path):
    from wav.train import load_checkpoint, save_checkpoint

    old = build(SparseInverseModel, InverseConfig(hidden=16, fill_flags=False, visible_flags=False, changed_only=False), 0)
    path = save_checkpoint(tmp_path / "inv.pt", old)
    blob = torch.load(path, weights_only=False)
    for k in ("fill_flags", "visible_flags", "changed_only"):
        del blob["config"][k]
    torch.save(blob, path)
    new = load_checkpoint(path, "inverse")
    assert (new.cfg.fill_flags, new.cfg.visible_flags, new.cfg.changed_only) == (False, False, False)
