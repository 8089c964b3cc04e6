"""Every bad input to the CLI is answered in one line naming the option or file (`wav: error: ...` on
stderr, exit code 1 or 2), before any work starts and without writing anything (issue 16)."""

import argparse
import os

import numpy as np
import pytest

from wav.cli import build_parser, main
from wav.data.io import save_transitions

MY_COMMANDS = [("collect",), ("data", "info"), ("data", "check-dynamics"), ("data", "make-testset"),
               ("train", "world-model"), ("train", "subgoal"), ("train", "inverse"),
               ("eval", "world-model"), ("eval", "inverse"), ("eval", "subgoal"),
               ("reproduce", "asymmetry"), ("reproduce", "idm-ood"), ("theory", "prop32"), ("theory", "learned"),
               ("robot", "experts"), ("robot", "train-policy"), ("robot", "rollout"), ("robot", "partition"), ("robot", "build")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small transition file, an empty one and a checkpoint whose weights do not fit its model."""
    import torch

    from wav.config import model_preset
    from wav.data.collect import collect
    from wav.train import MODEL_KINDS, save_checkpoint

    root = tmp_path_factory.mktemp("inputs")
    tr, _ = collect("WAV/MultiTask-v0", {}, "random", 40, seed=0, progress=False)
    data = save_transitions(root / "data.npz", tr)
    empty = save_transitions(root / "empty.npz", tr.subset(slice(0, 0)))
    cls, _ = MODEL_KINDS["world-model"]
    good = save_checkpoint(root / "wm.pt", cls(model_preset("debug").world_model))
    blob = torch.load(good, weights_only=False)
    blob["state_dict"]["extra.weight"] = blob["state_dict"].pop(next(iter(blob["state_dict"])))
    bad = root / "bad_state.pt"
    torch.save(blob, bad)
    return {"data": str(data), "empty": str(empty), "bad_ckpt": str(bad)}


def _tree(path):
    return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*"))


def refused(capsys, argv, *needles, where=None) -> str:
    """Run `wav argv`; assert exit code 1 or 2, one stderr line `wav: error: ...` holding every needle, and
    (with `where`) that nothing under `where` was created or changed. Returns the line."""
    before = _tree(where) if where is not None else None
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc in (1, 2), (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith("wav: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if where is not None:
        assert _tree(where) == before
    return lines[0]


# -- collect: envs that are not our grid encoding ------------------------------------------------------

@pytest.mark.parametrize("env", ["MiniGrid-Empty-6x6-v0", "CartPole-v1"])
def test_collect_refuses_env_without_grid_observations(tmp_path, capsys, env):
    out = tmp_path / "x.npz"
    line = refused(capsys, ["collect", "--env", env, "--policy", "random", "--transitions", "5", "--out", str(out), "--no-progress"],
                   "--env", env, "not the WAV grid encoding", "WAV/MultiTask-v0", "WAV/Interact-v0", where=tmp_path)
    assert not out.exists(), line


# -- counts that must be >= 1 ----------------------------------------------------------------------------

@pytest.mark.parametrize("k", ["0", "-2"])
def test_eval_subgoal_k_must_be_positive(tmp_path, capsys, files, k):
    refused(capsys, ["eval", "subgoal", "--ckpt", files["bad_ckpt"], "--data", files["data"], "--k", k], f"--k: must be >= 1, got {k}",
            where=tmp_path)


def test_collect_transitions_zero_refused(tmp_path, capsys):
    out = tmp_path / "x.npz"
    refused(capsys, ["collect", "--env", "WAV/MultiTask-v0", "--policy", "random", "--transitions", "0", "--out", str(out)],
            "--transitions: must be >= 1, got 0", where=tmp_path)
    assert not out.exists()


def test_train_epochs_zero_refused(tmp_path, capsys, files):
    out = tmp_path / "m.pt"
    refused(capsys, ["train", "world-model", "--data", files["data"], "--out", str(out), "--preset", "debug", "--epochs", "0"],
            "--epochs: must be >= 1, got 0", where=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("command", [["train", "inverse", "--out", "OUT/m.pt"], ["eval", "world-model", "--ckpt", "CKPT"], ["theory", "learned", "--out", "OUT"]])
def test_threads_zero_refused(tmp_path, capsys, files, command):
    argv = [x.replace("OUT", str(tmp_path)).replace("CKPT", files["bad_ckpt"]) for x in command]
    if command[0] != "theory":
        argv += ["--data", files["data"]]
    refused(capsys, [*argv, "--threads", "0"], "--threads: must be >= 1, got 0", where=tmp_path)


@pytest.mark.parametrize("command", [["reproduce", "asymmetry", "--sweep", "samples"], ["reproduce", "idm-ood"], ["robot", "experts", "--task", "Lift"],
                                     ["robot", "build", "--task", "Lift"]])
def test_jobs_zero_refused_at_parse_time(tmp_path, capsys, command):
    extra = ["--out", str(tmp_path / "run")]
    refused(capsys, [*command, *extra, "--jobs", "0"], "--jobs: must be >= 1, got 0", where=tmp_path)


# -- --out that cannot be written -------------------------------------------------------------------------

FILE_OUT = {
    "collect": ["collect", "--env", "WAV/MultiTask-v0", "--policy", "random", "--transitions", "5", "--no-progress"],
    "make-testset": ["data", "make-testset", "--per-action", "2", "--no-progress"],
    "train": ["train", "world-model", "--data", "DATA", "--preset", "debug", "--epochs", "1"],
    "robot-rollout": ["robot", "rollout", "--task", "Lift", "--checkpoints", "DATA"],
}
DIR_OUT = {
    "asymmetry": ["reproduce", "asymmetry", "--sweep", "samples", "--preset", "debug"],
    "idm-ood": ["reproduce", "idm-ood", "--preset", "debug"],
    "prop32": ["theory", "prop32", "--preset", "debug"],
    "learned": ["theory", "learned", "--preset", "debug"],
    "robot-build": ["robot", "build", "--task", "Lift"],
}


def _read_only(tmp_path, monkeypatch):
    """A read-only folder; as root (who may write anywhere) os.access answers as for anyone else."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(ro) and mode & os.W_OK else real(p, mode, **kw))
    return ro


def _bad_out(tmp_path, monkeypatch, kind, want_dir):
    if kind == "read-only":
        return str(_read_only(tmp_path, monkeypatch) / ("run" if want_dir else "x.out")), "read-only"
    if kind == "existing":
        if want_dir:  # a file where a folder is expected
            (tmp_path / "taken").write_text("keep me")
            return str(tmp_path / "taken"), "is a file; expected a folder"
        (tmp_path / "taken").mkdir()
        return str(tmp_path / "taken"), "is a folder; expected a file path"
    if kind == "parent-file":
        (tmp_path / "plain").write_text("keep me")
        return str(tmp_path / "plain" / "sub" / "x.out"), "is a file, not a folder"
    return "", "empty path"


@pytest.mark.parametrize("kind", ["read-only", "existing", "parent-file", "empty"])
@pytest.mark.parametrize("command", sorted(FILE_OUT))
def test_unwritable_file_out_refused_before_work(tmp_path, capsys, monkeypatch, files, command, kind):
    out, message = _bad_out(tmp_path, monkeypatch, kind, want_dir=False)
    argv = [x.replace("DATA", files["data"]) for x in FILE_OUT[command]]
    line = refused(capsys, [*argv, "--out", out], "--out: ", message, where=tmp_path)
    assert out == "" or os.path.basename(out) in line


@pytest.mark.parametrize("kind", ["read-only", "existing", "parent-file", "empty"])
@pytest.mark.parametrize("command", sorted(DIR_OUT))
def test_unwritable_dir_out_refused_before_work(tmp_path, capsys, monkeypatch, command, kind):
    out, message = _bad_out(tmp_path, monkeypatch, kind, want_dir=True)
    line = refused(capsys, [*DIR_OUT[command], "--out", out], "--out: ", message, where=tmp_path)
    assert out == "" or os.path.basename(out) in line


def test_train_checks_out_before_training(tmp_path, capsys, monkeypatch, files):
    """An unwritable --out is refused at parse time: the trainer is never called, so no trained model is lost."""
    import wav.cli.models

    called = []
    monkeypatch.setattr(wav.cli.models, "_rows", lambda *a: called.append(a))
    (tmp_path / "plain").write_text("keep me")
    refused(capsys, ["train", "subgoal", "--data", files["data"], "--out", str(tmp_path / "plain" / "g.pt"), "--preset", "debug"],
            "--out: ", "plain is a file", where=tmp_path)
    assert not called


# -- transition files ---------------------------------------------------------------------------------------

def test_non_finite_rewards_refused(tmp_path, capsys, files):
    with np.load(files["data"]) as z:
        arrays = dict(z)
    arrays["rewards"] = arrays["rewards"].astype(np.float32)
    arrays["rewards"][3] = np.inf
    bad = tmp_path / "inf.npz"
    np.savez(bad, **arrays)
    refused(capsys, ["data", "info", str(bad)], "inf.npz", "'rewards'", "non-finite", where=tmp_path)


def test_text_file_named_npz_is_not_a_valid_npz(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("just some text\n")
    line = refused(capsys, ["data", "info", str(text)], "notes.npz: not a valid npz file (not a zip archive)", where=tmp_path)
    assert "pickled" not in line


@pytest.mark.parametrize("model", ["world-model", "inverse", "subgoal"])
def test_train_on_empty_file_refused(tmp_path, capsys, files, model):
    out = tmp_path / "m.pt"
    refused(capsys, ["train", model, "--data", files["empty"], "--out", str(out), "--preset", "debug"], "empty.npz: holds no transitions",
            where=tmp_path)
    assert not out.exists()


def test_eval_on_empty_file_refused(tmp_path, capsys, files):
    refused(capsys, ["eval", "world-model", "--ckpt", files["bad_ckpt"], "--data", files["empty"]], "empty.npz: holds no transitions")


def test_data_info_on_empty_file_reports_zero(files, capsys):
    assert main(["data", "info", files["empty"]]) == 0
    out, err = capsys.readouterr()
    assert "empty.npz: 0 transitions" in out and err == ""


@pytest.mark.parametrize("rows, message", [("5:2", "--rows '5:2' selects none of the 40 transitions of"), ("a:b", "--rows must look like START:STOP"),
                                           ("100:", "--rows '100:' selects none of the 40 transitions of"), ("-3:-5", "--rows '-3:-5' selects none")])
def test_rows_that_select_nothing_refused(tmp_path, capsys, files, rows, message):
    out = tmp_path / "m.pt"
    refused(capsys, ["train", "inverse", "--data", files["data"], "--out", str(out), "--preset", "debug", f"--rows={rows}"], message, where=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("command", [["reproduce", "asymmetry", "--sweep", "noise"], ["reproduce", "idm-ood"]])
@pytest.mark.parametrize("seeds", ["abc", "3-1", "-1"])
def test_bad_seeds_name_the_option(tmp_path, capsys, command, seeds):
    refused(capsys, [*command, "--out", str(tmp_path / "run"), "--seeds", seeds], "--seeds: bad seed", where=tmp_path)


def test_bad_state_dict_message_is_whole(capsys, files):
    line = refused(capsys, ["eval", "world-model", "--ckpt", files["bad_ckpt"], "--data", files["data"]], "bad_state.pt: weights do not fit the model",
                   'Missing key(s) in state_dict: "trunk', 'Unexpected key(s) in state_dict: "extra.weight"', "saved with")


# -- help --------------------------------------------------------------------------------------------------

def _command_parser(path):
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path", MY_COMMANDS, ids=" ".join)
def test_every_option_has_help_and_shows_its_default(path):
    parser = _command_parser(path)
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"wav {' '.join(path)} {action.dest}: no help text"
        if action.option_strings and action.default is not None and action.default is not False:
            assert "(default: " in parser._get_formatter()._get_help_string(action), (path, action.dest)
    assert "%(default)" not in text


def test_collect_help_lists_uniform_policy(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "uniform" in capsys.readouterr().out
    help_ = _command_parser(("collect",)).format_help()
    assert "uniform" in help_.split("options:")[0] and "uniform: any action" in help_


@pytest.mark.parametrize("command", ["experts", "rollout", "build"])
@pytest.mark.parametrize("name", ["lift", "Lift", "LIFT"])
def test_robot_task_names_are_case_insensitive(command, name):
    parser = build_parser()
    args = parser.parse_args(["robot", command, "--task", name, "--out", "x" if command != "build" else "runs/x",
                              *(["--checkpoints", "c"] if command == "rollout" else [])])
    assert args.task == "Lift"
    assert "case-insensitive" in _command_parser(("robot", command)).format_help()


def test_robot_unknown_task_is_one_line(capsys):
    refused(capsys, ["robot", "experts", "--task", "lifts"], "--task: invalid choice: 'lifts'")


# -- renamed options: --jobs and --preset everywhere --------------------------------------------------------

@pytest.mark.parametrize("argv, dest, value", [
    (["robot", "experts", "--task", "Lift", "--jobs", "3"], "jobs", 3),
    (["robot", "rollout", "--task", "Lift", "--checkpoints", "c", "--out", "p.hdf5", "--jobs", "3"], "jobs", 3),
    (["robot", "build", "--task", "Lift", "--jobs", "3", "--preset", "cpu"], "preset", "cpu"),
    (["robot", "train-policy", "--experts", "e.hdf5", "--out", "ckpts", "--preset", "paper"], "preset", "paper"),
    (["theory", "prop32", "--preset", "debug"], "preset", "debug"),
    (["theory", "learned"], "preset", "paper"),
])
def test_renamed_options_parse(argv, dest, value):
    assert getattr(build_parser().parse_args(argv), dest) == value


@pytest.mark.parametrize("argv", [["robot", "experts", "--task", "Lift", "--n-jobs", "1"], ["robot", "build", "--task", "Lift", "--scale", "debug"],
                                  ["robot", "train-policy", "--experts", "e", "--out", "o", "--scale", "cpu"], ["theory", "prop32", "--debug"],
                                  ["theory", "learned", "--debug"]])
def test_old_spellings_are_gone(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
