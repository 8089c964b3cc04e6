"""Smoke tests of `wav collect` and `wav data ...`, in-process via wav.cli.main and as `python -m wav`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from wav.cli import main
from wav.data.io import load_transitions
from wav.envs.minigrid.encoding import ACTION_NAMES


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wav", *argv], capture_output=True, text=True, timeout=120)


def test_collect_info_check_in_process(tmp_path, capsys):
    out = tmp_path / "mt.npz"
    assert main(["collect", "--env", "WAV/MultiTask-v0", "--policy", "scripted", "--transitions", "300", "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "collected 300 transitions" in text and "transitions/s" in text
    tr = load_transitions(out)
    assert len(tr) == 300
    with np.load(out) as z:
        episodes = z["episodes"]
    assert episodes.shape == (300,) and episodes[0] == 0

    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "300 transitions" in text and "swap" in text and "noise floors per state: 0: 300" in text
    assert f"episodes: {episodes.max() + 1}" in text

    assert main(["data", "check-dynamics", str(out), "--box-toggle", "swap", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == {"n": 300, "matched": 300, "fraction": 1.0, "mismatches_by_action": {a: 0 for a in ACTION_NAMES}}


def test_check_dynamics_reports_mismatches(tmp_path, capsys):
    out = tmp_path / "mt.npz"
    main(["collect", "--env", "WAV/KeyDelivery-v0", "--policy", "scripted", "--transitions", "200", "--out", str(out), "--no-progress"])
    capsys.readouterr()
    # Key Delivery toggles the key into the box: under `recolor` those toggles recolour the box instead.
    main(["data", "check-dynamics", str(out), "--box-toggle", "recolor", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tr = load_transitions(out)
    assert 0 < report["n"] - report["matched"] == report["mismatches_by_action"]["toggle"]
    assert report["fraction"] == pytest.approx(report["matched"] / 200)
    assert sum(report["mismatches_by_action"].values()) == 200 - report["matched"]
    assert report["mismatches_by_action"]["toggle"] <= int((tr.actions == 5).sum())


def test_info_without_episodes_and_bad_files(tmp_path, capsys):
    from wav.data.collect import collect
    from wav.data.io import save_transitions

    tr, _ = collect("WAV/Interact-v0", {"objects": 6, "noise_floors": 2}, "random", 50, seed=0, progress=False)
    path = save_transitions(tmp_path / "plain.npz", tr)
    assert main(["data", "info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "episodes: not recorded" in text and "noise floors per state: 2: 50" in text

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["data", "info", str(bad)]) == 1
    assert main(["data", "check-dynamics", str(tmp_path / "missing.npz"), "--box-toggle", "swap"]) == 1
    err = capsys.readouterr().err
    assert "bad.npz" in err and "missing.npz" in err and "Traceback" not in err


def test_make_testset_in_process(tmp_path, capsys):
    pool = tmp_path / "pool.npz"
    main(["collect", "--env", "WAV/MultiTask-v0", "--policy", "scripted", "--transitions", "500", "--seed", "0", "--out", str(pool), "--no-progress"])
    out = tmp_path / "test.npz"
    assert main(["data", "make-testset", "--out", str(out), "--per-action", "20", "--exclude", str(pool), "--seed", "0", "--no-progress"]) == 0
    assert "test set: 140 transitions" in capsys.readouterr().out
    assert np.array_equal(np.bincount(load_transitions(out).actions, minlength=7), [20] * 7)


def test_subprocess_collect_info_check_make_testset(tmp_path):
    rnd = tmp_path / "random.npz"
    r = run("collect", "--env", "WAV/Interact-v0", "--env-kwargs", '{"objects": 6, "box_toggle": "recolor"}', "--policy", "random",
            "--transitions", "200", "--seed", "2", "--episode-steps", "50", "--out", str(rnd))
    assert r.returncode == 0, r.stderr
    assert "transitions/s" in r.stdout and "collect" in r.stderr  # tqdm draws on stderr

    r = run("data", "info", str(rnd))
    assert r.returncode == 0 and "episodes: 4 " in r.stdout, r.stdout + r.stderr

    r = run("data", "check-dynamics", str(rnd), "--box-toggle", "recolor", "--json")
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["fraction"] == 1.0

    ts = tmp_path / "ts.npz"
    r = run("data", "make-testset", "--out", str(ts), "--per-action", "10", "--exclude", str(rnd), "--seed", "4", "--no-progress")
    assert r.returncode == 0 and "test set: 70 transitions" in r.stdout, r.stdout + r.stderr


def test_subprocess_user_error_is_one_line(tmp_path):
    r = run("collect", "--env", "WAV/Interact-v0", "--policy", "scripted", "--transitions", "5", "--out", str(tmp_path / "x.npz"), "--no-progress")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "wav: error: the scripted policy needs a task env (WAV/KeyDelivery-v0, ...); this env has task None"
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env-kwargs", "[1]"], "must be a JSON object"),
        (["--env-kwargs", "{oops"], "not valid JSON"),
        (["--transitions", "-3"], "--transitions: must be >= 1, got -3"),
        (["--transitions", "0"], "--transitions: must be >= 1, got 0"),
        (["--episode-steps", "0"], "must be >= 1"),
    ],
)
def test_collect_rejects_bad_arguments(tmp_path, capsys, argv, message):
    base = {"--env": "WAV/MultiTask-v0", "--policy": "scripted", "--transitions": "5", "--out": str(tmp_path / "x.npz")}
    base.update(dict(zip(argv[::2], argv[1::2])))
    with pytest.raises(SystemExit) as e:
        main(["collect", *[x for kv in base.items() for x in kv]])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_collect_unknown_env_is_one_line(tmp_path, capsys):
    assert main(["collect", "--env", "WAV/Nope-v0", "--policy", "random", "--transitions", "5", "--out", str(tmp_path / "x.npz")]) == 1
    assert "cannot make env 'WAV/Nope-v0'" in capsys.readouterr().err
