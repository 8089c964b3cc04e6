"""Throughput of the manipulation worlds: env steps/s per task with random actions (state obs), with the
scripted expert acting, and with 64x64 camera observations; expert success over a few episodes.

    nice -n 10 .venv-robot/bin/python benchmarks/robot_envs.py --out benchmarks/results/robot.md

Issue 6 expectations: robosuite Lift/Can/Square ~85-105 steps/s, ManiSkill CPU ~150-250 steps/s.
Runs one process, one thread; tasks whose simulator is not installed are reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def steps_per_s(task: str, steps: int, camera: bool = False, seed: int = 0) -> float:
    from wav.envs.manipulation import make_env

    env = make_env(task, camera=camera)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 7))
        if term or trunc:
            env.reset(seed=int(rng.integers(2**31)))
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def expert_run(task: str, episodes: int) -> tuple[float, float, float]:
    """(success rate, mean episode length, steps/s with the expert acting)."""
    from wav.envs.manipulation import make_env
    from wav.robot.experts import make_expert

    env, expert = make_env(task), make_expert(task)
    wins, lengths, t0 = [], [], time.perf_counter()
    for ep in range(episodes):
        env.reset(seed=50_000 + ep)
        expert.reset(env)
        done, n, info = False, 0, {}
        while not done:
            _, _, term, trunc, info = env.step(expert.act(env))
            done, n = term or trunc, n + 1
        wins.append(info["success"])
        lengths.append(n)
    rate = sum(lengths) / (time.perf_counter() - t0)
    env.close()
    return float(np.mean(wins)), float(np.mean(lengths)), rate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000, help="random-action steps per task")
    p.add_argument("--camera-steps", type=int, default=100, help="steps with 64x64 camera obs (0: skip)")
    p.add_argument("--expert-episodes", type=int, default=10, help="expert episodes per task (0: skip)")
    p.add_argument("--tasks", default="", help="comma-separated subset (default: all)")
    p.add_argument("--out", help="write a markdown table here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from wav.envs.manipulation import TASKS
    from wav.envs.manipulation.core import SIM_MODULES

    tasks = [t for t in (args.tasks.split(",") if args.tasks else TASKS) if t]
    rows = []
    for task in tasks:
        spec = TASKS[task]
        if importlib.util.find_spec(SIM_MODULES[spec.backend]) is None:
            rows.append(f"| {task} | {spec.backend} | skipped ({SIM_MODULES[spec.backend]} not installed) | | | | |")
            continue
        rnd = steps_per_s(task, args.steps)
        cam = steps_per_s(task, args.camera_steps, camera=True) if args.camera_steps else float("nan")
        if args.expert_episodes:
            succ, length, exp_rate = expert_run(task, args.expert_episodes)
        else:
            succ = length = exp_rate = float("nan")
        row = f"| {task} | {spec.backend} | {rnd:.0f} | {cam:.1f} | {exp_rate:.0f} | {succ:.2f} ({args.expert_episodes} ep) | {length:.0f} |"
        print(row, flush=True)
        rows.append(row)

    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("robosuite", "mujoco", "mani-skill", "sapien", "torch", "numpy")
                         if importlib.util.find_spec(p.replace("-", "_")) or p == "mani-skill" and importlib.util.find_spec("mani_skill"))
    lines = [
        "# Manipulation env throughput",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; {versions}; "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL', 'egl (default)')}.",
        "",
        "| task | backend | random steps/s | camera 64x64 steps/s | expert steps/s | expert success | expert ep. length |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
