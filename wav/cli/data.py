"""`wav collect` and `wav data {info,check-dynamics,make-testset}`: make, inspect and check transition files."""

from __future__ import annotations

import argparse
import json
import time
import zipfile

import numpy as np

from wav.cli.checks import add_parser, guard, output_file, positive_int
from wav.data.io import DataError, load_transitions, save_transitions
from wav.envs.minigrid.dynamics import BOX_TOGGLES
from wav.envs.minigrid import ENV_IDS
from wav.envs.minigrid.encoding import ACTION_NAMES, BALL, BOX, FLOOR, GRID_SIZE, KEY, N_ACTIONS


def register(top, groups) -> None:
    p = add_parser(top, "collect", help="collect transitions with a scripted, random-play or uniform-action policy",
                   description="Collect labelled transitions in a WAV MiniGrid env (policies: scripted, random, uniform).")
    p.add_argument("--env", required=True, help=f"registered WAV env id: {', '.join(ENV_IDS)}")
    p.add_argument("--env-kwargs", default="{}", type=_json_object, help='JSON object of env arguments, e.g. \'{"objects": 6}\'')
    p.add_argument("--policy", required=True, choices=("scripted", "random", "uniform"), help="scripted: the task's BFS policy; random: balanced random play over allowed actions; uniform: any action, 1/7 each")
    p.add_argument("--transitions", required=True, type=positive_int, help="number of stored transitions")
    p.add_argument("--seed", type=int, default=0, help="collection seed (episode seeds derive from it)")
    p.add_argument("--out", required=True, type=output_file, help="output .npz (published schema plus an `episodes` array)")
    p.add_argument("--episode-steps", type=positive_int, default=None, help="cut episodes after this many steps (default: the env's limit)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_collect)

    data = groups["data"]
    p = add_parser(data, "info", help="counts per action, objects and noise floors per state, episodes")
    p.add_argument("file", help="transition file (.npz, published schema)")
    p.set_defaults(func=_info)

    p = add_parser(data, "check-dynamics", help="replay every transition through the true transition function")
    p.add_argument("file", help="transition file (.npz, published schema)")
    p.add_argument("--box-toggle", required=True, choices=BOX_TOGGLES, help="box toggle the data was collected with")
    p.add_argument("--json", action="store_true", help="end with one JSON line {n, matched, fraction, mismatches_by_action}")
    p.set_defaults(func=_check_dynamics)

    p = add_parser(data, "make-testset", help="a balanced multi-task-policy test set")
    p.add_argument("--out", required=True, type=output_file, help="output .npz (published schema plus an `episodes` array)")
    p.add_argument("--per-action", type=positive_int, default=1500, help="transitions kept per action")
    p.add_argument("--exclude", default=None, help="transition file whose (state, carried, action) triples are left out")
    p.add_argument("--seed", type=int, default=0, help="collection seed (episode seeds derive from it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_make_testset)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


@guard
def _collect(args) -> int:
    from wav.data.collect import check_env, collect

    try:
        check_env(args.env, args.env_kwargs)
    except ValueError as e:
        raise ValueError(f"--env: {e}") from None
    t0 = time.perf_counter()
    tr, episodes = collect(args.env, args.env_kwargs, args.policy, args.transitions, args.seed, args.episode_steps, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    out = save_transitions(args.out, tr, episodes=episodes)
    n_ep = int(episodes.max()) + 1 if len(episodes) else 0
    print(f"collected {len(tr)} transitions in {n_ep} episodes in {dt:.2f} s ({len(tr) / max(dt, 1e-9):,.0f} transitions/s) -> {out}")
    return 0


def _load_episodes(path: str) -> np.ndarray | None:
    """The optional `episodes` array of a file written by `wav collect` (the loader ignores it)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["episodes"] if "episodes" in z.files else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: field 'episodes': unreadable ({type(e).__name__}: {e})") from None


def _histogram(values: np.ndarray) -> str:
    keys, counts = np.unique(values, return_counts=True)
    return ", ".join(f"{int(k)}: {int(c)}" for k, c in zip(keys, counts))


@guard
def _info(args) -> int:
    tr = load_transitions(args.file)
    n = len(tr)
    print(f"{args.file}: {n} transitions")
    counts = np.bincount(tr.actions, minlength=N_ACTIONS)
    print("actions: " + ", ".join(f"{name} {int(c)}" for name, c in zip(ACTION_NAMES, counts)))
    types = tr.states[..., 0].reshape(n, GRID_SIZE * GRID_SIZE)  # (N, W*H)
    objects = np.isin(types, (KEY, BALL, BOX)).sum(1)
    floors = (types == FLOOR).sum(1)
    print(f"objects on the grid per state: {_histogram(objects) or '-'}")
    print(f"noise floors per state: {_histogram(floors) or '-'}")
    holding = tr.carried[:, 1] != 1
    print(f"states with a carried object: {int(holding.sum())} ({holding.mean() if n else 0:.1%})")
    episodes = _load_episodes(args.file)
    if episodes is None:
        print("episodes: not recorded")
    elif episodes.shape != (n,):
        raise DataError(f"{args.file}: field 'episodes': has shape {episodes.shape}; expected ({n},)")
    elif n:
        _, lengths = np.unique(episodes, return_counts=True)
        print(f"episodes: {len(lengths)} (stored transitions per episode: mean {lengths.mean():.1f}, min {lengths.min()}, max {lengths.max()})")
    return 0


def replay_matches(tr, box_toggle: str) -> np.ndarray:
    """(N,) bool: does the true transition function map (state, action) to the recorded next state?

    Colours are ignored at cells that are noise floor in both the prediction and the record.
    """
    from wav.envs.minigrid.dynamics import step_batch

    pred, pred_carried = step_batch(tr.states, tr.carried, tr.actions, box_toggle)
    same = pred == tr.next_states  # (N, W, H, 3)
    both_floor = (pred[..., 0] == FLOOR) & (tr.next_states[..., 0] == FLOOR)  # (N, W, H)
    same[..., 1] |= both_floor
    n = len(tr)
    return same.reshape(n, -1).all(1) & (pred_carried == tr.next_carried).all(1)


@guard
def _check_dynamics(args) -> int:
    tr = load_transitions(args.file)
    ok = replay_matches(tr, args.box_toggle)
    n, matched = len(tr), int(ok.sum())
    bad = np.bincount(tr.actions[~ok], minlength=N_ACTIONS)
    fraction = matched / n if n else 1.0
    print(f"{args.file}: {matched}/{n} transitions replay exactly with box toggle '{args.box_toggle}' ({fraction:.4%})")
    if matched < n:
        print("mismatches by action: " + ", ".join(f"{name} {int(c)}" for name, c in zip(ACTION_NAMES, bad) if c))
    if args.json:
        by_action = {name: int(c) for name, c in zip(ACTION_NAMES, bad)}
        print(json.dumps({"n": n, "matched": matched, "fraction": fraction, "mismatches_by_action": by_action}))
    return 0


@guard
def _make_testset(args) -> int:
    from wav.data.collect import make_testset

    exclude = load_transitions(args.exclude) if args.exclude else None
    t0 = time.perf_counter()
    tr, episodes = make_testset(args.per_action, exclude, args.seed, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    out = save_transitions(args.out, tr, episodes=episodes)
    counts = np.bincount(tr.actions, minlength=N_ACTIONS)
    print(f"test set: {len(tr)} transitions in {dt:.2f} s -> {out}")
    print("actions: " + ", ".join(f"{name} {int(c)}" for name, c in zip(ACTION_NAMES, counts)))
    short = [name for name, c in zip(ACTION_NAMES, counts) if c < args.per_action]
    if short:
        print(f"warning: fewer than {args.per_action} transitions for {', '.join(short)} (collection budget reached)")
    return 0
