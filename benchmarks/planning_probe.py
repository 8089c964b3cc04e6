"""Why does the planner not beat the base policy? (issue 14) The imagined vs true-dynamics objective of the same
residual candidates, at states of real episodes, for one strategy's world model (`wav.planning.probe`).

    WAV_THREADS=1 .venv-robot/bin/python benchmarks/planning_probe.py --task Lift --from runs/robot-acq-Lift-cpu5 \
        --strategy oracle --seed 0 --episodes 10 --acts base,model,true --out runs/probe-Lift-oracle

The reward model and critic are fitted exactly as `wav reproduce robot-downstream` fits them for that (strategy,
seed) (same seed, same data, same preset); the episodes use the downstream experiment's held-out env seeds, so
the `base` act replays the downstream base-policy run's first episodes. Per act mode the script records every
probed state (probes.jsonl) and every episode (episodes.jsonl) under --out and prints a JSON summary:
  - spearman: rank correlation over the candidates of imagined vs true objective (mean over probed states,
    95% CI over episodes);
  - gain_model_pick / gain_true_pick: the true objective of the imagined best / the true best minus the base
    chunk's (what one planning step can gain with this world model / with perfect dynamics);
  - state_error_end vs end_spread: the world model's standardised squared error 8 steps ahead against how far
    apart the candidates' true end states are (same units);
  - replay_state_diff / replay_objective_diff: the base chunk rolled twice from the same snapshot (0 on robosuite,
    which restores bit for bit; ManiSkill's restore leaves PhysX's contact caches, so its replays differ a little):
    the noise floor of the true side, to set against end_spread and true_std;
  - task_*: the same with the simulator's shaped task reward (privileged; robosuite's shaped reward, ManiSkill's
    normalised dense reward): does the planner's objective rank the
    candidates as the task does (spearman_true_vs_task), and what the task-best candidate gains;
  - success and reward of the episodes each act mode ran.
Every task can restore a simulator snapshot: the robosuite tasks bit for bit, the ManiSkill tasks up to PhysX's
contact caches (so there a probing run's episodes differ slightly from the downstream run's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def summarise(rows: list[dict], episodes: list[dict]) -> dict:
    from wav.stats import mean_ci

    def by_episode(key):
        vals = {}
        for r in rows:
            if np.isfinite(r[key]):
                vals.setdefault(r["episode"], []).append(r[key])
        per = [float(np.mean(v)) for v in vals.values()]
        m, lo, hi = mean_ci(per) if len(per) > 1 else (per[0] if per else float("nan"), float("nan"), float("nan"))
        return {"mean": m, "ci": [lo, hi]}

    keys = ["spearman", "gain_model_pick", "gain_true_pick", "true_std", "objective_gap", "state_error_step1", "state_error_end", "end_spread"]
    keys += [k for k in ("replay_state_diff", "replay_objective_diff") if rows and k in rows[0]]
    if rows and "task_reward_base" in rows[0]:
        keys += ["task_reward_base", "task_gain_model_pick", "task_gain_true_pick", "task_gain_task_pick", "task_std",
                 "spearman_true_vs_task", "spearman_imagined_vs_task"] + (["spearman_reward_vs_task"] if "spearman_reward_vs_task" in rows[0] else [])
    out = {k: by_episode(k) for k in keys}
    if rows and "reward_base" in rows[0]:  # across states (pooled): does the learned reward follow the task's progress at all?
        from scipy import stats

        out["spearman_reward_vs_task_across_states"] = float(stats.spearmanr([r["reward_base"] for r in rows], [r["task_reward_base"] for r in rows]).statistic)
    out["probes"] = len(rows)
    out["share_model_pick_better_than_base"] = float(np.mean([r["gain_model_pick"] > 0 for r in rows])) if rows else None
    out["share_true_pick_better_than_base"] = float(np.mean([r["gain_true_pick"] > 0 for r in rows])) if rows else None
    out["seconds_per_probe"] = float(np.mean([r["seconds"] for r in rows])) if rows else None
    out["success"] = float(np.mean([e["success"] for e in episodes]))
    out["reward"] = float(np.mean([e["reward"] for e in episodes]))
    out["episodes"] = len(episodes)
    out["successes"] = [bool(e["success"]) for e in episodes]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--from", dest="source", required=True, help="a robot-acquisition output folder")
    p.add_argument("--strategy", default="oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--candidates", type=int, default=32)
    p.add_argument("--std", type=float, default=0.05)
    p.add_argument("--every", type=int, default=4)
    p.add_argument("--acts", default="base", help="comma-separated: base (probe only), model (execute the imagined best), true (execute the "
                   "true-dynamics best under the planner's objective), task (execute the best under the simulator's shaped reward)")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--reward", default="discriminator", choices=["discriminator", "success"], help="the reward model (as robot-downstream's --reward)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)

    from wav.envs.manipulation import make_env
    from wav.envs.manipulation.core import require_simulator
    from wav.experiments.robot_acquisition import load_world_model
    from wav.experiments.robot_downstream import RobotDownstreamExperiment, load_demos, resolve
    from wav.planning.agent import prepare
    from wav.planning.probe import ProbeActor, ProbeConfig
    from wav.robot.collect import run_episode
    from wav.robot.policy import DiffusionPolicy
    from wav.runtime import Progress, set_threads

    acts = a.acts.split(",")
    cfgs = {m: ProbeConfig(a.candidates, a.std, a.every, m) for m in acts}  # bad values are refused here, before any work
    require_simulator(a.task)  # a one-line error for a task without its simulator, before any work
    set_threads(1)
    exp = RobotDownstreamExperiment(task=a.task, source=a.source, seeds=(a.seed,), strategies=(a.strategy,), preset=a.preset, episodes=a.episodes, reward=a.reward)
    inputs = resolve(exp)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wm, meta = load_world_model(Path(inputs.world_models[(a.strategy, a.seed)]))
    policy = DiffusionPolicy.load(inputs.policy)
    planner = prepare(wm.rssm, load_demos(inputs.data), policy, inputs.layout, exp.planning, a.seed).planner
    fit_seconds = time.perf_counter() - t0
    print(f"reward model and critic fitted in {fit_seconds:.0f} s", file=sys.stderr)
    env = make_env(a.task)
    summary = {"task": a.task, "strategy": a.strategy, "seed": a.seed, "policy": inputs.policy, "candidates": a.candidates, "std": a.std,
               "every": a.every, "preset": a.preset, "reward": a.reward, "fit_seconds": fit_seconds, "acts": {}}
    seeds = exp.env_seeds(a.seed)
    for mode in acts:
        actor = ProbeActor(policy, torch.Generator().manual_seed(a.seed), planner, cfgs[mode], torch.Generator().manual_seed(a.seed + 11),
                           inputs.layout, np.asarray(meta["scale"], np.float32))
        episodes, progress, t1 = [], Progress(f"probe {mode}"), time.perf_counter()
        for s in seeds:
            progress(lambda: f"{len(episodes)}/{len(seeds)} episodes, {len(actor.rows)} probes")
            tr = run_episode(env, actor.reset, actor, s, 0.0, np.random.default_rng(0), mode)
            episodes.append({"env_seed": int(s), "success": bool(tr.success), "reward": float(tr.rewards.sum()), "steps": len(tr)})
        with open(out / "probes.jsonl", "a") as f:
            for r in actor.rows:
                f.write(json.dumps({"act": mode, **r}) + "\n")
        with open(out / "episodes.jsonl", "a") as f:
            for e in episodes:
                f.write(json.dumps({"act": mode, **e}) + "\n")
        summary["acts"][mode] = summarise(actor.rows, episodes) | {"seconds": time.perf_counter() - t1}
        print(json.dumps({mode: summary["acts"][mode]}), file=sys.stderr)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
