"""Debug-scale runs of every reproduction command: records, resumability, determinism, the JSON contract."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wav.cli import main


def _last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_reproduce_acquisition_debug_resumes_and_is_deterministic(tmp_path, capsys):
    out = tmp_path / "acq"
    args = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0", "--strategies", "all", "--jobs", "1", "--out", str(out), "--json"]
    assert main(args) == 0
    summary = _last_json(capsys)
    from wav.acquire import REGISTRY

    assert set(summary["strategies"]) == set(REGISTRY)
    for s in summary["strategies"].values():
        assert set(s) == {"pred_error", "pred_error_ci", "spearman", "kendall", "afs"}
    assert summary["seconds_per_seed"] > 0
    for name in ("results.json", "table.md", "figure.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert "p_ttest" in results["paired_wav_minus"]["random"]["pred_error"]
    assert results["strategies"]["oracle"]["spearman"] == pytest.approx(1.0)
    run = out / "runs" / "wav" / "seed0"
    assert json.loads((run / "config.json").read_text())["strategy"] == "wav"
    before = (run / "metrics.jsonl").read_text()
    assert len(before.splitlines()) == 2  # round 0 and round 1 of the debug preset
    # a finished sweep resumes without rerunning anything
    assert main(args) == 0
    assert _last_json(capsys)["seconds_per_seed"] == 0
    # the same seed reproduces the same records
    shutil.rmtree(run)
    assert main(args) == 0
    assert (run / "metrics.jsonl").read_text() == before
    # ... whatever the schedule: two parallel workers, one fit per (seed, model), one job per run
    other = out / "runs" / "uncertainty" / "seed0"
    before_other = (other / "metrics.jsonl").read_text()
    shutil.rmtree(run)
    shutil.rmtree(other)
    two = list(args)
    two[two.index("--jobs") + 1] = "2"
    assert main(two) == 0
    assert (run / "metrics.jsonl").read_text() == before
    assert (other / "metrics.jsonl").read_text() == before_other


def test_reproduce_online_debug(tmp_path, capsys):
    out = tmp_path / "online"
    assert main(["reproduce", "online", "--preset", "debug", "--seeds", "0-1", "--jobs", "1", "--out", str(out), "--json"]) == 0
    summary = _last_json(capsys)
    assert set(summary["strategies"]) == {"random", "uncertainty", "ensemble", "wav"}
    res = json.loads((out / "results.json").read_text())
    assert res["curves"]["wav"]["acquired"] == [0, 10, 20]
    rows = [json.loads(l) for l in (out / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["labels"] - rows[0]["labels"] for r in rows] == [0, 10, 20]
    assert sum(rows[-1]["acquired_actions"]) == 20
    # every row is also scored on the random-play and the uniform-action test sets of the explored env
    for name, suffix in (("test_explore", "explore"), ("test_uniform", "uniform")):
        assert all(f"{name}/pred_error" in r for r in rows)
        assert res[f"curves_{suffix}"]["wav"]["acquired"] == [0, 10, 20] and "p_ttest" in res[f"paired_wav_minus_{suffix}"]["random"]
        assert f"`{name}`" in (out / "table.md").read_text()


def test_reproduce_asymmetry_debug(tmp_path, capsys):
    out = tmp_path / "asym"
    assert main(["reproduce", "asymmetry", "--sweep", "samples", "--xs", "100,200", "--train-size", "200", "--test-size", "100",
                 "--preset", "debug", "--seeds", "0-1", "--jobs", "1", "--out", str(out), "--json"]) == 0
    res = _last_json(capsys)
    assert res["x"] == [100, 200] and len(res["world_model"]) == 2 and len(res["inverse_ci"]) == 2
    assert all(c == pytest.approx(1.0) for c in res["inverse_ceiling"])  # clean recolor random play: no hidden state
    assert (out / "samples" / "figure.png").exists()


def test_reproduce_idm_ood_debug(tmp_path, capsys):
    out = tmp_path / "ood"
    assert main(["reproduce", "idm-ood", "--preset", "debug", "--seeds", "0-1", "--size", "400", "--jobs", "1", "--out", str(out), "--json"]) == 0
    res = _last_json(capsys)
    assert set(res) == {"compositions", "fewshot"}
    assert set(res["fewshot"]["sparse"]) == {"pickup", "drop", "toggle", "swap"}
    mask = np.load(out / "runs" / "fewshot" / "sparse" / "seed0" / "mask_ego.npy")
    assert mask.shape == (11, 11)


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    assert main(["reproduce", "acquisition", "--preset", "debug", "--strategies", "nope", "--out", str(tmp_path)]) == 1
    assert "unknown strategies" in capsys.readouterr().err
    cases = {"--seeds": ["--seeds", "5-1", "--out", str(tmp_path / "x")], "--pool": ["--pool", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x")],
             "--jobs": ["--jobs", "0", "--out", str(tmp_path / "x")], "--out": ["--out", ""]}
    for option, bad in cases.items():
        with pytest.raises(SystemExit) as e:  # refused while parsing, before any work
            main(["reproduce", "acquisition", "--preset", "debug", *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"wav: error: {option}:"), err
    assert not (tmp_path / "x").exists()


def test_method_flags_reach_the_run_config(tmp_path):
    """K, reduction, score cap, refit soup, rounds and budget are CLI flags; the run's config.json records them."""
    import json

    from wav.cli import main

    out = tmp_path / "acq"
    args = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0", "--strategies", "random", "--jobs", "1", "--out", str(out),
            "--k", "4", "--reduce", "mean", "--score-cap", "none", "--refit-soup", "2", "--refit-anchor", "0.01", "--refit-medoid", "2", "--refit-balance", "--refit-distill", "0.5", "--rounds", "2", "--budget", "3"]
    assert main(args) == 0
    cfg = json.loads((out / "runs" / "random" / "seed0" / "config.json").read_text())
    assert cfg["round"]["scoring"] == {"k": 4, "reduce": "mean", "score_cap": None, "mc_passes": 3}
    assert cfg["round"]["refit"]["soup"] == 2 and cfg["round"]["refit"]["epochs"] == 2  # the debug refit, souped
    assert cfg["round"]["refit"]["anchor"] == 0.01 and cfg["round"]["refit_medoid"] == 2 and cfg["round"]["refit"]["balance_actions"]
    assert cfg["round"]["refit"]["distill"] == 0.5
    assert cfg["pool"] == {"rounds": 2, "budget": 3}
    rows = [json.loads(x) for x in (out / "runs" / "random" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["labels"] - rows[0]["labels"] for r in rows] == [0, 3, 6]
    with pytest.raises(SystemExit) as e:  # refused while parsing, in one line
        main(args[:-17] + ["--k", "0"])
    assert e.value.code == 2


def test_resume_refuses_runs_made_with_other_settings(tmp_path, capsys):
    """A finished run is only skipped when its recorded settings equal this invocation's; otherwise the
    sweep refuses in one line naming the differing keys, and --force redoes those runs."""
    import json

    from wav.cli import main

    out = tmp_path / "acq"
    args = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0", "--strategies", "random", "--jobs", "1", "--out", str(out)]
    assert main(args) == 0
    metrics = out / "runs" / "random" / "seed0" / "metrics.jsonl"
    first = metrics.read_text()
    capsys.readouterr()
    assert main(args) == 0  # same settings: skipped
    assert "1 of 1 runs already finished, skipped" in capsys.readouterr().err and metrics.read_text() == first
    assert main(args + ["--models", "generic"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "domain.models: 'debug' -> 'generic'" in err[0] and "--force" in err[0]
    assert metrics.read_text() == first  # nothing was touched
    assert main(args + ["--models", "generic", "--force"]) == 0
    cfg_path = out / "runs" / "random" / "seed0" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["settings"]["domain"]["models"] == "generic"
    # a run made before a config field existed (its record lacks the key) is kept, and the field is named
    del cfg["settings"]["domain"]["models"]
    cfg_path.write_text(json.dumps(cfg))
    second = metrics.read_text()
    capsys.readouterr()
    assert main(args + ["--models", "generic"]) == 0
    err = capsys.readouterr().err
    assert "predate the settings domain.models" in err and "1 of 1 runs already finished" in err and metrics.read_text() == second


def test_reproduce_acquisition_in_a_harder_world(tmp_path):
    """--distractors / --noise-floors: every collected set (pool, seed, test, corpus) comes from the harder
    world, and given data files are refused before anything is written."""
    from wav.data.io import load_transitions
    from wav.envs.minigrid.encoding import BALL, BOX, FLOOR, KEY

    out = tmp_path / "hard"
    base = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0", "--strategies", "random", "--jobs", "1", "--distractors", "2", "--noise-floors", "1"]
    assert main(base + ["--out", str(out)]) == 0
    for name in ("pool_rest", "seed", "test", "video"):
        grid = load_transitions(out / "data" / f"{name}.npz").states[..., 0]
        objects = np.isin(grid, (KEY, BALL, BOX)).sum((1, 2))
        assert (grid == FLOOR).any((1, 2)).mean() > 0.9, name  # the agent may stand on the floor tile
        assert objects.max() == 5 and np.median(objects) >= 4, name
    cfg = json.loads((out / "runs" / "random" / "seed0" / "config.json").read_text())
    assert cfg["settings"]["data"]["distractors"] == 2 and cfg["settings"]["data"]["noise_floors"] == 1
    assert main(base + ["--out", str(tmp_path / "bad"), "--seed-data", str(out / "data" / "seed.npz")]) == 1
    assert not (tmp_path / "bad").exists()


def test_wave_plan_fits_world_models_first_and_leaves_a_single_use_ensemble_to_its_run():
    from wav.experiments.common import wave_plan

    robot = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")
    fits, runs = wave_plan((seed, s) for seed in (0, 1) for s in robot)
    assert fits == [(0, "world_model"), (1, "world_model"), (0, "inverse"), (0, "dense_inverse"), (1, "inverse"), (1, "dense_inverse")]
    assert runs[:2] == [(0, "ensemble"), (1, "ensemble")] and set(runs[-3:]) == {(1, "random"), (1, "progress"), (1, "oracle")} and len(runs) == 12
    fits, _ = wave_plan([(0, "uncertainty"), (0, "ensemble"), (0, "ensemble"), (0, "wav")])  # an ensemble two runs use is fit once
    assert fits == [(0, "world_model"), (0, "inverse"), (0, "ensemble")]
