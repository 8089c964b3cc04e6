"""Speed of downstream planning (issue 14): one MPPI planning step per preset, and episodes per minute in the
simulator with a real world model.

    WAV_THREADS=1 nice -n 10 .venv-robot/bin/python benchmarks/planning.py                      # planning step ms, synthetic RSSM
    WAV_THREADS=1 nice -n 10 .venv-robot/bin/python benchmarks/planning.py --from runs/robot-acq-debug-wm \
        --strategy oracle --episodes 20 --preset cpu [--ablate]                                 # + 20 episodes in the env

A planning step = filtering one observed state into the RSSM + `iterations` batched imaginations of `samples`
residual sequences (the horizon's RSSM steps, the discriminator, the critic ensemble, the continue head). The
RSSM is sized like the acquisition runs' (`rssm` preset = the experiment's preset); weights are random (speed
does not depend on them). Issue 14 targets: <= 50 ms per step at `cpu` on 2 cores; 20 episodes of a 50-step
ManiSkill task <= 2 minutes. Rows go to benchmarks/results/planning.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def step_ms(preset: str, state_dim: int, calls: int, threads: int) -> dict:
    from wav.experiments.robot_downstream import PRESETS
    from wav.models.rssm import RSSM
    from wav.models.rssm import preset as rssm_preset
    from wav.planning import CriticEnsemble, Discriminator, Planner

    torch.set_num_threads(threads)
    cfg = PRESETS[preset]
    torch.manual_seed(0)
    rssm = RSSM(rssm_preset("paper" if preset == "paper" else preset, state_dim=state_dim, action_dim=7)).eval().requires_grad_(False)
    planner = Planner(rssm, Discriminator(rssm.cfg.feat, cfg.reward).requires_grad_(False),
                      CriticEnsemble(rssm.cfg.feat, cfg.critic).requires_grad_(False), cfg.planner)
    gen = torch.Generator().manual_seed(0)
    latent, base = None, torch.zeros(cfg.planner.horizon, 7)
    times = []
    with torch.no_grad():
        for i in range(calls + 3):
            t = time.perf_counter()
            latent = rssm.filter_step(latent, None if latent is None else torch.zeros(1, 7), torch.randn(1, state_dim))
            planner.plan(latent, base, gen)
            if i >= 3:  # warm-up calls excluded
                times.append(1000 * (time.perf_counter() - t))
    p = cfg.planner
    return {"preset": preset, "threads": threads, "budget": f"{p.iterations} x {p.samples}", "nets": f"D {cfg.reward.layers}x{cfg.reward.units}, "
            f"critic {cfg.critic.members}x{cfg.critic.layers}x{cfg.critic.units}", "feat": rssm.cfg.feat,
            "median_ms": statistics.median(times), "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))]}


ABLATIONS = {"full": {}, "no residual (clamp 0)": {"clamp": 0.0}, "no terminal value": {"use_value": False},
             "no spread penalty": {"uncertainty": 0.0}, "reward only": {"use_value": False, "uncertainty": 0.0},
             "small residuals (clamp 0.05)": {"clamp": 0.05, "init_std": 0.02, "max_std": 0.05}}
"""planner variants `--ablate` runs with one fitted reward model and critic (PlannerConfig fields replaced)"""


def episodes(source: str, strategy: str, seed: int, n: int, preset: str, task: str, ablate: bool = False) -> list[dict]:
    """Fit the reward model and critic for one world model, then time n planned episodes in the env (with
    `ablate`, once per planner variant), and n episodes of the base policy alone on the same env seeds."""
    from dataclasses import replace

    import numpy as np

    from wav.experiments.robot_acquisition import load_world_model
    from wav.experiments.robot_downstream import PRESETS, RobotDownstreamExperiment, _env, load_demos, resolve
    from wav.planning import Planner
    from wav.planning.agent import PlanningActor, prepare, run_episodes
    from wav.robot.policy import DiffusionPolicy
    from wav.runtime import set_threads

    set_threads(1)
    exp = RobotDownstreamExperiment(task=task, source=source, seeds=(seed,), strategies=(strategy,), episodes=n, preset=preset)
    inputs = resolve(exp)
    policy = DiffusionPolicy.load(inputs.policy)
    wm, _ = load_world_model(Path(inputs.world_models[(strategy, seed)]))
    t0 = time.perf_counter()
    prepared = prepare(wm.rssm, load_demos(inputs.data), policy, inputs.layout, PRESETS[preset], seed)
    fit = time.perf_counter() - t0
    env, p, out = _env(task), prepared.planner, []
    variants = ABLATIONS if ablate else {"full": {}}
    for name, change in [("base policy alone", None), *variants.items()]:
        planner = None if change is None else Planner(p.rssm, p.reward, p.critic, replace(p.cfg, **change))
        actor = PlanningActor(policy, torch.Generator().manual_seed(seed), planner, torch.Generator().manual_seed(seed + 7), inputs.layout)
        t1 = time.perf_counter()
        rows = run_episodes(env, actor, exp.env_seeds(seed))
        wall = time.perf_counter() - t1
        out.append({"variant": name, "task": task, "strategy": strategy, "seed": seed, "preset": preset, "episodes": n, "fit_s": fit,
                    "wall_s": wall, "steps": sum(r["steps"] for r in rows), "reward": float(np.mean([r["reward"] for r in rows])),
                    "success": float(np.mean([r["success"] for r in rows])),
                    "plan_ms": float(np.mean([r["plan_ms"] for r in rows])) if planner else None, "episodes_per_min": 60 * n / wall,
                    "diagnostics": {k: v for k, v in prepared.diagnostics.items() if k.startswith("reward_") and k != "reward_loss"}})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="debug,cpu,paper")
    p.add_argument("--state-dim", type=int, default=35, help="flat state size (PullCube: 35)")
    p.add_argument("--calls", type=int, default=30, help="timed planning steps per preset")
    p.add_argument("--threads", default="1,2", help="torch threads to time with")
    p.add_argument("--from", dest="source", default=None, help="a robot-acquisition folder: also time planned episodes in the env")
    p.add_argument("--task", default="PullCube")
    p.add_argument("--strategy", default="oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--preset", default="cpu", help="preset of the episode timing")
    p.add_argument("--ablate", action="store_true", help="also run the planner variants of ABLATIONS on the same episodes")
    args = p.parse_args(argv)
    print("| preset | torch threads | MPPI budget | nets | feature size | median ms per planning step | p90 ms |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        for th in (int(x) for x in args.threads.split(",")):
            r = step_ms(preset, args.state_dim, args.calls, th)
            print(f"| {preset} | {th} | {r['budget']} | {r['nets']} | {r['feat']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} |", flush=True)
    if args.source:
        rows = episodes(args.source, args.strategy, args.seed, args.episodes, args.preset, args.task, args.ablate)
        r0 = rows[0]
        print(f"\n{r0['task']}, world model of {r0['strategy']} seed {r0['seed']}, preset {r0['preset']}, {r0['episodes']} episodes: reward model + "
              f"critic fit {r0['fit_s']:.1f} s; reward-model diagnostics {json.dumps(r0['diagnostics'])}\n")
        print("| planner | reward | success | wall s | episodes / min | ms per planning step |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            ms = f"{r['plan_ms']:.1f}" if r["plan_ms"] is not None else "—"
            print(f"| {r['variant']} | {r['reward']:.2f} | {r['success']:.2f} | {r['wall_s']:.1f} | {r['episodes_per_min']:.1f} | {ms} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
