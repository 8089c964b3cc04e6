"""`wav reproduce robot-downstream`: planning with each strategy's world model over a fixed base policy (issue 14)."""

from __future__ import annotations

import json
import os

from wav.cli.checks import CheckError, add_parser, guard, output_dir, positive_int, seeds


def _source(text: str) -> str:
    """An existing folder (what it holds is checked before any work, in one line)."""
    p = os.path.expanduser(str(text))
    if not os.path.isdir(p):
        raise CheckError(f"{text}: no such folder (expected the --out folder of `wav reproduce robot-acquisition`)")
    return p


def register(top, groups) -> None:
    p = add_parser(groups["reproduce"], "robot-downstream",
                   help="downstream planning (SAILOR protocol) with each strategy's world model vs the base policy: CIs, paired tests, figure")
    p.add_argument("--task", required=True, help="manipulation task, or 'all' (then --from holds one acquisition folder per task, <from>/<task>)")
    p.add_argument("--from", dest="source", type=_source, required=True, help="a finished robot-acquisition output folder (runs/<strategy>/seed<k>/world_model.pt)")
    p.add_argument("--episodes", type=positive_int, default=None, help="episodes per (strategy, seed) (default: the preset's: debug 2, cpu 20, paper 50)")
    p.add_argument("--seeds", type=seeds, default="0-4", help="acquisition seeds whose world models plan, e.g. 0-4")
    p.add_argument("--strategies", default=None, help="comma-separated strategies (default: every one of the paper's six found in --from)")
    p.add_argument("--policy", default=None, help="base diffusion-policy checkpoint (default: the build's checkpoint with success closest to 0.5)")
    p.add_argument("--preset", default="cpu", choices=["debug", "cpu", "paper"], help="reward model, critic and planner sizes")
    p.add_argument("--reward", default="discriminator", choices=["discriminator", "success"],
                   help="reward model: discriminator (SAILOR, expert vs learner) or success (regresses how near each state is to the "
                        "recorded success reward: an ablation)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 2), help="parallel (strategy, seed) runs")
    p.add_argument("--out", type=output_dir, default="runs/robot-downstream", help="output folder (resumable: finished runs with the same settings are skipped)")
    p.add_argument("--force", action="store_true", help="redo finished runs whose recorded settings differ (default: refuse to mix them)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_robot_downstream)


def _summary(results: dict) -> dict:
    base = results.get("base") or {}
    return {"task": results["task"], "base_policy": {"reward": base.get("reward"), "success": base.get("success")},
            "strategies": {s: {k: e[k] for k in ("reward", "reward_ci", "success", "success_ci")} for s, e in results["strategies"].items()},
            "seconds_per_episode": results.get("seconds_per_episode")}


@guard
def cmd_robot_downstream(args) -> int:
    from wav.envs.manipulation import TASKS
    from wav.experiments.common import finite_or_none
    from wav.experiments.robot_acquisition import STRATEGIES
    from wav.experiments.robot_downstream import RobotDownstreamExperiment, run, run_all

    names = None
    if args.strategies is not None:
        names = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
        bad = [s for s in names if s not in STRATEGIES]
        if bad or not names:
            raise ValueError(f"--strategies: unknown {bad or 'none given'}; known: {list(STRATEGIES)}")
    if args.task != "all" and args.task not in TASKS:
        raise ValueError(f"--task: unknown manipulation task {args.task!r}; choose from {sorted(TASKS)} or 'all'")
    exp = RobotDownstreamExperiment(task=args.task, source=args.source, out=args.out, seeds=tuple(args.seeds), strategies=names, episodes=args.episodes,
                                    preset=args.preset, reward=args.reward, policy=args.policy, jobs=args.jobs, force=args.force)
    if args.task == "all":
        results = run_all(exp, list(TASKS), progress=not args.json)
        for t in results:
            print(open(os.path.join(args.out, t, "table.md")).read())
        summary = {"task": "all", "tasks": {t: _summary(r) for t, r in results.items()}}
    else:
        results = run(exp, progress=not args.json)
        print(open(os.path.join(args.out, "table.md")).read())
        print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}")
        summary = _summary(results)
    if args.json:
        print(json.dumps(finite_or_none(summary)))
    return 0
