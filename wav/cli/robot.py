"""`wav robot ...`: manipulation worlds and their data (experts, diffusion policy, pool, partitions).

Needs the extras `robot` (robosuite) and/or `maniskill`; see docs/robot.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wav.cli.checks import add_parser, guard, int_list, output_dir, output_file, positive_int


def _task_choices():
    from wav.envs.manipulation import TASKS

    return sorted(TASKS)


def _task_type(tasks):
    """Task names are case-insensitive: 'lift' and 'Lift' are both Lift."""
    canonical = {t.lower(): t for t in tasks}
    return lambda text: canonical.get(text.lower(), text)


def _threads():
    from wav.runtime import set_threads

    set_threads(1)


@guard
def cmd_experts(args) -> int:
    from wav.robot.build import run_experts

    _threads()
    trajs, rate = run_experts(args.task, args.episodes, args.seed, args.jobs, args.out, camera=args.camera, progress=not args.json)
    lengths = [len(t) for t in trajs]
    if args.json:
        print(json.dumps({"task": args.task, "episodes": args.episodes, "success_rate": rate}))
    else:
        print(f"{args.task}: expert success {rate:.3f} over {args.episodes} episodes (mean length {sum(lengths) / max(1, len(lengths)):.1f})")
        if args.out:
            print(f"wrote {args.out}")
    return 0


@guard
def cmd_train_policy(args) -> int:
    from dataclasses import replace

    from wav.robot.build import PRESETS, train

    _threads()
    cfg = PRESETS[args.preset].policy
    if args.steps:
        cfg = replace(cfg, train_steps=args.steps)
    log = train(args.experts, args.out, cfg, args.seed)
    print(json.dumps({"checkpoints": str(args.out), "losses": log}))
    return 0


@guard
def cmd_rollout(args) -> int:
    import numpy as np

    from wav.data.robot_io import save_trajectories
    from wav.robot.build import _env_args, rollout

    _threads()
    trajs = rollout(args.task, args.checkpoints, args.episodes, args.noise, args.seed, args.jobs, camera=args.camera)
    rates = {}
    for t in trajs:
        rates.setdefault(t.source, []).append(t.success)
    save_trajectories(args.out, trajs, _env_args(args.task))
    print(json.dumps({"out": str(args.out), "success_by_checkpoint": {k: float(np.mean(v)) for k, v in rates.items()}}))
    return 0


@guard
def cmd_partition(args) -> int:
    from wav.data.robot_io import load_trajectories, save_trajectories
    from wav.robot.build import partition

    trajs, env_args = load_trajectories(args.pool, images=args.images)
    masks = partition(trajs, list(args.warmup_sizes), args.best, args.eval_fraction, args.seed, args.expert_share)
    save_trajectories(args.out or args.pool, trajs, env_args, masks)
    print(json.dumps({k: len(v) for k, v in masks.items()}))
    return 0


@guard
def cmd_build(args) -> int:
    from dataclasses import replace

    from wav.robot.build import build, preset

    _threads()
    over = {k: v for k, v in dict(expert_episodes=args.expert_episodes, rollouts_per_checkpoint=args.rollouts_per_checkpoint,
                                    n_jobs=args.jobs, seed=args.seed, camera=args.camera).items() if v is not None}
    cfg = preset(args.task, args.preset, **over)
    if args.train_steps:
        cfg = replace(cfg, policy=replace(cfg.policy, train_steps=args.train_steps))
    if args.warmup_sizes:
        cfg = replace(cfg, warmup_sizes=args.warmup_sizes)
    out = Path(output_dir(args.out or f"runs/robot/{args.task}-{args.preset}"))
    summary = build(cfg, out)
    print(json.dumps(summary))
    return 0


def register(top, groups) -> None:
    g = groups["robot"]
    tasks = _task_choices()
    task = dict(required=True, type=_task_type(tasks), choices=tasks, help="task (case-insensitive: lift = Lift)")
    presets = dict(choices=["debug", "cpu", "paper"])
    jobs = dict(type=positive_int, help="worker processes")

    p = add_parser(g, "experts", help="run the scripted expert and report its success rate")
    p.add_argument("--task", **task)
    p.add_argument("--episodes", type=positive_int, default=20, help="episodes to run")
    p.add_argument("--seed", type=int, default=0, help="base episode seed")
    p.add_argument("--jobs", default=2, **jobs)
    p.add_argument("--out", type=output_file, help="write the demonstrations to this HDF5 file")
    p.add_argument("--camera", action="store_true", help="also record 64x64 camera images")
    p.add_argument("--json", action="store_true", help='last stdout line: {"task", "episodes", "success_rate"}')
    p.set_defaults(func=cmd_experts)

    p = add_parser(g, "train-policy", help="train the diffusion policy on expert demos, saving 10 checkpoints")
    p.add_argument("--experts", required=True, help="expert HDF5 from `wav robot experts --out`")
    p.add_argument("--out", required=True, type=output_dir, help="checkpoint directory (ckpt_1.pt .. ckpt_10.pt)")
    p.add_argument("--preset", default="cpu", **presets, help="policy size/steps preset (wav.robot.build.PRESETS)")
    p.add_argument("--steps", type=positive_int, help="override the preset's gradient steps")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.set_defaults(func=cmd_train_policy)

    p = add_parser(g, "rollout", help="roll out every checkpoint with Gaussian action noise into a trajectory pool")
    p.add_argument("--task", **task)
    p.add_argument("--checkpoints", required=True, help="directory of ckpt_<k>.pt")
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes per checkpoint")
    p.add_argument("--noise", type=float, default=0.1, help="action noise std (published: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="base episode seed")
    p.add_argument("--jobs", default=2, **jobs)
    p.add_argument("--camera", action="store_true", help="also record 64x64 camera images")
    p.add_argument("--out", required=True, type=output_file, help="pool HDF5 to write")
    p.set_defaults(func=cmd_rollout)

    p = add_parser(g, "partition", help="write warm-up / explore / eval filter keys into a pool file")
    p.add_argument("--pool", required=True, help="HDF5 with expert and checkpoint trajectories")
    p.add_argument("--warmup-sizes", default="200,400,600,800,1000", type=int_list(1), help="comma-separated nested warm-up sizes")
    p.add_argument("--best", type=positive_int, default=3, help="best checkpoints allowed into the warm-up set")
    p.add_argument("--eval-fraction", type=float, default=0.15, help="held-out share of every source")
    p.add_argument("--expert-share", type=float, default=0.25, help="share of expert demos in each warm-up size (published ~50 of 200)")
    p.add_argument("--seed", type=int, default=0, help="partition seed")
    p.add_argument("--images", action="store_true", help="carry camera images over")
    p.add_argument("--out", type=output_file, help="write here instead of rewriting --pool")
    p.set_defaults(func=cmd_partition)

    p = add_parser(g, "build", help="the whole chain for one task: experts, policy, pool, partitions")
    p.add_argument("--task", **task)
    p.add_argument("--preset", default="debug", **presets, help="size preset (wav.robot.build.PRESETS)")
    p.add_argument("--out", type=output_dir, help="run directory (default runs/robot/<task>-<preset>)")
    p.add_argument("--expert-episodes", type=positive_int, help="override the preset")
    p.add_argument("--rollouts-per-checkpoint", type=positive_int, help="override the preset")
    p.add_argument("--train-steps", type=positive_int, help="override the preset")
    p.add_argument("--warmup-sizes", type=int_list(1), help="override the preset, comma-separated (e.g. 200,400)")
    p.add_argument("--jobs", type=positive_int, help="worker processes (preset: 2)")
    p.add_argument("--seed", type=int, help="base seed (preset: 0)")
    p.add_argument("--camera", action=argparse.BooleanOptionalAction, default=None,
                   help="also record a 64x64 camera frame per step in experts.hdf5 and pool.hdf5 (what an RSSM with images reads; "
                        "default: the preset's, paper: on); rendering makes collection ~6-15x slower")
    p.set_defaults(func=cmd_build)
