"""Robot-side models (issue 13 items 1-2): the RSSM world model, the CLAM-style latent inverse model and the
window sampler, checked on contracts and numerics (tiny batches and a synthetic linear-Gaussian world)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wav.config import TrainConfig
from wav.data.sequences import ImageSequenceBatch, Windows, eval_windows, inverse_triples, linear_world, stream
from wav.models.latent_inverse import LatentInverseModel
from wav.models.latent_inverse import preset as inverse_preset
from wav.models.rssm import RSSM, preset
from wav.train import Rows, fit
from wav.types import InverseModel, SequenceBatch, SequenceWorldModel


def tiny_batch(b=3, t=5, d=6, a=2, seed=0) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return SequenceBatch(torch.randn(b, t, d, generator=g), torch.rand(b, t, a, generator=g) * 2 - 1, is_first)


def tiny_rssm(members=1, **kw) -> RSSM:
    torch.manual_seed(0)
    return RSSM(preset("debug", state_dim=6, action_dim=2, members=members, **kw))


def train(model, sampler, updates: int, lr: float, batch_size: int = 16, seed: int = 0) -> list[float]:
    """Adam with the model's gradient clip: the shared loop's update, for `updates` minibatches."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    while len(losses) < updates:
        for batch in sampler.epoch(batch_size, g):
            loss = model.training_loss(*batch, generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), model.clip_grad)
            opt.step()
            losses.append(float(loss.detach()))
            if len(losses) == updates:
                break
    model.eval()
    return losses


# ---- RSSM contracts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [1, 3])
def test_rssm_shapes_and_dtypes(members):
    m, batch = tiny_rssm(members), tiny_batch()
    assert isinstance(m, SequenceWorldModel)
    h, z = m.observe(batch)
    assert h.shape == (3, members, m.cfg.deter) and z.shape == (3, members, m.cfg.stoch * m.cfg.classes)
    pred = m.imagine((h, z), batch.actions[:, :4])
    assert pred.shape == (3, 4, 6) and pred.dtype == torch.float32
    err = m.open_loop_error(batch, context=2)
    assert err.shape == (3, 3) and bool((err >= 0).all())
    loss = m.training_loss(batch, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    dis = m.disagreement(batch, batch.actions[:, :4])
    assert dis.shape == (3,)
    assert bool((dis > 0).all()) if members > 1 else bool((dis == 0).all())


@pytest.mark.parametrize("members", [1, 2])
def test_rssm_with_images(members):
    m = tiny_rssm(members=members, image_channels=3, cnn_depth=2)
    b = tiny_batch(b=2, t=3)
    batch = ImageSequenceBatch(b.states, b.actions, b.is_first, torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    terms = m.member_losses(batch, torch.Generator().manual_seed(0))
    assert terms["image"].shape == (members,) and bool(torch.isfinite(terms["total"]).all())
    terms["total"].sum().backward()
    assert float(m.image_encoder.convs[0].weight.grad.abs().sum()) > 0 and float(m.image_decoder.convs[-1].weight.grad.abs().sum()) > 0
    assert m.imagine(m.observe(batch), batch.actions).shape == (2, 3, 6)
    with pytest.raises(ValueError, match="images"):
        m.observe(b)


@pytest.mark.parametrize("scale", ["debug", "cpu"])
def test_ensemble_layers_give_the_einsum_numbers_bit_for_bit(scale, monkeypatch):
    """An ensemble RSSM's layers run one batched matmul on the members-first view instead of the grouped layer's
    einsum; its training loss, every gradient, the posterior and an open-loop rollout must stay equal to the
    einsum's to the last bit, so recorded ensemble results do not move."""
    from wav.models import rssm as rssm_module

    g = torch.Generator().manual_seed(0)
    d, a = 54, 7
    batch = SequenceBatch(torch.randn(16, 12, d, generator=g), torch.rand(16, 12, a, generator=g) * 2 - 1, torch.zeros(16, 12, dtype=torch.bool))
    torch.manual_seed(0)
    model = RSSM(preset(scale, state_dim=d, action_dim=a, members=3))

    def outputs():
        model.zero_grad()
        loss = model.training_loss(batch, torch.Generator().manual_seed(1))
        loss.backward()
        with torch.no_grad():
            latent = model.observe(SequenceBatch(batch.states[:, :4], batch.actions[:, :4], batch.is_first[:, :4]))
            rollout = model.imagine_members(latent, batch.actions[:, 4:], torch.Generator().manual_seed(2))
        return [loss.detach(), *latent, rollout, *(p.grad.clone() for p in model.parameters())]

    fast = outputs()
    monkeypatch.setattr(rssm_module.Linear, "forward", lambda self, x: self.g(x))  # every layer has 3 members here
    grouped = outputs()
    assert len(fast) == len(grouped) and all(torch.equal(x, y) for x, y in zip(fast, grouped))


def test_rssm_deterministic_without_generator():
    m, batch = tiny_rssm(), tiny_batch()
    assert torch.equal(m.open_loop_error(batch), m.open_loop_error(batch))


def test_is_first_resets_the_latent():
    """The same episode observed alone and after another episode in one window: same posterior at its end."""
    m = tiny_rssm()
    x, y = tiny_batch(b=1, t=4, seed=1), tiny_batch(b=1, t=5, seed=2)
    joined = SequenceBatch(*(torch.cat([getattr(x, f), getattr(y, f)], 1) for f in ("states", "actions", "is_first")))
    assert bool(joined.is_first[0, 4])
    for got, want in zip(m.observe(joined), m.observe(y)):
        torch.testing.assert_close(got, want)
    no_reset = SequenceBatch(joined.states, joined.actions, torch.zeros_like(joined.is_first))
    assert not torch.allclose(m.observe(no_reset)[0], m.observe(y)[0])


def test_straight_through_sample_is_one_hot_with_gradient():
    m = tiny_rssm()
    s, k = m.cfg.stoch, m.cfg.classes
    logits = torch.randn(10, s * k, requires_grad=True)
    z = m.sample(logits, torch.Generator().manual_seed(0)).unflatten(-1, (s, k))
    hard = torch.nn.functional.one_hot(z.argmax(-1), k).float()
    torch.testing.assert_close(z, hard, rtol=0, atol=1e-6)
    (z * torch.randn(z.shape)).sum().backward()
    assert float(logits.grad.abs().sum()) > 0
    probs = m.dist(torch.tensor([[50.0] + [0.0] * (s * k - 1)])).exp()  # unimix: no class below 1% / K
    assert float(probs.min()) >= m.cfg.unimix / k * (1 - 1e-5)


def test_kl_respects_free_nats():
    m = tiny_rssm(stoch=1, classes=2)
    same = torch.zeros(4, 2)
    torch.testing.assert_close(m.kl_loss(same, same), torch.full((4,), 0.6))  # both terms clamp at 1 nat
    post, prior = torch.tensor([[30.0, 0.0]]), torch.tensor([[0.0, 30.0]])
    q = torch.tensor([0.995, 0.005])  # unimix 1% over 2 classes of a (near) one-hot
    kl = float((q * (q.log() - q.flip(0).log())).sum())  # = 5.24 nats > 1
    torch.testing.assert_close(m.kl_loss(post, prior), torch.tensor([0.6 * kl]), rtol=1e-4, atol=1e-4)
    below = torch.tensor([[0.3, 0.0]], requires_grad=True)
    m.kl_loss(below, torch.zeros(1, 2)).sum().backward()
    assert float(below.grad.abs().sum()) == 0.0  # under free nats: no gradient


def test_openloop_loss_is_the_error_of_the_decoded_prior_rollout():
    """`openloop_loss`: the prior rolled from the first frame's posterior under the recorded actions, the symlog
    squared error of its decoding summed over D, mean over steps; 0 weight leaves DreamerV3's objective as it was."""
    from wav.models.rssm import symlog

    batch = tiny_batch(b=3, t=6)
    m = tiny_rssm(members=2, openloop_scale=2.0)
    h, z, _ = m.posterior(batch)
    got = m.openloop_loss(batch, h[:, 0], z[:, 0])
    pred = m.imagine_members((h[:, 0], z[:, 0]), batch.actions[:, :-1])  # (B, T-1, M, D), state units
    want = ((symlog(pred) - symlog(batch.states[:, 1:])[:, :, None]) ** 2).sum(-1).mean((0, 1))
    assert got.shape == (2,)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with_term, without = m.member_losses(batch), tiny_rssm(members=2).member_losses(batch)  # same weights (seed 0)
    assert "openloop" not in without
    for k in ("state", "cont", "kl"):
        torch.testing.assert_close(with_term[k], without[k])
    torch.testing.assert_close(with_term["total"], without["total"] + 2.0 * with_term["openloop"])
    torch.testing.assert_close(with_term["openloop"], got)
    # the term trains the prior (the KL trains it too, but only one step at a time)
    m.zero_grad()
    m.openloop_loss(batch, h[:, 0].detach(), z[:, 0].detach()).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.prior.parameters())


def test_openloop_loss_stops_at_the_next_episode_start():
    """Steps from the window's next episode start on are not scored: changing them leaves the loss as it was."""
    m = tiny_rssm(openloop_scale=1.0)
    batch = tiny_batch(b=2, t=6)
    batch.is_first[0, 3] = True
    h, z, _ = m.posterior(batch)
    base = m.openloop_loss(batch, h[:, 0], z[:, 0])
    changed = SequenceBatch(batch.states.clone(), batch.actions.clone(), batch.is_first)
    changed.states[0, 3:] += 5.0
    changed.actions[0, 2:] = -changed.actions[0, 2:]
    torch.testing.assert_close(m.openloop_loss(changed, h[:, 0], z[:, 0]), base)
    changed.states[0, 2] += 5.0  # the last step before the reset counts
    assert float(m.openloop_loss(changed, h[:, 0], z[:, 0]).detach()) > float(base.detach()) + 1e-3


# ---- the window sampler ------------------------------------------------------------------------------------


def test_windows_contract():
    trajs, _ = linear_world(5, 12, np.random.default_rng(0), distractors=2)  # 5 x 13 steps = 65
    w = Windows(trajs, length=8)
    assert len(w) == 9  # 8 tiles + one ending at the last step
    chunks = list(w.chunks(4))
    assert [len(c[0]) for c in chunks] == [4, 4, 1]
    states, _, is_first = stream(trajs)
    assert is_first.nonzero().flatten().tolist() == [0, 13, 26, 39, 52]
    first = chunks[0][0]
    torch.testing.assert_close(first.states[1], states[8:16])
    assert first.is_first[1].nonzero().flatten().tolist() == [5]  # the episode starting at step 13

    g, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    train_w, val_w = w.split(3, g)
    perm = torch.randperm(len(w), generator=ref)  # split draws exactly one permutation
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=ref))
    assert len(train_w) == 6 and len(val_w) == 3
    assert sorted(val_w.starts.tolist()) == sorted(w.starts[perm[:3]].tolist())
    own = torch.zeros(len(states), dtype=torch.bool)
    for s in train_w.starts.tolist():
        own[s : s + 8] = True
    batches = list(train_w.epoch(5, torch.Generator().manual_seed(0)))
    assert [b[0].states.shape for b in batches] == [(5, 8, 16), (1, 8, 16)]  # len(train_w) windows in all
    everything, nothing = w.split(0, g)
    assert len(everything) == len(w) and len(nothing) == 0 and list(nothing.chunks(4)) == []
    for (b,) in batches:  # a training window never reads steps dealt only to validation
        starts = [int(((states == row[0]).all(1)).nonzero()[0]) for row in b.states]
        assert all(bool(own[s : s + 8].all()) for s in starts)


def test_fit_trains_an_rssm_on_windows():
    """The shared loop takes a `Windows` sampler: validation windows scored deterministically, clip applied."""
    trajs, _ = linear_world(6, 20, np.random.default_rng(0), distractors=2)
    m = RSSM(preset("debug", state_dim=16))
    hist = fit(m, Windows(trajs, 8), TrainConfig(epochs=2, lr=1e-3, batch_size=4, val_fraction=0.2), seed=0)
    assert len(hist.train_loss) == len(hist.val_loss) == 2 and all(map(math.isfinite, hist.val_loss))


def test_eval_windows_and_bad_input():
    trajs, _ = linear_world(2, 20, np.random.default_rng(0), distractors=2)
    ev = eval_windows(trajs, 8)  # 21 states -> 2 chunks each
    assert ev.states.shape == (4, 8, 16) and bool(ev.is_first[:, 0].all()) and not bool(ev.is_first[:, 1:].any())
    s, a = trajs[0]
    with pytest.raises(ValueError, match="outside"):
        Windows([(s, a * 3)], 8)
    with pytest.raises(ValueError, match="non-finite"):
        Windows([(np.where(np.arange(len(s))[:, None] == 2, np.nan, s), a)], 8)


# ---- learning on the synthetic world -------------------------------------------------------------------------


def test_rssm_open_loop_error_falls_with_training():
    """A `debug` RSSM, 300 updates on 16 trajectories: the open-loop error over 15 steps falls, most on the
    block the actions move (the distractors are noise-driven, so their error has a high floor)."""
    trajs, layout = linear_world(16, 40, np.random.default_rng(0), distractors=8)
    ev = eval_windows(linear_world(6, 40, np.random.default_rng(1), distractors=8)[0], 16)
    context = SequenceBatch(ev.states[:, :1], ev.actions[:, :1], ev.is_first[:, :1])
    torch.manual_seed(0)
    m = RSSM(preset("debug", state_dim=22))

    def errors():
        with torch.no_grad():
            sq = (m.imagine(m.observe(context), ev.actions[:, :-1]) - ev.states[:, 1:]) ** 2  # (B, 15, D)
            torch.testing.assert_close(sq.mean(-1), m.open_loop_error(ev))
            return float(sq.mean()), float(sq[..., layout["ee"]].mean())

    before = errors()
    train(m, Windows(trajs, 8), updates=300, lr=3e-3)
    after = errors()
    assert after[0] < 0.9 * before[0] and after[1] < 0.7 * before[1], (before, after)


def test_latent_inverse_learns_actions_and_keeps_the_action_block():
    trajs, layout = linear_world(16, 50, np.random.default_rng(0))
    test = inverse_triples(linear_world(8, 50, np.random.default_rng(1))[0])
    torch.manual_seed(0)
    m = LatentInverseModel(inverse_preset("debug"))
    assert isinstance(m, InverseModel)
    train(m, Rows(*inverse_triples(trajs)), updates=400, lr=3e-3, batch_size=64)
    s, a, n = test
    with torch.no_grad():
        pred, mask = m.infer_with_mask(s, n)
    r2 = 1 - ((pred - a) ** 2).sum(0) / ((a - a.mean(0)) ** 2).sum(0)
    assert float(r2.min()) > 0.9, r2
    kept = mask.mean(0)
    velocity = kept[7:14]  # the block the action moves directly (v' = 0.8 v + 0.5 a)
    assert float(velocity.min()) > 0.9 and float(kept[layout["object"]].mean()) < 0.1, kept
    assert torch.equal(mask, m.infer_with_mask(s, n)[1])  # deterministic at evaluation


def test_latent_inverse_context_forms_and_dense():
    m = LatentInverseModel(inverse_preset("debug", state_dim=6, action_dim=2))
    s, sn = torch.randn(4, 6), torch.randn(4, 6)
    torch.testing.assert_close(m.infer(s, sn), m.infer(torch.stack([s, s], 1), sn))
    assert m.infer(s, sn).shape == (4, 2)
    dense = LatentInverseModel(inverse_preset("debug", state_dim=6, action_dim=2, dense=True))
    _, mask = dense.infer_with_mask(s, sn)
    assert bool((mask == 1).all())
    terms = dense.losses(s, torch.zeros(4, 2), sn)
    torch.testing.assert_close(terms["total"], terms["action"])  # vanilla: no L1 terms


def test_same_loss_with_one_or_two_threads():
    batch = tiny_batch(b=4, t=6)
    rows = [batch]

    class One:
        def epoch(self, batch_size, generator):
            yield (rows[0],)

    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(train(tiny_rssm(), One(), updates=3, lr=1e-3))
    finally:
        torch.set_num_threads(old)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_rssm_and_latent_inverse_checkpoints_round_trip(tmp_path):
    """Both robot models are registered model kinds: a checkpoint rebuilds the same model."""
    from wav.models import LatentInverseModel, RSSM
    from wav.models.latent_inverse import preset as inverse_preset
    from wav.models.rssm import preset as rssm_preset
    from wav.train import build, load_checkpoint, save_checkpoint

    for cls, cfg in ((RSSM, rssm_preset("debug", state_dim=6, action_dim=3)), (LatentInverseModel, inverse_preset("debug", state_dim=6, action_dim=3))):
        model = build(cls, cfg, 0)
        save_checkpoint(tmp_path / "m.pt", model)
        back = load_checkpoint(tmp_path / "m.pt")
        assert type(back) is cls and back.cfg == cfg
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))


def test_latent_inverse_standardises_inputs_and_action_loss():
    """With `set_stats`, rescaling the states (metres vs centimetres) changes nothing the model learns, and the
    action loss is in units of each dim's std: predicting the mean action costs ~1 whatever the action scale."""
    trajs, _ = linear_world(8, 30, np.random.default_rng(0))
    s, a, n = inverse_triples(trajs)
    losses = []
    for k in (1.0, 0.01):
        torch.manual_seed(0)
        m = LatentInverseModel(inverse_preset("debug", dense=True)).set_stats(k * s, a, k * n)
        losses.append(train(m, Rows(k * s, a, k * n), updates=50, lr=1e-3, batch_size=64))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)
    m = LatentInverseModel(inverse_preset("debug", dense=True)).set_stats(s, 0.1 * a, n)
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.zero_()
        m.decoder[-1].bias.copy_(0.1 * a.mean(0))
        assert abs(float(m.losses(s, 0.1 * a, n)["action"]) - 1.0) < 0.05
