"""`wav train rssm|robot-inverse` and `wav eval rssm|robot-inverse` (wav.cli.robot_models) on small synthetic pool
files: the checkpoint holds what eval needs to rebuild the model, eval's numbers are the domain's, and every bad
input is one line naming the file and the field, exit code 2, with nothing written. Needs h5py (robot venv)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from wav.data.sequences import linear_world

pytest.importorskip("h5py")

LAYOUT = {"names": ["ee_pos", "ee_vel", "cube"], "sizes": [7, 7, 6], "groups": ["ee", "robot", "object"]}
MASKS = {"warmup_4": [0, 1, 2, 3], "explore": [4, 5], "eval": [6, 7, 8]}
EPOCHS = ["--preset", "debug", "--epochs", "2", "--seed", "0"]


def write_pool(path, bad: str | None = None, task: str = "Synthetic", layout: dict = LAYOUT):
    from wav.data.robot_io import Trajectory, save_trajectories

    trajs, _ = linear_world(9, 40, np.random.default_rng(5), distractors=sum(layout["sizes"]) - 14)
    out = []
    for i, (s, a) in enumerate(trajs):
        s, a = s.copy(), a.copy()
        if bad == "nan" and i == 2:
            s[4, 2] = np.nan
        if bad == "range" and i == 2:
            a[1, 0] = 1.5
        out.append(Trajectory(s, a, np.zeros(len(a), np.float32), np.zeros(len(a), bool), False, "synthetic"))
    save_trajectories(path, out, {"task": task, "layout": layout}, MASKS)
    return path


def wav(argv) -> tuple[int, str, str]:
    """Run `wav argv` in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from wav.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(x) for x in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("robot_cli")
    pool = write_pool(root / "pool.hdf5")
    ckpts = {}
    for name, extra in (("rssm", []), ("robot-inverse", []), ("dense", ["--dense"])):
        ckpts[name] = root / f"{name}.pt"
        command = "robot-inverse" if name == "dense" else name
        rc, out, err = wav(["train", command, "--data", pool, "--filter", "warmup_4", *EPOCHS, "--out", ckpts[name], "--json", *extra])
        assert rc == 0, err
        ckpts[name + "_summary"] = json.loads(out.strip().splitlines()[-1])
    return root, pool, ckpts


def _partition(pool, key):
    from wav.cli.robot_models import load_partition

    return load_partition(str(pool), key)[0]


def test_train_rssm_checkpoint_records_what_eval_needs(trained):
    from wav.domains.manipulation import standardiser
    from wav.train import checkpoint_meta

    _, pool, ckpts = trained
    summary = ckpts["rssm_summary"]
    assert summary["model"] == "rssm" and summary["task"] == "Synthetic" and summary["trajectories"] == 4 and summary["transitions"] == 160
    blob = checkpoint_meta(ckpts["rssm"])
    meta = blob["meta"]
    assert blob["kind"] == "rssm" and meta["model"] == "rssm" and meta["preset"] == "debug" and meta["filter"] == "warmup_4"
    assert meta["layout"] == LAYOUT and meta["task"] == "Synthetic" and meta["train"]["epochs"] == 2
    assert meta["data_sha1"] == hashlib.sha1(pool.read_bytes()).hexdigest() and meta["data"] == str(pool.resolve())
    np.testing.assert_allclose(meta["scale"], standardiser(_partition(pool, "warmup_4")).numpy(), rtol=1e-6)


def test_train_rssm_openloop_scale_is_kept_in_the_checkpoint(trained, tmp_path):
    from wav.train import load_checkpoint

    root, pool, ckpts = trained
    assert load_checkpoint(ckpts["rssm"], kind="rssm").cfg.openloop_scale == 0.0
    out = tmp_path / "openloop.pt"
    rc, _, err = wav(["train", "rssm", "--data", pool, "--filter", "warmup_4", *EPOCHS, "--openloop-scale", "0.5", "--out", out, "--json"])
    assert rc == 0, err
    assert load_checkpoint(out, kind="rssm").cfg.openloop_scale == 0.5
    rc, _, err = wav(["eval", "rssm", "--ckpt", out, "--data", pool, "--filter", "eval", "--json"])
    assert rc == 0, err
    rc, _, err = wav(["train", "rssm", "--data", pool, "--filter", "warmup_4", "--openloop-scale", "nan", "--out", tmp_path / "bad.pt"])
    assert rc == 2 and "--openloop-scale" in err and not (tmp_path / "bad.pt").exists()


def test_eval_rssm_reports_the_domains_numbers_for_the_partition(trained):
    from wav.domains.base import PoolData
    from wav.domains.manipulation import ManipulationDomain, RSSMWorldModel, standardiser
    from wav.train import load_checkpoint

    _, pool, ckpts = trained
    rc, out, err = wav(["eval", "rssm", "--ckpt", ckpts["rssm"], "--data", pool, "--filter", "eval", "--horizon", "16", "--json"])
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["filter"] == "eval" and got["trajectories"] == 3 and got["horizon"] == 16
    test = _partition(pool, "eval")
    wm = RSSMWorldModel(load_checkpoint(ckpts["rssm"], kind="rssm"), standardiser(_partition(pool, "warmup_4")), window=16)
    want = ManipulationDomain(window=16).evaluate(wm, PoolData(test, test, test))
    assert got["pred_error"] == pytest.approx(want["pred_error"], rel=1e-6) and np.isfinite(got["pred_error"]) and got["pred_error"] > 0
    assert len(got["pred_error_by_step"]) == 15 and got["pred_error_by_step"] == pytest.approx(want["pred_error_by_step"], rel=1e-6)
    assert got["pred_error_by_group"] == pytest.approx(want["pred_error_by_group"], rel=1e-6)
    assert set(got["pred_error_by_group"]) == {"ee", "robot", "object"}
    rc, text, _ = wav(["eval", "rssm", "--ckpt", ckpts["rssm"], "--data", pool, "--filter", "eval"])  # text form, horizon 32
    assert rc == 0 and "pred_error: " in text and len(text.split("pred_error_by_step: ")[1].splitlines()[0].split()) == 31


@pytest.mark.parametrize("name, model", [("robot-inverse", "inverse"), ("dense", "dense_inverse")])
def test_robot_inverse_train_and_eval(trained, name, model):
    from wav.domains.manipulation import TrajectoryInverse
    from wav.experiments.robot_acquisition import inverse_diagnostics
    from wav.train import checkpoint_meta, load_checkpoint

    _, pool, ckpts = trained
    meta = checkpoint_meta(ckpts[name])
    assert meta["kind"] == "latent-inverse" and meta["meta"]["model"] == model and meta["meta"]["layout"] == LAYOUT
    rc, out, err = wav(["eval", "robot-inverse", "--ckpt", ckpts[name], "--data", pool, "--filter", "eval", "--json"])
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    want = inverse_diagnostics(TrajectoryInverse(load_checkpoint(ckpts[name], kind="latent-inverse")), _partition(pool, "eval"))
    assert got["model"] == model and got["action_mse"] == pytest.approx(want["action_mse"], rel=1e-6) and 0 < got["action_mse"] < 4
    assert len(got["r2_by_dim"]) == 7 and got["r2_by_dim"] == pytest.approx(want["r2_by_dim"], rel=1e-6)
    assert set(got["kept_by_group"]) == {"ee", "robot", "object"} and all(0 <= v <= 1 for v in got["kept_by_group"].values())


# ----- bad input: one line naming the file and the field, exit 2, nothing written ------------------------------


def refused(argv, *needles, where=None):
    before = sorted(p.name for p in where.iterdir()) if where is not None else None
    rc, out, err = wav(argv)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith("wav: error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    if where is not None:
        assert sorted(p.name for p in where.iterdir()) == before
    return lines[0]


@pytest.mark.parametrize("command", ["rssm", "robot-inverse"])
@pytest.mark.parametrize("bad, key, needles", [
    (None, "warmup_50", ["field 'mask/warmup_50'", "no such filter key", "eval, explore, warmup_4"]),
    ("nan", "warmup_4", ["demo_2/obs/ee_pos", "NaN"]),
    ("range", "warmup_4", ["demo_2/actions", "outside [-1, 1]"]),
])
def test_train_refuses_bad_pools_before_training(tmp_path, command, bad, key, needles):
    pool = write_pool(tmp_path / "pool.hdf5", bad)
    out = tmp_path / "m.pt"
    refused(["train", command, "--data", pool, "--filter", key, *EPOCHS, "--out", out], pool, *needles, where=tmp_path)
    assert not out.exists()


def test_train_refuses_a_missing_pool_at_parse_time(tmp_path):
    refused(["train", "rssm", "--data", tmp_path / "nowhere.hdf5", "--out", tmp_path / "m.pt"], "--data", "nowhere.hdf5", "no pool file", where=tmp_path)


def test_eval_refuses_a_partition_the_pool_lacks(trained):
    _, pool, ckpts = trained
    refused(["eval", "rssm", "--ckpt", ckpts["rssm"], "--data", pool, "--filter", "test"], pool, "field 'mask/test'", "warmup_4")


@pytest.mark.parametrize("variant, needles", [
    ("task", ["data.attrs['env_args'].task", "'Other'", "'Synthetic'"]),
    ("names", ["data.attrs['env_args'].layout", "peg:6", "cube:6"]),
    ("sizes", ["data.attrs['env_args'].layout", "cube:8", "cube:6"]),
])
@pytest.mark.parametrize("command", ["rssm", "robot-inverse"])
def test_eval_refuses_data_of_another_task_or_layout(trained, tmp_path, variant, needles, command):
    _, _, ckpts = trained
    layout = {**LAYOUT, "names": ["ee_pos", "ee_vel", "peg"]} if variant == "names" else {**LAYOUT, "sizes": [7, 7, 8]} if variant == "sizes" else LAYOUT
    pool = write_pool(tmp_path / "other.hdf5", task="Other" if variant == "task" else "Synthetic", layout=layout)
    line = refused(["eval", command, "--ckpt", ckpts[command], "--data", pool], pool, *needles)
    assert str(ckpts[command]) in line


def test_eval_refuses_checkpoints_of_another_model_kind(trained, tmp_path):
    from wav.config import model_preset
    from wav.models import GridWorldModel
    from wav.train import save_checkpoint

    _, pool, ckpts = trained
    refused(["eval", "rssm", "--ckpt", ckpts["robot-inverse"], "--data", pool], ckpts["robot-inverse"], "field 'kind'", "'latent-inverse'", "wav train rssm")
    refused(["eval", "robot-inverse", "--ckpt", ckpts["rssm"], "--data", pool], ckpts["rssm"], "field 'kind'", "'rssm'", "wav train robot-inverse")
    grid = save_checkpoint(tmp_path / "grid.pt", GridWorldModel(model_preset("debug").world_model))
    refused(["eval", "rssm", "--ckpt", grid, "--data", pool], grid, "field 'kind'", "'world-model'")
    blob = torch.load(ckpts["rssm"], weights_only=False)
    del blob["meta"]["scale"]
    torch.save(blob, tmp_path / "noscale.pt")
    refused(["eval", "rssm", "--ckpt", tmp_path / "noscale.pt", "--data", pool], "noscale.pt", "field 'meta.scale'")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    refused(["eval", "robot-inverse", "--ckpt", tmp_path / "junk.pt", "--data", pool], "junk.pt", "not a readable checkpoint")


def test_eval_refuses_a_checkpoint_that_is_not_a_file(trained, tmp_path):
    _, pool, ckpts = trained
    refused(["eval", "rssm", "--ckpt", tmp_path, "--data", pool], "--ckpt", tmp_path, "is a folder")
    refused(["eval", "robot-inverse", "--ckpt", tmp_path / "none.pt", "--data", pool], "--ckpt", "none.pt", "no such file")
    refused(["eval", "rssm", "--ckpt", ckpts["rssm"], "--data", pool, "--horizon", "1"], "--horizon", "must be >= 2")
