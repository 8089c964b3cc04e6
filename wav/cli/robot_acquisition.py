"""`wav reproduce robot-acquisition`: the robot pool protocol on one manipulation task (REFERENCE §6, issue 13)."""

from __future__ import annotations

import argparse
import json
import os

from wav.cli.checks import CheckError, add_parser, guard, non_negative_float, output_dir, positive_int, seeds


def _data(text: str) -> str:
    """A pool file, or a folder holding pool.hdf5 (checked before any work)."""
    from pathlib import Path

    p = Path(os.path.expanduser(str(text)))
    f = p / "pool.hdf5" if p.is_dir() else p
    if not f.is_file():
        raise CheckError(f"{text}: no pool file (expected a pool.hdf5 file or a folder holding one, as `wav robot build --out` writes)")
    if not os.access(f, os.R_OK):
        raise CheckError(f"{f}: not readable")
    return str(f)


def _random_mix(text: str) -> tuple[tuple[str, float], ...]:
    """'wav=0.3,ensemble=0' -> (('ensemble', 0.0), ('wav', 0.3)); names from the strategy registry, ratios in [0, 1]."""
    from wav.acquire import REGISTRY

    out = {}
    for part in (x.strip() for x in str(text).split(",") if x.strip()):
        name, _, value = (x.strip() for x in part.partition("="))
        try:
            ratio = float(value)
        except ValueError:  # also an entry without '='
            ratio = float("nan")
        if not 0.0 <= ratio <= 1.0:
            raise CheckError(f"bad entry {part!r}; expected NAME=R with R in [0, 1], e.g. wav=0.3")
        if name not in REGISTRY:
            raise CheckError(f"unknown strategy {name!r}; known: {sorted(REGISTRY)}")
        out[name] = ratio
    if not out:
        raise CheckError(f"nothing in {text!r}; expected NAME=R[,NAME=R], e.g. wav=0.3")
    return tuple(sorted(out.items()))


def register(top, groups) -> None:
    p = add_parser(groups["reproduce"], "robot-acquisition", help="robot pool protocol: strategies x seeds on one task, CIs, paired tests, figure")
    p.add_argument("--task", required=True, help="manipulation task (checked against the pool file), 'all' (the six) or a comma-separated list "
                   "(then --data holds one build folder per task, <data>/<task>, and outputs go to <out>/<task>)")
    p.add_argument("--data", required=True, help="the pool file of `wav robot build` (or its folder); for several tasks, the folder of their build folders")
    p.add_argument("--warmup", type=positive_int, default=50, help="warm-up size N: the partition warmup_N is the labelled seed set")
    p.add_argument("--seeds", type=seeds, default="0-4", help="seeds, e.g. 0-4 or 0,3")
    p.add_argument("--strategies", default=None, help="comma-separated strategy names (wav.acquire.REGISTRY; default: the paper's six, "
                   "random, ensemble = its 'Uncertainty', progress, wav-dense, wav, oracle)")
    p.add_argument("--preset", default="cpu", choices=["debug", "cpu", "paper"], help="model sizes and schedules")
    p.add_argument("--rounds", type=positive_int, default=2, help="acquisition rounds R")
    p.add_argument("--budget", type=positive_int, default=None, help="trajectories acquired per round B (default: 25%% of the warm-up size)")
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes (joblib) or a Ray cluster")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (backend ray)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 2), help="parallel seed jobs (local backend)")
    p.add_argument("--out", type=output_dir, default="runs/robot-acquisition", help="output folder (resumable: finished runs with the same settings are skipped)")
    p.add_argument("--error-scale", default="warmup", choices=["warmup", "pooled"],
                   help="per-feature scale of the squared errors: std of the warm-up states, or of the warm-up and explore states")
    p.add_argument("--score-space", default="state", choices=["state", "latent"],
                   help="where wav, wav-dense and ensemble compare rollouts: standardised states, or the RSSM's latent "
                        "features (the authors' scorer); the oracle and the evaluation stay in state units")
    p.add_argument("--openloop-scale", type=non_negative_float, default=0.0,
                   help="weight of the world model's open-loop loss (the prior rolled over each training window under the "
                        "recorded actions; 0 = DreamerV3's objective)")
    p.add_argument("--random-mix", type=_random_mix, default=(), metavar="NAME=R[,NAME=R]",
                   help="diagnostic: change a strategy's random-mix ratio R in [0, 1] (the share of its batch drawn uniformly; "
                        "published: ensemble and progress 0.3, oracle 0.1, wav 0), e.g. wav=0.3")
    p.add_argument("--images", action=argparse.BooleanOptionalAction, default=None,
                   help="every RSSM also reads the pool's 64x64 camera frames (the pool built with `wav robot build --camera`); "
                        "default: the preset's (paper: on; debug, cpu: off)")
    p.add_argument("--force", action="store_true", help="redo finished runs whose recorded settings differ (default: refuse to mix them)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite results, tables and figures from the finished runs (the seeds every strategy finished)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_robot_acquisition)


@guard
def cmd_robot_acquisition(args) -> int:
    from wav.acquire import REGISTRY
    from wav.experiments.common import finite_or_none
    from wav.experiments.robot_acquisition import STRATEGIES, RobotAcquisitionExperiment, run, run_tasks

    names = tuple(s.strip() for s in args.strategies.split(",") if s.strip()) if args.strategies is not None else STRATEGIES
    bad = [s for s in names if s not in REGISTRY]
    if bad or not names:
        raise ValueError(f"--strategies: unknown {bad or 'none given'}; known: {sorted(REGISTRY)}")
    tasks = _tasks(args.task)
    if tasks is None:
        args.data = _data(args.data)
    elif not os.path.isdir(os.path.expanduser(args.data)):
        raise CheckError(f"{args.data}: no such folder (with several tasks --data is the folder of their build folders, <data>/<task>)")
    exp = RobotAcquisitionExperiment(task=args.task, data=args.data, warmup=args.warmup, out=args.out, seeds=tuple(args.seeds), strategies=names,
                                     preset=args.preset, rounds=args.rounds, budget=args.budget, backend=args.backend, jobs=args.jobs,
                                     ray_address=args.ray_address, force=args.force, error_scale=args.error_scale,
                                     score_space=args.score_space, openloop_scale=args.openloop_scale, random_mix=args.random_mix,
                                     images=args.images)
    if tasks is not None:
        per = run_tasks(exp, tasks, progress=not args.json, report_only=args.report_only)
        print(open(os.path.join(args.out, "table.md")).read())
        print(f"per task: {os.path.join(args.out, '<task>')}  results: {os.path.join(args.out, 'results.json')}")
        summary = {"task": args.task, "warmup": exp.warmup, "tasks": {t: _summary(r) for t, r in per.items()}}
    else:
        results = run(exp, progress=not args.json, report_only=args.report_only)
        print(open(os.path.join(args.out, "table.md")).read())
        print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}")
        summary = _summary(results)
    if args.json:
        print(json.dumps(finite_or_none(summary)))
    return 0


def _tasks(text: str) -> list[str] | None:
    """None for one task; the list for 'all' (the six) or a comma-separated list (unknown names refused)."""
    from wav.envs.manipulation import TASKS

    names = list(TASKS) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    if text != "all" and len(names) == 1:
        return None
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise CheckError(f"--task: unknown manipulation task(s) {bad or text!r}; choose from {sorted(TASKS)}, 'all' or a comma-separated list")
    return names


def _summary(results: dict) -> dict:
    return {"task": results["task"], "warmup": results["warmup"],
            "strategies": {s: {"pred_error": e["pred_error"], "pred_error_ci": e["pred_error_ci"], "spearman": e["spearman"], "kendall": e["kendall"]}
                           for s, e in results["strategies"].items()},
            "seconds_per_seed": results.get("seconds_per_seed")}
