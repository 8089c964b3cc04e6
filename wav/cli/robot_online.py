"""`wav reproduce robot-online`: Algorithm 1 in a manipulation simulator (REFERENCE §6, issue 13 item 6)."""

from __future__ import annotations

import json
import os

from wav.cli.checks import add_parser, guard, output_dir, positive_int, seeds
from wav.cli.robot_acquisition import _data


def register(top, groups) -> None:
    p = add_parser(groups["reproduce"], "robot-online", help="robot online exploration (Algorithm 1 in the simulator): strategies x seeds, error vs env steps")
    p.add_argument("--task", required=True, help="manipulation task (its simulator; checked against the pool file)")
    p.add_argument("--data", type=_data, required=True, help="the pool file of `wav robot build` (or its folder): warmup_N, explore, eval")
    p.add_argument("--warmup", type=positive_int, default=50, help="warm-up size N: the partition warmup_N is the labelled seed set")
    p.add_argument("--seeds", type=seeds, default="0-4", help="seeds, e.g. 0-4 or 0,3")
    p.add_argument("--strategies", default="random,ensemble,wav", help="comma-separated: random, ensemble, wav, wav-dense")
    p.add_argument("--preset", default="cpu", choices=["debug", "cpu", "paper"], help="model sizes, schedules and the step budget")
    p.add_argument("--steps", type=positive_int, default=None, help="env steps (default: the preset's)")
    p.add_argument("--update-every", type=positive_int, default=None, help="refit every U steps (default: the preset's)")
    p.add_argument("--horizon", type=positive_int, default=4, help="steps of each generated subgoal sequence")
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes (joblib) or a Ray cluster")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (backend ray)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 2), help="parallel seed jobs (local backend)")
    p.add_argument("--out", type=output_dir, default="runs/robot-online", help="output folder (resumable)")
    p.add_argument("--force", action="store_true", help="redo finished runs whose recorded settings differ")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_robot_online)


@guard
def cmd_robot_online(args) -> int:
    from wav.experiments.common import finite_or_none
    from wav.experiments.robot_online import RobotOnlineExperiment, run

    names = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    exp = RobotOnlineExperiment(task=args.task, data=args.data, warmup=args.warmup, out=args.out, seeds=tuple(args.seeds), strategies=names,
                                preset=args.preset, steps=args.steps, update_every=args.update_every, horizon=args.horizon, backend=args.backend,
                                jobs=args.jobs, ray_address=args.ray_address, force=args.force)
    results = run(exp, progress=not args.json)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}")
    if args.json:
        last = {s: results["paired_wav_minus"].get(s, {}) for s in results["strategies"]}
        summary = {"task": exp.task, "warmup": exp.warmup, "steps": exp.online.steps,
                   "strategies": {s: {"pred_error": e["pred_error"], "pred_error_ci": e["pred_error_ci"],
                                      "wav_minus_p": (last[s].get(str(exp.online.steps)) or {}).get("p_ttest")} for s, e in results["strategies"].items()},
                   "seconds_per_seed": results.get("seconds_per_seed")}
        print(json.dumps(finite_or_none(summary)))
    return 0
