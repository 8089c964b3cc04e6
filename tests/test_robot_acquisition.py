"""The manipulation domain on the shared pool protocol (wav.domains.manipulation, wav.experiments.robot_acquisition,
`wav reproduce robot-acquisition`), on synthetic linear-world trajectories: no simulator needed. The HDF5 tests
need h5py (the robot venv has it)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from wav.config import PoolConfig, TrainConfig
from wav.data.sequences import linear_world
from wav.domains.base import PoolData
from wav.domains.manipulation import DOMAIN_PRESETS, RecordedFuture, TrajectorySet
from wav.experiments.robot_acquisition import ROUND_PRESETS

D_OBJ = 6
LAYOUT = {"names": ["ee_pos", "ee_vel", "cube"], "sizes": [7, 7, D_OBJ], "groups": ["ee", "robot", "object"]}
FAST = TrainConfig(epochs=4, lr=3e-3, batch_size=16, val_fraction=0.0)
DOMAIN = replace(DOMAIN_PRESETS["debug"], world_model_train=FAST, inverse_train=replace(FAST, batch_size=128))
ROUND = replace(ROUND_PRESETS["debug"], refit=replace(FAST, epochs=2), inverse_refit=replace(FAST, epochs=2, batch_size=128))


def trajectories(n: int, steps: int, seed: int):
    trajs, _ = linear_world(n, steps, np.random.default_rng(seed), distractors=D_OBJ)
    return trajs


def dataset(n: int, steps: int, seed: int, ragged: bool = False) -> TrajectorySet:
    trajs = trajectories(n, steps, seed)
    if ragged:  # shorter episodes: rows are NaN-padded
        trajs = [(s[: steps - 3 * i + 1], a[: steps - 3 * i]) if i < 3 else (s, a) for i, (s, a) in enumerate(trajs)]
    return TrajectorySet.of(trajs, LAYOUT)


@pytest.fixture(scope="module")
def world():
    seed_set, pool, test = dataset(12, 40, 0), dataset(10, 40, 1, ragged=True), dataset(4, 40, 2)
    wm = DOMAIN.fit("world_model", seed_set, 0)
    return seed_set, pool, test, wm


def test_domain_contract_shapes_and_padding(world):
    seed_set, pool, test, wm = world
    b = DOMAIN.batch(pool)
    d, a = 7 + 7 + D_OBJ, 7
    assert b.states.shape == (10, 41 * d) and b.actions.shape == (10, 40 * a) and b.next_states is b.states
    assert torch.isnan(b.states[1]).sum() == 3 * d and torch.isnan(b.actions[1]).sum() == 3 * a  # padded tail
    assert torch.isfinite(b.states[5]).all()
    assert len(DOMAIN.concat([seed_set, DOMAIN.subset(pool, np.array([1, 4]))])) == 14
    assert DOMAIN.space.dim == 7 and len(DOMAIN.space.counts(b.actions.numpy())) == 7 and np.isfinite(DOMAIN.space.counts(b.actions.numpy())).all()
    loss = wm.loss(*b.tensors())
    assert loss.shape == (10,) and torch.isfinite(loss).all() and (loss >= 0).all()
    pred = wm.predict(b.states, b.actions)
    assert pred.shape == b.states.shape and torch.equal(torch.isnan(pred), torch.isnan(b.states))
    inv = DOMAIN.fit("inverse", seed_set, 0)
    inferred = inv.infer(b.states, b.next_states)
    assert inferred.shape == b.actions.shape and torch.equal(torch.isnan(inferred), torch.isnan(b.actions))
    assert inferred[torch.isfinite(inferred)].abs().max() <= 1
    sub = RecordedFuture().sample(b.states, 3)
    assert sub.shape == (10, 3, b.states.shape[1]) and torch.allclose(sub[:, 2], b.states, equal_nan=True)
    metrics = DOMAIN.evaluate(wm, PoolData(seed_set, pool, test))
    assert set(metrics) == {"pred_error", "pred_error_by_step", "pred_error_by_group"}
    assert len(metrics["pred_error_by_step"]) == 31 and set(metrics["pred_error_by_group"]) == {"ee", "robot", "object"}
    json.dumps(metrics)
    with pytest.raises(ValueError, match="members >= 2"):
        wm.uncertainty(b.states, b.actions, 2, None)
    ens = DOMAIN.fit("ensemble", seed_set, 0, members=2)
    assert ens.members == 2 and ens.disagreement(b.states, b.actions).shape == (10,)
    with pytest.raises(ValueError, match="needs ManipulationDomain.task"):
        DOMAIN.make_env(0)


def test_oracle_ranks_a_trajectory_the_world_model_cannot_follow_first(world):
    from wav.acquire import Models, make_strategy
    from wav.config import ScoringConfig

    seed_set, _, _, _ = world
    wm = DOMAIN.fit("world_model", seed_set, 0, train=replace(FAST, epochs=40))
    trajs = [(s, a) for s, a in dataset(6, 40, 3).trajectories]
    s, a = trajs[2]
    trajs[2] = (s, -a)  # the recorded states did not follow these actions
    cand = DOMAIN.batch(TrajectorySet.of(trajs, LAYOUT))
    scores = make_strategy("oracle").score(cand, Models(world_model=wm, space=DOMAIN.space), ScoringConfig(), torch.Generator())
    assert int(scores.argmax()) == 2


def test_run_pool_two_seeds_random_wav_oracle_write_records(world, tmp_path):
    from wav.loop import pool_oracle, run_pool, shared_models

    seed_set, pool, test, _ = world
    data = PoolData(seed_set, pool, test)
    for seed in (0, 1):
        wm = DOMAIN.fit("world_model", seed_set, seed)
        inv = DOMAIN.fit("inverse", seed_set, seed)
        start, oracle = DOMAIN.evaluate(wm, data), pool_oracle(DOMAIN, wm, pool)
        for s in ("random", "wav", "oracle"):
            parts = {"world_model": wm, "inverse": inv} if s == "wav" else {"world_model": wm}
            shared = shared_models(RecordedFuture() if s == "wav" else None, parts)
            rows = run_pool(DOMAIN, s, seed, data, shared, PoolConfig(rounds=2, budget=2), ROUND, tmp_path / s / f"seed{seed}", None, start, oracle)
            assert [r["round"] for r in rows] == [0, 1, 2] and [r["labels"] for r in rows] == [12, 14, 16]
            assert all(np.isfinite(r["pred_error"]) for r in rows) and np.isfinite(rows[1]["spearman"])
            assert (tmp_path / s / f"seed{seed}" / "done").exists()
            written = [json.loads(x) for x in (tmp_path / s / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
            assert written == json.loads(json.dumps(rows))
            if s == "oracle":
                assert rows[1]["spearman"] == pytest.approx(1.0)
            # the labelled batches: pool indices, disjoint across rounds, and the round-1 batch's recorded true error is theirs
            c1, c2 = rows[1]["chosen"], rows[2]["chosen"]
            assert len(c1) == len(c2) == 2 and not set(c1) & set(c2) and all(0 <= i < len(pool) for i in c1 + c2)
            assert rows[1]["oracle_error_of_chosen"] == pytest.approx(float(np.mean(np.asarray(oracle)[c1])))


def test_the_last_round_refits_only_the_evaluated_world_model(world, tmp_path, monkeypatch):
    """After the last round nothing scores again: the ensemble and the inverse model are refit after round 1
    only, and the records equal those of a run that refits them after every round, to the last bit."""
    from wav.domains.manipulation import ManipulationDomain
    from wav.loop import _Run, pool_oracle, run_pool, shared_models

    seed_set, pool, test, wm = world
    data = PoolData(seed_set, pool, test)
    start, oracle = DOMAIN.evaluate(wm, data), pool_oracle(DOMAIN, wm, pool)
    parts = {"world_model": wm, "inverse": DOMAIN.fit("inverse", seed_set, 0), "ensemble": DOMAIN.fit("ensemble", seed_set, 0, members=2)}
    fits, fit, refit = [], ManipulationDomain.fit, _Run.refit
    monkeypatch.setattr(ManipulationDomain, "fit", lambda self, part, *a, **k: fits.append(part) or fit(self, part, *a, **k))

    def records(strategy: str, name: str) -> str:
        fits.clear()
        mine = {p: parts[p] for p in ("world_model", "inverse" if strategy == "wav" else "ensemble")}  # as a run gets them
        shared = shared_models(RecordedFuture() if strategy == "wav" else None, mine)
        run_pool(DOMAIN, strategy, 0, data, shared, PoolConfig(rounds=2, budget=2), ROUND, tmp_path / name, None, start, oracle)
        return (tmp_path / name / "metrics.jsonl").read_text()

    lean = {s: (records(s, s), list(fits)) for s in ("ensemble", "wav")}
    assert lean["ensemble"][1] == ["world_model", "ensemble", "world_model"]
    assert lean["wav"][1] == ["world_model", "inverse", "world_model"]
    monkeypatch.setattr(_Run, "refit", lambda self, seed, **_: refit(self, seed))  # every part after every round
    for s in ("ensemble", "wav"):
        assert records(s, s + "-full") == lean[s][0]
        assert fits == ["world_model", s if s == "ensemble" else "inverse"] * 2


def test_wav_never_reads_the_candidates_actions(world):
    """In the Box space a WAV score is a function of the recorded states only."""
    from wav.acquire import Models, make_strategy
    from wav.config import ScoringConfig

    seed_set, pool, _, wm = world
    inv = DOMAIN.fit("inverse", seed_set, 0)
    b = DOMAIN.batch(pool)
    models = Models(world_model=wm, space=DOMAIN.space, subgoal=RecordedFuture(), inverse=inv)
    wav = make_strategy("wav")
    one = wav.score(b, models, ScoringConfig(), torch.Generator())
    two = wav.score(replace(b, actions=torch.rand_like(b.actions)), models, ScoringConfig(), torch.Generator())
    assert torch.equal(one, two) and torch.isfinite(one).all()


def test_latent_score_space_changes_the_verification_loss_only(world):
    """`score_space='latent'` (the release's latent-feature mismatch) changes the cycle's loss, not the
    predictions, the oracle's true error or the evaluation; padding is ignored; unknown spaces are refused."""
    from wav.domains.manipulation import RSSMWorldModel

    seed_set, pool, test, wm = world
    latent = RSSMWorldModel(wm.rssm, wm.scale, wm.window, score_space="latent").eval()
    b = DOMAIN.batch(pool)
    p_state, l_state = wm.predict_and_loss(b.states, b.actions, b.states)
    p_latent, l_latent = latent.predict_and_loss(b.states, b.actions, b.states)
    assert torch.allclose(p_state, p_latent, equal_nan=True, atol=1e-5)
    assert l_latent.shape == (10,) and torch.isfinite(l_latent).all() and (l_latent >= 0).all()
    assert not torch.allclose(l_state, l_latent)
    assert torch.equal(latent.loss(b.states, b.actions, b.states), wm.loss(b.states, b.actions, b.states))
    data = PoolData(seed_set, pool, test)
    assert DOMAIN.evaluate(latent, data) == DOMAIN.evaluate(wm, data)
    # a ragged row scores as its unpadded self
    row = 1
    steps = int(torch.isfinite(b.states[row]).sum()) // (7 + 7 + D_OBJ)
    short_s, short_a = b.states[row : row + 1, : steps * 20], b.actions[row : row + 1, : (steps - 1) * 7]
    assert torch.allclose(latent.predict_and_loss(short_s, short_a, short_s)[1], l_latent[row : row + 1], rtol=1e-4)
    with pytest.raises(ValueError, match="score_space"):
        RSSMWorldModel(wm.rssm, wm.scale, wm.window, score_space="pixels")
    ens = replace(DOMAIN, score_space="latent").fit("ensemble", seed_set, 0, members=2)
    assert ens.score_space == "latent"
    dis = ens.disagreement(b.states, b.actions)
    assert dis.shape == (10,) and torch.isfinite(dis).all() and (dis > 0).all()


def test_openloop_scale_reaches_every_rssm_the_experiment_builds(world):
    """`--openloop-scale` (RobotAcquisitionExperiment.openloop_scale -> ManipulationDomain.rssm_openloop ->
    RSSMConfig.openloop_scale): the warm-up model and the ensemble carry it; 0 keeps the preset's objective."""
    from wav.experiments.robot_acquisition import RobotAcquisitionExperiment

    seed_set = world[0]
    assert world[3].rssm.cfg.openloop_scale == 0.0
    exp = RobotAcquisitionExperiment(task="Synthetic", data="x", preset="debug", openloop_scale=0.5)
    assert exp.domain.rssm_openloop == 0.5 and RobotAcquisitionExperiment(task="Synthetic", data="x").domain.rssm_openloop == 0.0
    domain = replace(DOMAIN, rssm_openloop=0.5)
    assert domain.build("world_model", seed_set, 0).rssm.cfg.openloop_scale == 0.5
    assert domain.build("ensemble", seed_set, 0, members=2).rssm.cfg.openloop_scale == 0.5


def test_latent_score_ranks_states_the_actions_cannot_produce_first(world):
    """Scored with the candidate's actions, the latent mismatch is largest for the trajectory whose recorded
    states did not follow them (the posterior reads the frames, the prior only the actions)."""
    from wav.domains.manipulation import RSSMWorldModel

    seed_set, _, _, _ = world
    wm = DOMAIN.fit("world_model", seed_set, 0, train=replace(FAST, epochs=40))
    latent = RSSMWorldModel(wm.rssm, wm.scale, wm.window, score_space="latent").eval()
    trajs = [(s, a) for s, a in dataset(6, 40, 3).trajectories]
    s, a = trajs[2]
    trajs[2] = (s, -a)
    cand = DOMAIN.batch(TrajectorySet.of(trajs, LAYOUT))
    scores = latent.predict_and_loss(cand.states, cand.actions, cand.states)[1]
    assert int(scores.argmax()) == 2


# ----- the pool file, the experiment and the CLI (h5py) --------------------------------------------------------


def frames_of(states: np.ndarray, seed: int = 0) -> np.ndarray:
    """Synthetic 64x64 RGB frames (T+1, 64, 64, 3) uint8 that show each state's first three features."""
    rng = np.random.default_rng(seed)
    base = np.clip(128 + 40 * states[:, :3], 0, 255)[:, None, None, :]
    return np.clip(base + rng.integers(-8, 9, (len(states), 64, 64, 3)), 0, 255).astype(np.uint8)


def write_pool(path, bad: str | None = None, task: str = "Synthetic", images: bool = False):
    from wav.data.robot_io import Trajectory, save_trajectories

    trajs = trajectories(14, 40, 5)
    out = []
    for i, (s, a) in enumerate(trajs):
        s, a = s.copy(), a.copy()
        if bad == "nan" and i == 3:
            s[4, 2] = np.nan
        if bad == "range" and i == 3:
            a[1, 0] = 1.5
        out.append(Trajectory(s, a, np.zeros(len(a), np.float32), np.zeros(len(a), bool), False, "synthetic",
                              images=frames_of(s, i) if images else None))
    masks = {"warmup_4": [0, 1, 2, 3], "explore": list(range(4, 11)), "eval": [11, 12, 13]}
    save_trajectories(path, out, {"task": task, "layout": LAYOUT}, masks)
    return path


def cli(argv, capsys):
    from wav.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_debug_run_writes_records_and_json(tmp_path, capsys):
    pytest.importorskip("h5py")
    pool = write_pool(tmp_path / "pool.hdf5")
    out = tmp_path / "out"
    argv = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0",
            "--strategies", "random,wav,oracle", "--preset", "debug", "--jobs", "1", "--out", str(out), "--json"]
    rc, stdout, err = cli(argv, capsys)
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["task"] == "Synthetic" and summary["warmup"] == 4 and set(summary["strategies"]) == {"random", "wav", "oracle"}
    assert summary["strategies"]["oracle"]["spearman"] == pytest.approx(1.0) and summary["seconds_per_seed"] > 0
    for s in ("random", "wav", "oracle"):
        for seed in (0,):
            d = out / "runs" / s / f"seed{seed}"
            assert (d / "done").exists() and len((d / "metrics.jsonl").read_text().splitlines()) == 3
            assert json.loads((d / "config.json").read_text())["settings"]["data"] == str(pool.resolve())
    assert (out / "table.md").exists() and (out / "figure.png").exists()
    # each run's final world model is saved, and rebuilds the error its last round recorded
    from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, load_data, load_world_model

    wm, meta = load_world_model(out / "runs" / "wav" / "seed0" / "world_model.pt")
    data = load_data(RobotAcquisitionExperiment(task="Synthetic", data=str(pool), warmup=4, preset="debug"))
    last = json.loads((out / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text().splitlines()[-1])
    assert meta["task"] == "Synthetic" and last["pred_error"] == pytest.approx(DOMAIN_PRESETS["debug"].evaluate(wm, data)["pred_error"], rel=1e-6)
    results = json.loads((out / "results.json").read_text())
    assert results["strategies"]["wav"]["reads_actions"] is False and "inverse" in results["inverse_eval"]["0"]
    rc, stdout, err = cli(argv, capsys)  # resume: nothing left to run
    assert rc == 0 and json.loads(stdout.strip().splitlines()[-1])["strategies"]["wav"]["pred_error"] == summary["strategies"]["wav"]["pred_error"]
    again = json.loads((out / "results.json").read_text())  # what the first invocation measured survives the resume
    assert again["inverse_eval"] == results["inverse_eval"] and again["job_seconds"] == results["job_seconds"] and again["job_seconds"][0]["peak_rss_mb"] > 0
    assert again["wall_seconds"] == results["wall_seconds"]


def test_cli_openloop_scale_is_recorded_and_reported(tmp_path, capsys):
    pytest.importorskip("h5py")
    from wav.experiments.robot_acquisition import load_world_model

    write_pool(tmp_path / "pool.hdf5")
    out = tmp_path / "out"
    rc, _, err = cli(["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0",
                      "--strategies", "random", "--preset", "debug", "--jobs", "1", "--openloop-scale", "0.5", "--out", str(out), "--json"], capsys)
    assert rc == 0, err
    run = out / "runs" / "random" / "seed0"
    assert json.loads((run / "config.json").read_text())["settings"]["domain"]["rssm_openloop"] == 0.5
    assert load_world_model(run / "world_model.pt")[0].rssm.cfg.openloop_scale == 0.5
    assert json.loads((out / "results.json").read_text())["openloop_scale"] == 0.5
    assert "open-loop loss at weight 0.5" in (out / "table.md").read_text()


def test_cli_random_mix_reaches_the_runs_and_keeps_the_seed_set_fits(tmp_path, capsys):
    """`--random-mix wav=1` makes WAV pick its whole batch uniformly: its picks are then random's own (same run rng
    stream up to the strategy name, so compared through the recorded settings and the batch errors), the override
    is recorded and reported, and the seed-set fits of a folder run without it are loaded, not refit."""
    pytest.importorskip("h5py")
    import shutil

    write_pool(tmp_path / "pool.hdf5")
    base = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0",
            "--strategies", "wav", "--preset", "debug", "--jobs", "1", "--json"]
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    rc, _, err = cli(base + ["--out", str(plain)], capsys)
    assert rc == 0, err
    shutil.copytree(plain / "fits", mixed / "fits")
    rc, _, err = cli(base + ["--random-mix", "wav=1", "--out", str(mixed)], capsys)
    assert rc == 0, err
    for f in (plain / "fits").rglob("*.pt"):  # the seed-set fits were loaded, not refit (a refit rewrites them, seconds and all)
        assert f.read_bytes() == (mixed / f.relative_to(plain)).read_bytes()
    run = mixed / "runs" / "wav" / "seed0"
    assert json.loads((run / "config.json").read_text())["settings"]["round"]["random_mix"] == [["wav", 1.0]]
    assert json.loads((mixed / "results.json").read_text())["random_mix"] == {"wav": 1.0}
    assert "`--random-mix`): wav 1." in (mixed / "table.md").read_text()
    rows = {f: [json.loads(x) for x in (f / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text().splitlines()] for f in (plain, mixed)}
    assert rows[plain][0] == rows[mixed][0]  # round 0: the same seed-set world model
    # uniform picks: the batch is not WAV's top-scored one, so its true error differs
    assert rows[plain][1]["oracle_error_of_chosen"] != rows[mixed][1]["oracle_error_of_chosen"]


@pytest.mark.parametrize("value, needle", [("wav=1.5", "bad entry"), ("wav", "bad entry"), ("wav=x", "bad entry"),
                                           ("nosuch=0.3", "unknown strategy"), (",", "nothing in")])
def test_cli_refuses_a_bad_random_mix(tmp_path, capsys, value, needle):
    pytest.importorskip("h5py")
    write_pool(tmp_path / "pool.hdf5")
    with pytest.raises(SystemExit) as e:  # refused while parsing
        cli(["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0",
             "--strategies", "wav", "--preset", "debug", "--random-mix", value, "--out", str(tmp_path / "out")], capsys)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "--random-mix" in err and needle in err
    assert not (tmp_path / "out").exists()


def test_two_jobs_give_the_runs_of_one_job(tmp_path, capsys):
    """The seed-set fits and the (strategy, seed) runs go to parallel workers in two waves: the schedule and the job
    count change no metric, and the timings are still gathered per seed (every fit and run of it)."""
    pytest.importorskip("h5py")
    write_pool(tmp_path / "pool.hdf5")
    argv = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0-1",
            "--strategies", "random,ensemble,wav-dense,wav", "--preset", "debug", "--json"]
    outs = {j: tmp_path / f"jobs{j}" for j in (1, 2)}
    for j, out in outs.items():
        rc, _, err = cli(argv + ["--jobs", str(j), "--out", str(out)], capsys)
        assert rc == 0, err
    for s in ("random", "ensemble", "wav-dense", "wav"):
        for seed in (0, 1):
            rows = [(out / "runs" / s / f"seed{seed}" / "metrics.jsonl").read_text() for out in outs.values()]
            assert rows[0] == rows[1] and len(rows[0].splitlines()) == 3
    res = {j: json.loads((out / "results.json").read_text()) for j, out in outs.items()}
    assert res[1]["inverse_eval"] == res[2]["inverse_eval"] and set(res[2]["inverse_eval"]["1"]) == {"inverse", "dense_inverse"}
    for row in res[2]["job_seconds"]:
        assert set(row["fit_seconds"]) == {"world_model", "inverse", "dense_inverse", "ensemble"}
        assert set(row["run_seconds"]) == {"random", "ensemble", "wav-dense", "wav"} and row["peak_rss_mb"] > 0
        assert row["seconds"] >= sum(row["run_seconds"].values()) + sum(row["fit_seconds"].values()) - 1e-6
    assert res[2]["jobs"] == 2 and res[2]["wave_seconds"]["fits"] > 0 and res[2]["wave_seconds"]["runs"] > 0


def test_a_resume_loads_the_seed_set_fits_and_gives_the_runs_of_one_invocation(tmp_path, capsys):
    """A resume that adds strategies loads the first wave's fits from `<out>/fits` instead of fitting again, and its
    runs equal those of one invocation with every strategy; a fit kept under other settings is not loaded."""
    pytest.importorskip("h5py")
    from dataclasses import replace

    from wav.experiments.common import file_sha1
    from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, fit_path, load_fit

    pool = write_pool(tmp_path / "pool.hdf5")
    argv = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0",
            "--preset", "debug", "--jobs", "1", "--json"]
    once, twice = tmp_path / "once", tmp_path / "twice"
    rc, _, err = cli(argv + ["--strategies", "random,wav-dense,oracle", "--out", str(once)], capsys)
    assert rc == 0, err
    rc, _, err = cli(argv + ["--strategies", "random", "--out", str(twice)], capsys)
    assert rc == 0, err
    assert fit_path(RobotAcquisitionExperiment(out=str(twice)), 0, "world_model").exists()
    rc, _, err = cli(argv[:-1] + ["--strategies", "random,wav-dense,oracle", "--out", str(twice)], capsys)  # with progress lines
    assert rc == 0, err
    assert "seed-set fits: 1 of 2 loaded" in err  # the world model; the dense inverse model is new
    for s in ("random", "wav-dense", "oracle"):
        assert (once / "runs" / s / "seed0" / "metrics.jsonl").read_text() == (twice / "runs" / s / "seed0" / "metrics.jsonl").read_text()
    res = json.loads((twice / "results.json").read_text())
    assert set(res["job_seconds"][0]["fit_seconds"]) == {"world_model", "dense_inverse"}
    exp = RobotAcquisitionExperiment(task="Synthetic", data=str(pool), warmup=4, preset="debug", seeds=(0,), out=str(twice))
    digest = file_sha1(pool)
    assert load_fit(exp, 0, "world_model", digest)["cached"] is True
    assert load_fit(replace(exp, openloop_scale=0.5), 0, "world_model", digest) is None
    assert load_fit(exp, 0, "world_model", "another pool") is None and load_fit(exp, 1, "world_model", digest) is None


def test_cli_report_only_runs_nothing_and_reports_the_seeds_every_strategy_finished(tmp_path, capsys):
    pytest.importorskip("h5py")
    write_pool(tmp_path / "pool.hdf5")
    out = tmp_path / "out"
    argv = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(tmp_path), "--warmup", "4", "--seeds", "0-1",
            "--strategies", "random,oracle", "--preset", "debug", "--jobs", "1", "--out", str(out), "--json"]
    rc, stdout, err = cli(argv, capsys)
    assert rc == 0, err
    assert json.loads((out / "results.json").read_text())["strategies"]["random"]["seeds"] == [0, 1]
    (out / "runs" / "oracle" / "seed1" / "done").unlink()  # as if the run had been stopped there
    rc, stdout, err = cli(argv + ["--report-only"], capsys)
    assert rc == 0, err
    assert "seeds [1] left out of the report" in err
    results = json.loads((out / "results.json").read_text())
    assert results["strategies"]["random"]["seeds"] == [0] and results["strategies"]["oracle"]["seeds"] == [0] and results["n_seeds"] == 1
    assert not (out / "runs" / "oracle" / "seed1" / "done").exists()  # nothing ran


@pytest.mark.parametrize("bad, args, field", [
    (None, ["--warmup", "7"], "no filter key 'warmup_7'"),
    ("nan", [], "demo_3/obs/ee_pos: contains NaN"),
    ("range", [], "demo_3/actions: outside [-1, 1]"),
    (None, ["--task", "Lift"], "env_args'].task is 'Synthetic'"),
])
def test_cli_bad_inputs_are_one_line_before_any_work(tmp_path, capsys, bad, args, field):
    pytest.importorskip("h5py")
    pool = write_pool(tmp_path / "pool.hdf5", bad)
    out = tmp_path / "out"
    argv = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(pool), "--warmup", "4", "--seeds", "0", "--preset", "debug",
            "--out", str(out)]
    argv = argv + args if "--task" not in args else [x if x != "Synthetic" else "Lift" for x in argv]
    rc, stdout, err = cli(argv, capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and field in err and str(pool) in err
    assert not out.exists()


def test_cli_refuses_a_negative_openloop_scale_before_any_work(tmp_path, capsys):
    pytest.importorskip("h5py")
    pool = write_pool(tmp_path / "pool.hdf5")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:  # refused while parsing
        cli(["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(pool), "--warmup", "4", "--seeds", "0",
             "--preset", "debug", "--openloop-scale", "-1", "--out", str(out)], capsys)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "--openloop-scale" in err and ">= 0" in err
    assert not out.exists()


def test_cli_refuses_a_strategy_the_domain_cannot_serve(tmp_path, capsys):
    pytest.importorskip("h5py")
    pool = write_pool(tmp_path / "pool.hdf5")
    rc, _, err = cli(["reproduce", "robot-acquisition", "--task", "Synthetic", "--data", str(pool), "--warmup", "4", "--seeds", "0",
                      "--strategies", "wav,uncertainty", "--preset", "debug", "--out", str(tmp_path / "o")], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "'uncertainty' cannot run" in err and "members >= 2" in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_missing_pool_and_unknown_strategies(tmp_path, capsys):
    rc, _, err = cli(["reproduce", "robot-acquisition", "--task", "PullCube", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "no pool file" in err and not (tmp_path / "o").exists()
    (tmp_path / "pool.hdf5").write_bytes(b"")
    rc, _, err = cli(["reproduce", "robot-acquisition", "--task", "PullCube", "--data", str(tmp_path), "--strategies", "wav,bogus",
                      "--out", str(tmp_path / "o")], capsys)
    assert rc == 1 and "bogus" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_cli_several_tasks_run_each_and_write_the_cross_task_table(tmp_path, capsys):
    pytest.importorskip("h5py")
    for task in ("Lift", "PullCube"):
        (tmp_path / "data" / task).mkdir(parents=True)
        write_pool(tmp_path / "data" / task / "pool.hdf5", task=task)
    out = tmp_path / "out"
    argv = ["reproduce", "robot-acquisition", "--task", "Lift,PullCube", "--data", str(tmp_path / "data"), "--warmup", "4", "--seeds", "0",
            "--strategies", "random,wav,oracle", "--preset", "debug", "--jobs", "1", "--out", str(out), "--json"]
    rc, stdout, err = cli(argv, capsys)
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["task"] == "Lift,PullCube" and set(summary["tasks"]) == {"Lift", "PullCube"}
    assert summary["tasks"]["PullCube"]["strategies"]["oracle"]["spearman"] == pytest.approx(1.0)
    for task in ("Lift", "PullCube"):
        assert (out / task / "table.md").exists() and (out / task / "runs" / "wav" / "seed0" / "done").exists()
    table = (out / "table.md").read_text()
    assert "| Lift | 1 |" in table and "| PullCube | 1 |" in table and "Targets over these 2 of 6 tasks" in table
    assert set(json.loads((out / "results.json").read_text())["tasks"]) == {"Lift", "PullCube"}
    # a task without a pool, and an unknown task: one line each, before any work
    rc, _, err = cli([x if x != "Lift,PullCube" else "Lift,PokeCube" for x in argv[:-1]] + ["--out", str(tmp_path / "o2")], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "no pool for PokeCube" in err and not (tmp_path / "o2").exists()
    rc, _, err = cli([x if x != "Lift,PullCube" else "Lift,Bogus" for x in argv[:-1]] + ["--out", str(tmp_path / "o3")], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Bogus" in err and not (tmp_path / "o3").exists()


def test_tasks_table_scores_the_targets():
    from wav.experiments.robot_acquisition import tasks_table

    def task(errors, rhos, r1, p):
        names = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")
        return {"n_seeds": 5, "strategies": {s: {"pred_error": e, "spearman": r} for s, e, r in zip(names, errors, rhos)},
                "paired_wav_minus": {s: {"pred_error": {"mean": errors[4] - e, "p_ttest": p}} for s, e in zip(names, errors) if s != "wav"},
                "curves": {"wav": {"pred_error": [2.0, r1, errors[4]]}, "random": {"pred_error": [2.0, 1.9, errors[0]]}}}

    good = task((1.5, 1.4, 1.45, 1.3, 1.1, 1.0), (0.0, 0.5, 0.6, 0.8, 0.9, 1.0), 1.45, 0.01)
    bad = task((1.0, 1.4, 1.45, 1.3, 1.2, 1.0), (0.0, 0.5, 0.95, 0.8, 0.9, 1.0), 1.6, 0.2)
    table = tasks_table({"Lift": good, "Can": bad})
    assert "| Lift | 5 | 1.500 | 1.400 | 1.450 | 1.300 | 1.100 | 1.000 | 0.900 (0.500, 0.600) | -0.200 vs wav-dense (p=0.01) | yes |" in table
    assert "| Can | 5 |" in table and "+0.200 vs random (p=0.2) | no |" in table
    assert ("WAV below all four baselines on 1 (with paired p < 0.05 against each on 1" in table and "WAV / oracle error 1.15" in table
            and "above ensemble's and progress's on 1" in table and "at or below random after round 2 on 1" in table)


def test_quaternion_features_are_made_sign_continuous():
    from wav.domains.manipulation import continuous_quaternions, quaternion_slices

    layout = {"names": ["tcp_pose", "gripper", "cube_quat"], "sizes": [7, 2, 4], "groups": ["ee", "ee", "object"]}
    assert quaternion_slices(layout) == [slice(3, 7), slice(9, 13)]
    rng = np.random.default_rng(0)
    angle = np.linspace(0, 0.3, 20)
    q = np.stack([np.sin(angle), np.cos(angle), 0 * angle, 0 * angle], 1)  # w ~ 0: the simulator flips its sign
    flipped = q * np.where(rng.random(20) < 0.4, -1, 1)[:, None]
    states = np.concatenate([rng.normal(size=(20, 3)), flipped, rng.normal(size=(20, 2)), -q], 1).astype(np.float32)
    out = continuous_quaternions(states, layout)
    for sl in quaternion_slices(layout):
        np.testing.assert_allclose(out[:, sl], q, atol=1e-6)  # continuous, first frame's largest component > 0
    np.testing.assert_array_equal(out[:, :3], states[:, :3])  # other features untouched
    assert TrajectorySet.of([(states, np.zeros((19, 7), np.float32))], layout).trajectories[0][0][5, 3] == out[5, 3]


def test_merge_seconds_keeps_an_earlier_invocations_runs_of_a_seed_it_reruns():
    """A resume that adds a strategy reruns the seed's seed-set fit: the merged row keeps the first invocation's
    runs and counts the world model's fit once; a forced rerun of a strategy replaces its seconds."""
    from wav.experiments.robot_acquisition import merge_seconds

    first = [{"seed": 0, "seconds": 100.0, "fit_seconds": {"world_model": 40.0}, "run_seconds": {"random": 30.0, "wav": 30.0}, "peak_rss_mb": 500.0},
             {"seed": 1, "seconds": 90.0, "fit_seconds": {"world_model": 30.0}, "run_seconds": {"random": 30.0, "wav": 30.0}, "peak_rss_mb": 400.0}]
    second = [{"seed": 0, "seconds": 110.0, "fit_seconds": {"world_model": 45.0, "ensemble": 25.0}, "run_seconds": {"ensemble": 40.0}, "peak_rss_mb": 600.0}]
    merged = merge_seconds(first, second)
    assert merged[1] == first[1]
    assert merged[0] == {"seed": 0, "seconds": 165.0, "fit_seconds": {"world_model": 40.0, "ensemble": 25.0},
                         "run_seconds": {"random": 30.0, "wav": 30.0, "ensemble": 40.0}, "peak_rss_mb": 600.0}
    forced = merge_seconds(first[:1], [{"seed": 0, "seconds": 75.0, "fit_seconds": {"world_model": 40.0}, "run_seconds": {"wav": 35.0}, "peak_rss_mb": 1.0}])
    assert forced[0]["seconds"] == 105.0 and forced[0]["run_seconds"] == {"random": 30.0, "wav": 35.0}
    assert merge_seconds([], second) == second
    redone = [{"seed": 0, "seconds": 80.0, "fit_seconds": {"world_model": 20.0}, "run_seconds": {"random": 30.0, "wav": 30.0}, "peak_rss_mb": 1.0}]
    assert merge_seconds(first[:1], redone) == redone


# ----- camera frames (the `paper` preset's RSSM reads them) ------------------------------------------------------


def image_dataset(n: int, steps: int, seed: int, ragged: bool = False) -> TrajectorySet:
    data = dataset(n, steps, seed, ragged)
    return replace(data, images=tuple(frames_of(s, seed * 100 + i) for i, (s, _) in enumerate(data.trajectories)))


def test_windows_stream_the_camera_frames_of_their_steps():
    from wav.data.sequences import ImageSequenceBatch, Windows, frames_to_float

    data = image_dataset(3, 20, 0)
    w = Windows(list(data.trajectories), 8, images=list(data.images))
    (b,) = next(w.chunks(len(w)))
    assert isinstance(b, ImageSequenceBatch) and b.images.shape == (len(w), 8, 3, 64, 64)
    stream_frames = np.concatenate(data.images)  # the windows tile the stream: window k starts at step 8 k
    assert torch.equal(b.images[1], frames_to_float(torch.from_numpy(stream_frames[8:16])))
    assert float(b.images.min()) >= 0.0 and float(b.images.max()) <= 1.0
    with pytest.raises(ValueError, match="images must be"):
        Windows(list(data.trajectories), 8, images=[im[:-1] for im in data.images])


def test_subsets_and_concatenations_keep_each_trajectorys_frames():
    data = image_dataset(5, 20, 0)
    sub = DOMAIN.subset(data, np.array([3, 1]))
    assert sub.images[0] is data.images[3] and sub.images[1] is data.images[1]
    both = DOMAIN.concat([sub, data])
    assert len(both.images) == 7 and both.images[2] is data.images[0]
    assert DOMAIN.concat([sub, dataset(2, 20, 1)]).images is None  # frames only when every part has them


def test_an_rssm_with_images_reads_each_rows_own_frames():
    """The image RSSM finds each (ragged) row's frames from its states; changing the frames alone changes its
    scores, and a row whose trajectory came without frames is refused in one line."""
    from wav.domains.manipulation import register_images

    domain = replace(DOMAIN, images=True)
    seed_set, pool = image_dataset(6, 40, 0), image_dataset(5, 40, 1, ragged=True)
    with pytest.raises(ValueError, match="has none"):
        domain.build("world_model", dataset(3, 40, 0), 0)
    wm = domain.fit("world_model", seed_set, 0, train=replace(FAST, epochs=2))
    assert wm.reads_images and wm.rssm.cfg.image_channels == 3
    b = domain.batch(pool)
    loss = wm.loss(*b.tensors())
    assert loss.shape == (5,) and torch.isfinite(loss).all()
    assert torch.equal(loss, wm.loss(*domain.batch(pool).tensors()))  # deterministic
    register_images(replace(pool, images=tuple(255 - im for im in pool.images)))  # same states, other frames
    assert not torch.equal(loss, wm.loss(*b.tensors()))
    assert wm.latent_mismatch(b.states, b.actions)[1].shape[1] == 31
    plain = DOMAIN.batch(dataset(2, 30, 7))
    with pytest.raises(ValueError, match="reads camera images.*--camera"):
        wm.loss(*plain.tensors())


def test_cli_images_run_end_to_end_and_refuse_a_pool_without_frames(tmp_path, capsys):
    pytest.importorskip("h5py")
    from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, load_data, load_world_model

    plain = write_pool(tmp_path / "plain" / "pool.hdf5")
    base = ["reproduce", "robot-acquisition", "--task", "Synthetic", "--warmup", "4", "--seeds", "0", "--strategies", "wav,oracle",
            "--preset", "debug", "--jobs", "1", "--images", "--json"]
    rc, _, err = cli(base + ["--data", str(plain), "--out", str(tmp_path / "refused")], capsys)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "obs/image" in err and str(plain) in err and "--camera" in err
    assert not (tmp_path / "refused" / "runs").exists()
    pool = write_pool(tmp_path / "cam" / "pool.hdf5", images=True)
    out = tmp_path / "out"
    rc, stdout, err = cli(base + ["--data", str(pool), "--out", str(out)], capsys)
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["strategies"]["oracle"]["spearman"] == pytest.approx(1.0)
    run = out / "runs" / "wav" / "seed0"
    assert json.loads((run / "config.json").read_text())["settings"]["domain"]["images"] is True
    wm, _ = load_world_model(run / "world_model.pt")
    assert wm.rssm.cfg.image_channels == 3
    exp = RobotAcquisitionExperiment(task="Synthetic", data=str(pool), warmup=4, preset="debug", images=True)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["pred_error"] == pytest.approx(exp.domain.evaluate(wm, load_data(exp))["pred_error"], rel=1e-6)
    from wav.experiments.robot_downstream import RobotDownstreamExperiment, resolve

    with pytest.raises(ValueError, match="reads camera images, and the planner filters states only"):
        resolve(RobotDownstreamExperiment(task="Synthetic", source=str(out), seeds=(0,), strategies=("wav",), preset="debug"))
