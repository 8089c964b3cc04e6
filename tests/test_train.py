"""Fitting loops, checkpoints and the `wav train` / `wav eval` model commands (smoke runs on tiny data)."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from wav.cli import main
from wav.config import MODEL_PRESETS, InverseConfig, TrainConfig, WorldModelConfig, model_preset
from wav.data.io import save_transitions
from wav.envs.minigrid.encoding import from_features, to_features
from wav.envs.minigrid.states import random_states
from wav.evaluate import execute
from wav.models import GridWorldModel, SparseInverseModel
from wav.domains.minigrid import train_inverse, train_world_model
from wav.train import Rows, build, checkpoint_meta, fit, load_checkpoint, load_into, save_checkpoint
from wav.data.io import Transitions


def _transitions(n=48, seed=0, box_toggle="swap"):
    g, c = random_states(np.random.default_rng(seed), n)
    s = to_features(g, c)
    a = np.arange(n) % 7
    ng, nc = from_features(execute(s, a, box_toggle))
    return Transitions.from_arrays(g, c, a, ng, nc)


TINY = TrainConfig(epochs=3, batch_size=16, patience=1)
SMALL_WM = WorldModelConfig(hidden=8, layers=2)


def test_fit_lowers_the_loss_and_is_seeded():
    tr = _transitions()
    m1, h1 = train_world_model(tr, SMALL_WM, TrainConfig(epochs=15, lr=1e-2, batch_size=16, val_fraction=0), seed=3)
    m2, h2 = train_world_model(tr, SMALL_WM, TrainConfig(epochs=15, lr=1e-2, batch_size=16, val_fraction=0), seed=3)
    assert h1.train_loss[-1] < h1.train_loss[0]
    assert h1.train_loss == h2.train_loss
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_early_stopping_restores_the_best_epoch():
    tr = _transitions()
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, (*map(torch.from_numpy, tr.features()[:1]), torch.from_numpy(tr.actions), torch.from_numpy(tr.features()[1])),
            TrainConfig(epochs=40, lr=0.3, batch_size=8, val_fraction=0.25, patience=2), seed=0)
    assert h.stopped_early and h.best_epoch == int(np.argmin(h.val_loss))
    assert len(h.val_loss) == h.best_epoch + 3  # patience 2: two epochs past the best, then stop


def test_time_guard_stops_a_fit_and_says_so(capsys):
    tr = _transitions()
    rows = (*map(torch.from_numpy, tr.features()[:1]), torch.from_numpy(tr.actions), torch.from_numpy(tr.features()[1]))
    h = fit(build(GridWorldModel, SMALL_WM, 0), rows, TrainConfig(epochs=5, batch_size=16, val_fraction=0, max_seconds=0.0), seed=0)
    assert h.stopped_early and len(h.train_loss) == 1
    assert "stopped by the 0 s time guard after epoch 1/5" in capsys.readouterr().err
    h = fit(build(GridWorldModel, SMALL_WM, 0), rows, TrainConfig(epochs=2, batch_size=16, val_fraction=0), seed=0)
    assert not h.stopped_early and len(h.train_loss) == 2


def test_checkpoint_roundtrip_and_refusals(tmp_path):
    tr = _transitions()
    model, _ = train_inverse(tr, InverseConfig(hidden=8), TINY, seed=0)
    path = save_checkpoint(tmp_path / "inv.pt", model, {"note": "x"})
    loaded = load_checkpoint(path, kind="inverse")
    s, sn = map(torch.from_numpy, tr.features())
    assert torch.equal(loaded.infer(s, sn), model.infer(s, sn))
    meta = checkpoint_meta(path)
    assert meta["kind"] == "inverse" and meta["meta"] == {"note": "x"} and "torch" in meta["versions"] and "cpu" in meta["versions"]
    with pytest.raises(ValueError, match="not a 'world-model'"):
        load_checkpoint(path, kind="world-model")
    with pytest.raises(ValueError, match="config mismatch.*hidden"):
        load_into(SparseInverseModel(InverseConfig(hidden=16)), path)
    with pytest.raises(ValueError, match="cannot load it into a 'world-model'"):
        load_into(GridWorldModel(SMALL_WM), path)
    load_into(SparseInverseModel(InverseConfig(hidden=8)), path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_presets():
    assert set(MODEL_PRESETS) >= {"paper", "debug"}
    debug = model_preset("debug")
    assert debug.world_model.hidden < model_preset("paper").world_model.hidden
    with pytest.raises(ValueError, match="unknown preset"):
        model_preset("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        debug.world_model.hidden = 3


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["world-model", "inverse", "subgoal"])
def test_cli_train_then_eval(model, tmp_path, capsys):
    data = save_transitions(tmp_path / "d.npz", _transitions(32))
    ckpt = tmp_path / "m.pt"
    assert main(["train", model, "--data", str(data), "--out", str(ckpt), "--preset", "debug", "--seed", "1", "--json"]) == 0
    assert _last_json(capsys)["epochs_run"] >= 1 and ckpt.exists()
    extra = ["--k", "4"] if model == "subgoal" else []
    assert main(["eval", model, "--ckpt", str(ckpt), "--data", str(data), "--json", *extra]) == 0
    out = _last_json(capsys)
    keys = {"world-model": {"pred_error", "dynamic_accuracy", "per_action"},
            "inverse": {"per_action", "dynamic_accuracy", "mask_size"},
            "subgoal": {"validity", "coverage"}}[model]
    assert keys <= set(out)


def test_cli_dense_inverse_and_wrong_kind(tmp_path, capsys):
    data = save_transitions(tmp_path / "d.npz", _transitions(32))
    ckpt = tmp_path / "m.pt"
    assert main(["train", "inverse", "--dense", "--data", str(data), "--out", str(ckpt), "--preset", "debug"]) == 0
    assert checkpoint_meta(ckpt)["config"]["dense"] is True
    capsys.readouterr()
    assert main(["eval", "inverse", "--ckpt", str(ckpt), "--data", str(data), "--json"]) == 0
    assert _last_json(capsys)["mask_size"] == 110
    assert main(["eval", "world-model", "--ckpt", str(ckpt), "--data", str(data)]) == 1
    assert "not a 'world-model'" in capsys.readouterr().err
    assert main(["eval", "inverse", "--ckpt", str(ckpt), "--data", str(data), "--rows", "4:14", "--json"]) == 0
    assert _last_json(capsys)["n"] == 10
    assert main(["eval", "inverse", "--ckpt", str(ckpt), "--data", str(data), "--rows", "x"]) == 1


def test_cli_subgoal_seen_changes(tmp_path, capsys):
    """`wav train subgoal --seen-changes` stores the training pairs' changes in the checkpoint."""
    from wav.train import load_checkpoint

    data = save_transitions(tmp_path / "d.npz", _transitions(32))
    ckpt = tmp_path / "g.pt"
    assert main(["train", "subgoal", "--seen-changes", "--data", str(data), "--out", str(ckpt), "--preset", "debug"]) == 0
    model = load_checkpoint(ckpt, "subgoal")
    assert model.cfg.seen_changes and len(model.seen) >= 1
    capsys.readouterr()
    assert main(["eval", "subgoal", "--ckpt", str(ckpt), "--data", str(data), "--k", "4", "--json"]) == 0
    assert 0 <= _last_json(capsys)["validity"] <= 1


def test_inverse_trains_on_the_published_seed_set(official, tmp_path, capsys):
    ckpt = tmp_path / "inv.pt"
    assert main(["train", "inverse", "--data", str(official("seed")), "--out", str(ckpt), "--epochs", "100", "--threads", "1"]) == 0
    assert main(["eval", "inverse", "--ckpt", str(ckpt), "--data", str(official("o6_test")), "--box-toggle", "recolor", "--json"]) == 0
    out = _last_json(capsys)
    assert out["dynamic_accuracy"] > 0.5 and out["mask_size"] < 110


@pytest.mark.slow
def test_published_accuracies(official, tmp_path, capsys):
    """The closing-note numbers at reduced cost: sparse IDM from 200 seed samples, world model from o6 train."""
    from wav.data.io import load_transitions
    from wav.evaluate import inverse_metrics, world_model_metrics

    p = model_preset("paper")
    inv, _ = train_inverse(load_transitions(official("seed")), p.inverse, p.inverse_train, seed=0)
    assert inverse_metrics(inv, load_transitions(official("o6_test")), "recolor")["dynamic_accuracy"] > 0.85
    wm, _ = train_world_model(load_transitions(official("o6_train")), p.world_model, p.world_model_train, seed=0)
    assert world_model_metrics(wm, load_transitions(official("o6_test")))["dynamic_accuracy"] > 0.75


@pytest.mark.slow
def test_subgoal_quality_on_held_out_states(official):
    """Subgoal generator trained on the first 450 video episodes, scored on the last 50 and on policy
    states. Issue targets: validity >= 0.95 and coverage >= 0.90; the bounds below are what this model
    reaches (~0.86 / ~0.86 at min_prior 1e-3, see the closing note), kept as a regression floor."""
    from wav.data.io import load_transitions
    from wav.evaluate import subgoal_metrics
    from wav.domains.minigrid import train_subgoal

    p = model_preset("paper")
    video = load_transitions(official("video"))
    model, _ = train_subgoal(video.subset(slice(0, 22500)), p.subgoal, p.subgoal_train, seed=0)
    held_out, _ = video.subset(slice(22500, None)).features()
    pool, _ = load_transitions(official("pool")).subset(slice(0, 2000)).features()
    for states in (held_out, pool):
        q = subgoal_metrics(model, states, k=16)
        assert q["validity"] > 0.8 and q["coverage"] > 0.8


def test_fit_gives_the_same_model_with_one_or_two_threads():
    """Results must not depend on the thread count: fit pins itself to one thread and restores the count."""
    tr = _transitions(96, seed=4)
    before = torch.get_num_threads()
    models = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            m, _ = train_world_model(tr, WorldModelConfig(hidden=32, layers=2, pointer=False), TrainConfig(epochs=4, lr=3e-3, batch_size=32, val_fraction=0.1), seed=5)
            assert torch.get_num_threads() == threads
            models.append(m.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def _rows(tr):
    return (*map(torch.from_numpy, tr.features()[:1]), torch.from_numpy(tr.actions), torch.from_numpy(tr.features()[1]))


def _snapshots(rows, cfg, seed=0):
    """A plain fit of `cfg` (no average, no selection) with the weights after every epoch."""
    model, snaps = build(GridWorldModel, SMALL_WM, 0), []
    fit(model, rows, dataclasses.replace(cfg, average_last=0, keep_best_train=False), seed=seed,
        log=lambda epoch, hist: snaps.append({k: v.clone() for k, v in model.state_dict().items()}))
    return snaps


def _eval_loss(state, rows):
    model = build(GridWorldModel, SMALL_WM, 0)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return float(model.training_loss(*rows))


def test_average_last_ends_with_the_mean_of_the_last_epochs():
    rows = _rows(_transitions())
    cfg = TrainConfig(epochs=6, lr=1e-2, batch_size=16, val_fraction=0, average_last=3)
    snaps = _snapshots(rows, cfg)  # the same seed draws the same batches: averaging draws nothing
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, rows, cfg, seed=0)
    assert h.best_epoch == -1 and len(h.train_loss) == 6
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, torch.stack([s[k] for s in snaps[-3:]]).mean(0))
    assert any(not torch.equal(v, snaps[-1][k]) for k, v in model.state_dict().items())  # not the last epoch's weights


def test_keep_best_train_restores_the_epoch_with_the_lowest_loss_on_the_labels():
    rows = _rows(_transitions())
    cfg = TrainConfig(epochs=8, lr=0.3, batch_size=8, val_fraction=0, keep_best_train=True)  # lr 0.3: the loss jumps about
    snaps = _snapshots(rows, cfg)
    losses = [_eval_loss(s, rows) for s in snaps]
    best = int(np.argmin(losses))
    assert best != len(snaps) - 1, "the test needs a fit whose last epoch is not its best"
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, rows, cfg, seed=0)
    assert h.best_epoch == best and h.val_loss == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps[best][k])
    # with a tail average too, the fit ends with whichever of the two has the lower loss on the labels
    both = dataclasses.replace(cfg, average_last=4)
    avg = {k: torch.stack([s[k] for s in snaps[-4:]]).mean(0) for k in snaps[-1]}
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, rows, both, seed=0)
    want = avg if _eval_loss(avg, rows) < losses[best] else snaps[best]
    assert h.best_epoch == (-1 if want is avg else best)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, want[k])


def test_soup_ends_with_the_mean_of_fits_that_differ_only_in_the_seed():
    rows = _rows(_transitions())
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=16, val_fraction=0)
    members = []
    for j in range(3):
        m = build(GridWorldModel, SMALL_WM, 0)
        fit(m, rows, cfg, seed=5 + 1000 * j)
        members.append(m.state_dict())
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, rows, dataclasses.replace(cfg, soup=3), seed=5)
    assert h.best_epoch == -1 and len(h.train_loss) == 3
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, torch.stack([s[k] for s in members]).mean(0))
    assert any(not torch.equal(v, members[0][k]) for k, v in model.state_dict().items())  # not one member's weights
    with pytest.raises(ValueError, match="soup"):
        fit(build(GridWorldModel, SMALL_WM, 0), rows, dataclasses.replace(cfg, soup=0))


def test_anchor_pulls_the_fit_towards_its_starting_weights():
    rows = _rows(_transitions())
    cfg = TrainConfig(epochs=5, lr=1e-2, batch_size=16, val_fraction=0)
    start = build(GridWorldModel, SMALL_WM, 0).state_dict()

    def drift(anchor: float) -> tuple[float, list[float]]:
        model = build(GridWorldModel, SMALL_WM, 0)
        h = fit(model, rows, dataclasses.replace(cfg, anchor=anchor), seed=3)
        return sum(float(((v - start[k]) ** 2).sum()) for k, v in model.state_dict().items() if v.is_floating_point()), h.train_loss

    free, loss_free = drift(0.0)
    tied, loss_tied = drift(10.0)
    assert free > 0 and tied < 0.1 * free  # a strong anchor keeps the weights near where the fit started
    assert loss_tied[-1] > loss_free[-1]  # and costs fit; the history records the data loss, not the penalty
    assert drift(1e-9) == drift(1e-9)  # deterministic
    with pytest.raises(ValueError, match="anchor"):
        fit(build(GridWorldModel, SMALL_WM, 0), rows, dataclasses.replace(cfg, anchor=-1.0))


def test_distill_keeps_the_other_actions_predictions_of_the_model_the_fit_starts_from():
    tr = _transitions(n=98)
    rows = _rows(tr)
    start = build(GridWorldModel, SMALL_WM, 0)
    fit(start, rows, TrainConfig(epochs=8, lr=1e-2, batch_size=16, val_fraction=0), seed=1)
    s, a, sn = rows
    with torch.no_grad():  # without dropout (no generator) the model agrees with itself; the other actions are drawn from torch's default stream
        assert float(start.distill_loss(start, s, a, sn)) == pytest.approx(0.0, abs=1e-5)
    one = tuple(t[a == 2] for t in rows)  # a refit on one action type only (forward), the skewed batch of a greedy strategy
    others = torch.stack([torch.full_like(a, b) for b in range(7) if b != 2])  # every other action at every state

    def drift(distill: float) -> float:
        """How far the refit moves the other actions' predictions: mean KL from the start model, over states x actions."""
        model = copy.deepcopy(start)
        fit(model, one, TrainConfig(epochs=15, lr=1e-2, batch_size=8, val_fraction=0, distill=distill), seed=3)
        with torch.no_grad():
            kl = []
            for b in others:
                tc, tk = start.logits(s, b)
                c, k = model.logits(s, b)
                kl.append(float(((tc.exp() * (tc - c)).sum((-1, -2)) + (tk.exp() * (tk - k)).sum(-1)).mean()))
        return sum(kl) / len(kl)

    free, kept = drift(0.0), drift(3.0)
    assert free > 0.05 and kept < 0.5 * free  # without the penalty a one-action refit moves the other actions' predictions
    assert drift(0.5) == drift(0.5)  # deterministic
    with pytest.raises(ValueError, match="distill"):
        fit(build(GridWorldModel, SMALL_WM, 0), rows, TrainConfig(epochs=1, distill=-1.0))
    with pytest.raises(ValueError, match="distill_loss"):
        fit(build(SparseInverseModel, InverseConfig(), 0), rows, TrainConfig(epochs=1, distill=1.0))


def test_restarts_keep_the_member_with_the_lowest_loss_on_the_data():
    rows = _rows(_transitions())
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=16, val_fraction=0)
    members, losses = [], []
    for j in range(3):
        m = build(GridWorldModel, SMALL_WM, 0)
        fit(m, rows, cfg, seed=5 + 1000 * j)
        members.append(m.state_dict())
        losses.append(_eval_loss(m.state_dict(), rows))
    assert len(set(losses)) == 3  # the members differ, so the choice is a real one
    best = int(np.argmin(losses))
    model = build(GridWorldModel, SMALL_WM, 0)
    h = fit(model, rows, dataclasses.replace(cfg, restarts=3), seed=5)
    assert len(h.train_loss) == 3 and h.best_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, members[best][k])
    with pytest.raises(ValueError, match="do not combine"):
        fit(build(GridWorldModel, SMALL_WM, 0), rows, dataclasses.replace(cfg, restarts=2, soup=2))
    with pytest.raises(ValueError, match="restarts"):
        fit(build(GridWorldModel, SMALL_WM, 0), rows, dataclasses.replace(cfg, restarts=0))


def test_progress_prints_a_line_once_its_period_has_passed(capsys):
    from wav.runtime import Progress

    p = Progress("fit thing", every=3600)
    p(lambda: 1 / 0)  # within the period: the text is not even built
    assert capsys.readouterr().err == ""
    p("step 2/5", force=True)
    Progress("episodes", every=0)(lambda: "1/3 done")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("fit thing: step 2/5, ") and err[0].endswith(" s") and err[1].startswith("episodes: 1/3 done")


def test_balanced_rows_give_every_action_an_equal_share_of_an_epoch():
    states = torch.arange(8.0).reshape(8, 1)
    actions = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2])  # 6 : 1 : 1
    rows = Rows(states, actions, states).balanced()
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat([b[1] for _ in range(300) for b in rows.epoch(4, g)])
    assert len(drawn) == 300 * 8
    share = torch.bincount(drawn, minlength=3).double() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)  # not 0.75 / 0.125 / 0.125
    train, val = rows.split(2, g)
    assert len(train) == 6 and train.weights is not None and val.weights is None
    assert [len(b[0]) for b in Rows(states, actions, states).epoch(4, g)] == [4, 4]  # unweighted: each row once
    with pytest.raises(ValueError, match="integer action"):
        Rows(states, torch.rand(8), states).balanced()
