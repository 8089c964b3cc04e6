"""Throughput of the MiniGrid data path: env steps/s (ours vs Farama's MiniGrid-Empty-6x6-v0),
`step_batch` transitions/s, and the time to collect 50,000 multi-task transitions.

    nice -n 5 python benchmarks/collect.py --out benchmarks/results/collect.md

Targets (issue 2): ours >= 4,000 env steps/s, step_batch >= 200,000 transitions/s, 50,000 multi-task
transitions in <= 60 s; the scripted task policies succeed in >= 95% of 500 seeded episodes. Run with
one thread (OMP/MKL threads are irrelevant: all of it is Python/numpy).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np


def env_steps_per_s(env_id: str, steps: int, seed: int = 0, **kwargs) -> float:
    """Random-action steps/s through `gym.make` (env checker off), resets included."""
    import minigrid  # noqa: F401  (registers Farama's ids)

    import wav.envs  # noqa: F401  (registers ours)

    env = gym.make(env_id, disable_env_checker=True, **kwargs)
    actions = np.random.default_rng(seed).integers(0, 7, steps)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def step_batch_per_s(n: int, repeats: int, box_toggle: str) -> float:
    """Transitions/s of `step_batch` on a batch of n states from random play (6 objects), best of `repeats`."""
    from wav.data.collect import collect
    from wav.envs.minigrid.dynamics import step_batch

    tr, _ = collect("WAV/Interact-v0", {"objects": 6, "box_toggle": box_toggle}, "random", 5000, seed=0, episode_steps=50, progress=False)
    idx = np.random.default_rng(0).integers(0, len(tr), n)
    grids, carried = tr.states[idx], tr.carried[idx]
    actions = np.random.default_rng(1).integers(0, 7, n)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_batch(grids, carried, actions, box_toggle)
        best = min(best, time.perf_counter() - t0)
    return n / best


def collect_seconds(transitions: int) -> float:
    from wav.data.collect import collect

    t0 = time.perf_counter()
    collect("WAV/MultiTask-v0", None, "scripted", transitions, seed=0, progress=False)
    return time.perf_counter() - t0


def success_rate(env_id: str, episodes: int) -> float:
    """Fraction of `episodes` seeded episodes (seeds 0..episodes-1) that the scripted policy ends on the
    goal with the task done."""
    from wav.data.collect import make_env
    from wav.data.policies import MultiTaskPolicy

    env = make_env(env_id)
    policy = MultiTaskPolicy(np.random.default_rng(0))
    wins = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        policy.reset(env)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(policy.act(env))
        wins += bool(info["success"])
    return wins / episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-steps", type=int, default=20_000, help="steps per env throughput measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the env measurements (best kept)")
    p.add_argument("--batch", type=int, default=100_000, help="states per step_batch call")
    p.add_argument("--collect", type=int, default=50_000, help="multi-task transitions to collect")
    p.add_argument("--episodes", type=int, default=500, help="seeded episodes per task for the success rates")
    p.add_argument("--out", default=None, help="write the results as markdown here")
    args = p.parse_args()

    rows = []
    envs = {
        "Farama MiniGrid-Empty-6x6-v0, random actions": ("MiniGrid-Empty-6x6-v0", {}, "reference"),
        "WAV/Interact-v0 (3 objects), random actions": ("WAV/Interact-v0", {"objects": 3}, ">= 4,000"),
        "WAV/Interact-v0 (6 objects, 3 noise floors), random actions": ("WAV/Interact-v0", {"objects": 6, "noise_floors": 3}, ">= 4,000"),
    }
    best = dict.fromkeys(envs, 0.0)
    for _ in range(args.rounds):  # alternate the envs so that load changes on a shared box hit all alike
        for name, (env_id, kwargs, _) in envs.items():
            best[name] = max(best[name], env_steps_per_s(env_id, args.env_steps, **kwargs))
    for name, (_, _, target) in envs.items():
        rows.append((name, f"{best[name]:,.0f} env steps/s (best of {args.rounds})", target))
    for mode in ("swap", "recolor"):
        sb = step_batch_per_s(args.batch, 5, mode)
        rows.append((f"step_batch, box toggle {mode}, batch {args.batch:,}", f"{sb:,.0f} transitions/s", ">= 200,000"))
    for env_id in ("WAV/KeyDelivery-v0", "WAV/BallDelivery-v0", "WAV/ObjectMatching-v0"):
        rate = success_rate(env_id, args.episodes)
        rows.append((f"scripted policy success, {env_id}, seeds 0..{args.episodes - 1}", f"{rate:.1%}", ">= 95%"))
    secs = collect_seconds(args.collect)
    rows.append((f"collect {args.collect:,} WAV/MultiTask-v0 scripted transitions", f"{secs:.1f} s ({args.collect / secs:,.0f} transitions/s)", "<= 60 s"))

    cmd = "nice -n 5 python " + " ".join(shlex.quote(a) for a in sys.argv)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        "# Data-path throughput (benchmarks/collect.py)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"one process on a shared 2-core box (load average at the end {load}); "
        f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Farama's env builds the agent's egocentric 7x7 view on every step; ours encodes the full 6x6 grid",
        "(the published observation), which is why it steps faster despite the extra objects. Timings on a",
        "loaded shared box vary by 2x between runs; the env rows alternate to keep their ratio fair.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
