"""Does the planner lose to the base policy because of what it chooses, or only because it moves the base action at
all? (issue 14) A control for the downstream runs: the residuals the planner executes, recorded, against residuals of
the same size that ignore the state.

    WAV_THREADS=1 .venv-robot/bin/python benchmarks/planning_noise.py --task LiftPeg --from runs/robot-acq-LiftPeg-openloop \
        --strategy oracle --seeds 0,1 --reward success --out runs/noise-LiftPeg-oracle-success

For each acquisition seed k (the world model of `--strategy`'s seed k, the reward model and critic fitted exactly as
`wav reproduce robot-downstream` fits them, the downstream run's env seeds and generators) these acts run on the same
env seeds:
  - base: the base policy alone (repeats the downstream base run of seed k);
  - planner: the residual planner (repeats the downstream run of (strategy, k)); every executed residual
    (executed action minus the base action) is recorded;
  - shuffled: base action + one of the planner's recorded residuals drawn at random (state-blind, the same
    distribution exactly);
  - noise: base action + Gaussian noise with the per-dimension mean and std of the planner's recorded residuals,
    clipped to the planner's clamp (state-blind, the same size and bias), split into
  - bias: base action + that mean alone (the planner's average push, every step), and
  - centred: base action + the zero-mean noise alone; centred<s> for each other scale s of --noise-scales: its std
    times s (how much unbiased perturbation the base policy tolerates).
If the state-blind acts lose as much as the planner, the loss is the perturbation's size, not the planner's
choice; if the planner loses more, its objective steers the robot wrong. Writes episodes.jsonl, residuals.npz and
summary.json under --out and prints the summary as the last stdout line. `--report FILE` (with the same --out) runs
nothing: it appends a markdown section with the table of a finished --out to FILE.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch


def make_actors(policy, planner, layout, seed: int):
    """The actors of one seed: the base policy, the planner recording its executed residuals, and the base policy
    plus a state-blind draw (the policy's and the planner's generators seeded as in the downstream run)."""
    from wav.planning.agent import PlanningActor

    class Recording(PlanningActor):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.residuals: list[np.ndarray] = []

        def __call__(self, env, state):
            action = super().__call__(env, state)
            self.residuals.append(action - self.chunk[self.j - 1])
            return action

    class Perturbed(PlanningActor):
        def __init__(self, draw, *args, **kw):
            super().__init__(*args, **kw)
            self.draw = draw

        def __call__(self, env, state):
            action = np.clip(super().__call__(env, state) + self.draw(), -1, 1).astype(np.float32)
            self.prev_action = action
            return action

    def gen():
        return torch.Generator().manual_seed(seed)

    return {"base": lambda: PlanningActor(policy, gen(), None, None, layout),
            "planner": lambda: Recording(policy, gen(), planner, torch.Generator().manual_seed(seed + 7), layout),
            "perturbed": lambda draw: Perturbed(draw, policy, gen(), None, None, layout)}


def residual_stats(res: np.ndarray, clamp: float) -> dict:
    """Size of the executed residuals (N, A): per-dimension mean and std, RMS, mean |residual|, share of the
    entries at the clamp."""
    return {"steps": int(len(res)), "mean": res.mean(0).tolist(), "std": res.std(0).tolist(), "rms": float(np.sqrt((res ** 2).mean())),
            "abs_mean": float(np.abs(res).mean()), "share_at_clamp": float((np.abs(res) >= clamp - 1e-6).mean())}


def outcomes(rows: list[dict]) -> dict:
    """From the episode records (episodes.jsonl rows): per act, success and reward over all episodes and per seed, and
    its paired difference (by seed and env seed) from the base policy and from the planner (`wav.stats.paired_difference`)."""
    from wav.stats import paired_difference

    rows = sorted(rows, key=lambda r: (r["seed"], r["env_seed"]))
    by_act = {act: [r for r in rows if r["act"] == act] for act in dict.fromkeys(r["act"] for r in rows)}

    def means(rs):
        return {m: float(np.mean([r[m] for r in rs])) for m in ("success", "reward")}

    def vs(a, b):
        return {m: paired_difference([r[m] for r in by_act[a]], [r[m] for r in by_act[b]]) for m in ("reward", "success")}

    acts = {act: means(rs) | {"episodes": len(rs), "per_seed": {str(k): means([r for r in rs if r["seed"] == k]) for k in dict.fromkeys(r["seed"] for r in rs)}}
            for act, rs in by_act.items()}
    return {"acts": acts, "vs_base": {act: vs(act, "base") for act in by_act if act != "base"},
            "vs_planner": {act: vs(act, "planner") for act in by_act if act not in ("base", "planner")}}


def markdown(summary: dict, rows: list[dict], out: str) -> str:
    """One section: per act, success and reward (mean over all episodes), the paired difference from the base
    policy and from the planner (Wilcoxon over episodes) and the per-seed mean rewards, drawn from the episode records;
    the residuals' statistics from the summary."""
    seeds = list(summary["seeds"])
    r = summary["residuals"]
    lines = [f"## {summary['task']}: the {summary['strategy']} world model, `--reward {summary['reward']}`, seeds {', '.join(seeds)} (`{out}`)", "",
             f"Executed residuals of the planner: RMS {r['rms']:.3f}, mean |residual| {r['abs_mean']:.3f}, share at the clamp {r['share_at_clamp']:.3f}, "
             f"per-dimension mean {', '.join(f'{x:+.3f}' for x in r['mean'])}, std {', '.join(f'{x:.3f}' for x in r['std'])} ({r['steps']} steps).", "",
             "| act | success | reward | − base reward (p) | − base success (p) | − planner reward (p) | − planner success (p) | reward per seed |",
             "|---|---|---|---|---|---|---|---|"]
    res = outcomes(rows)
    cell = lambda d: f"{d['mean']:+.2f} (p={d['p_wilcoxon']:.2g})" if d else "—"
    for act, v in res["acts"].items():
        vb, vp = res["vs_base"].get(act, {}), res["vs_planner"].get(act, {})
        per_seed = " / ".join(f"{v['per_seed'][k]['reward']:.1f}" for k in seeds)
        lines.append(f"| {act} | {v['success']:.2f} | {v['reward']:.2f} | {cell(vb.get('reward'))} | {cell(vb.get('success'))} | "
                     f"{cell(vp.get('reward'))} | {cell(vp.get('success'))} | {per_seed} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--from", dest="source", required=True, help="a robot-acquisition output folder")
    p.add_argument("--strategy", default="oracle")
    p.add_argument("--seeds", default="0", help="acquisition seeds, e.g. 0-4 or 0,2")
    p.add_argument("--episodes", type=int, default=None, help="episodes per seed (default: the preset's, as robot-downstream)")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--reward", default="discriminator", choices=["discriminator", "success"])
    p.add_argument("--noise-scales", default="1", help="comma-separated multipliers of the centred act's std (1 = the planner's)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", default=None, help="append the markdown table of the finished --out to this file and stop")
    a = p.parse_args(argv)
    from wav.stats import parse_seeds

    try:
        parse_seeds(a.seeds)
    except ValueError as e:
        p.error(f"--seeds: {e}")
    if a.report:
        summary = json.loads((Path(a.out) / "summary.json").read_text())
        rows = [json.loads(line) for line in open(Path(a.out) / "episodes.jsonl")]
        with open(a.report, "a") as f:
            f.write("\n" + markdown(summary, rows, a.out))
        print(f"appended {a.out} to {a.report}")
        return summary

    from wav.envs.manipulation.core import require_simulator
    from wav.experiments.robot_acquisition import load_world_model
    from wav.experiments.robot_downstream import RobotDownstreamExperiment, _env, load_demos, resolve
    from wav.planning.agent import prepare, run_episodes
    from wav.robot.policy import DiffusionPolicy
    from wav.runtime import set_threads

    seeds = tuple(parse_seeds(a.seeds))
    scales = [float(x) for x in a.noise_scales.split(",")]
    if any(x < 0 for x in scales):
        raise SystemExit(f"--noise-scales: multipliers must be >= 0, got {a.noise_scales!r}")
    centred = {("centred" if x == 1 else f"centred{x:g}"): x for x in scales}
    acts = ("base", "planner", "shuffled", "noise", "bias", *centred)
    require_simulator(a.task)  # one-line errors before any work: the simulator, then the inputs (resolve)
    exp = RobotDownstreamExperiment(task=a.task, source=a.source, seeds=seeds, strategies=(a.strategy,), preset=a.preset, episodes=a.episodes, reward=a.reward)
    inputs = resolve(exp)
    set_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "episodes.jsonl").unlink(missing_ok=True)
    policy = DiffusionPolicy.load(inputs.policy)
    demos = load_demos(inputs.data)
    env = _env(a.task)
    clamp = exp.planning.planner.clamp
    summary = {"task": a.task, "strategy": a.strategy, "reward": a.reward, "preset": a.preset, "policy": inputs.policy, "seeds": {}}
    records: list[dict] = []
    all_res = {}
    for seed in seeds:
        t0 = time.perf_counter()
        wm, _ = load_world_model(Path(inputs.world_models[(a.strategy, seed)]))
        planner = prepare(wm.rssm, demos, policy, inputs.layout, exp.planning, seed).planner
        print(f"seed {seed}: reward model and critic fitted in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        actors = make_actors(policy, planner, inputs.layout, seed)
        env_seeds = exp.env_seeds(seed)
        rows = {"base": run_episodes(env, actors["base"](), env_seeds)}
        rec = actors["planner"]()
        rows["planner"] = run_episodes(env, rec, env_seeds)
        res = np.stack(rec.residuals).astype(np.float32)
        all_res[f"seed{seed}"] = res
        mu, sd = res.mean(0), res.std(0)
        draws = {"shuffled": lambda rng: res[rng.integers(len(res))], "noise": lambda rng: rng.normal(mu, sd), "bias": lambda rng: mu}
        draws |= {act: (lambda rng, x=x: rng.normal(0.0, x * sd)) for act, x in centred.items()}
        for act in acts[2:]:  # each act its own draws, whatever the other acts
            rng = np.random.default_rng([seed, zlib.crc32(act.encode())])
            rows[act] = run_episodes(env, actors["perturbed"](lambda d=draws[act], rng=rng: np.clip(d(rng), -clamp, clamp).astype(np.float32)), env_seeds)
        mine = [{"seed": seed, "act": act, **r} for act in acts for r in rows[act]]
        with open(out / "episodes.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in mine)
        records += mine
        summary["seeds"][seed] = {"residuals": residual_stats(res, clamp), **outcomes(mine)["acts"], "seconds": time.perf_counter() - t0}
        print(json.dumps({"seed": seed, **summary["seeds"][seed]}), file=sys.stderr)
    np.savez(out / "residuals.npz", **all_res)
    summary |= outcomes(records)
    summary["residuals"] = residual_stats(np.concatenate(list(all_res.values())), clamp)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
