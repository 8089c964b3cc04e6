"""Does a better world model make a better robot? (REFERENCE §6 downstream reward, ROBOT.md §7, issue 14): each
strategy's final world model from a robot acquisition run drives the SAILOR-style residual planner around one
fixed base diffusion policy, and the episodes' reward and success are compared with the base policy alone.

Per (strategy, acquisition seed k): load `<from>/runs/<strategy>/seed<k>/world_model.pt`, fit the discriminator
reward and the critic on its latents of the pool file's expert vs learner trajectories (held out: the pool's
`eval` partition), then run N episodes on held-out env seeds (the same N seeds for every strategy at seed k and
for the base policy alone, so every comparison is paired over k). `run()` writes
`<out>/runs/<strategy|base>/seed<k>/{config.json, metrics.jsonl, done}`; `report()` reads only those records and
writes results.json, table.md and figure.png.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.experiments.common import check_resume, file_sha1, is_done, read_metrics, run_jobs, strategy_bars, write_json, write_report
from wav.experiments.robot_acquisition import PUBLISHED_NAMES, STRATEGIES, WORLD_MODEL
from wav.planning.agent import PlanningConfig
from wav.planning.critic import CriticConfig
from wav.planning.planner import PlannerConfig
from wav.planning.reward import RewardConfig
from wav.stats import mean_ci, paired_difference

BASE = "base"
"""the run name of the base policy alone"""
EVAL_SEED = 900_000_000
"""episode seeds of seed k are EVAL_SEED + 1000 k + i: far from the build's (base seed x 1e6 + stream x 1e4 + i)"""
PUBLISHED = {  # REFERENCE §6: downstream reward WAV / best baseline / Oracle
    "Can": (6.05, 5.35, 6.85), "Lift": (6.10, 5.85, 6.60), "Square": (4.10, 3.55, 4.75),
    "PokeCube": (2.85, 2.20, 3.55), "PullCube": (6.05, 5.40, 6.75), "LiftPeg": (6.00, 5.50, 6.55),
}

# Sized for 2 CPU cores: `cpu` keeps one planning step near 50 ms (published: 6 x 256 samples, 2 x 512 nets).
PRESETS: dict[str, PlanningConfig] = {
    "debug": PlanningConfig(RewardConfig(units=64, lr=1e-3, steps=150, batch_size=128),
                            CriticConfig(units=64, lr=1e-3, steps=100, batch_size=128),
                            PlannerConfig(iterations=2, samples=32, elites=8)),
    "cpu": PlanningConfig(RewardConfig(units=128, lr=3e-4, steps=1000, batch_size=256),
                          CriticConfig(units=128, lr=3e-4, steps=500, batch_size=256),
                          PlannerConfig(iterations=4, samples=64, elites=16)),
    "paper": PlanningConfig(RewardConfig(), CriticConfig(), PlannerConfig()),
}
EPISODES = {"debug": 2, "cpu": 20, "paper": 50}
RESUME_DEFAULTS = {"planning.reward.kind": "discriminator", "planning.reward.success_gamma": 0.95}
"""what runs recorded before these settings existed were made with (a resume asking otherwise redoes or refuses them)"""


@dataclass(frozen=True)
class RobotDownstreamExperiment:
    """Which world models plan, over which base policy, for how many episodes."""

    task: str = "PullCube"
    """manipulation task (checked against every world model's meta)"""
    source: str = "runs/robot-acquisition"
    """a finished `wav reproduce robot-acquisition` output folder (runs/<strategy>/seed<k>/world_model.pt)"""
    out: str = "runs/robot-downstream"
    """output folder (run dirs, results)"""
    seeds: tuple[int, ...] = tuple(range(5))
    """acquisition seeds whose world models plan (also seed the reward model, critic, policy and planner)"""
    strategies: tuple[str, ...] | None = None
    """strategies to evaluate (default: every one of the paper's six with runs in `source`)"""
    episodes: int | None = None
    """episodes per (strategy, seed) (default: the preset's)"""
    preset: str = "cpu"
    """reward model, critic and planner sizes: debug | cpu | paper"""
    reward: str = "discriminator"
    """reward model: discriminator (SAILOR) | success (regressor of the recorded success's nearness: an ablation)"""
    policy: str | None = None
    """base diffusion-policy checkpoint (default: the build's checkpoint whose success is closest to 0.5)"""
    jobs: int = 2
    """parallel (strategy, seed) jobs"""
    force: bool = False
    """redo finished runs whose recorded settings differ (default: refuse to mix them)"""

    @property
    def planning(self) -> PlanningConfig:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {sorted(PRESETS)}")
        cfg = PRESETS[self.preset]
        return cfg if self.reward == cfg.reward.kind else replace(cfg, reward=replace(cfg.reward, kind=self.reward))

    @property
    def n_episodes(self) -> int:
        return int(self.episodes if self.episodes is not None else EPISODES[self.preset])

    def env_seeds(self, seed: int) -> list[int]:
        return [EVAL_SEED + 1000 * seed + i for i in range(self.n_episodes)]


@dataclass(frozen=True)
class Inputs:
    """The validated inputs: world-model paths by (strategy, seed), the pool file, the base policy."""

    strategies: tuple[str, ...]
    world_models: dict
    data: str
    policy: str
    policy_success: float | None
    layout: dict


def pick_policy(build_dir: Path) -> tuple[Path, float | None]:
    """The build's checkpoint whose noisy-rollout success (summary.json `checkpoint_success`) is closest to 0.5
    (ties: the earlier checkpoint), so the planner has room to help and to hurt."""
    summary = build_dir / "summary.json"
    try:
        rates = json.loads(summary.read_text())["checkpoint_success"]
    except (OSError, ValueError, KeyError):
        raise ValueError(f"{summary}: no checkpoint_success (the `wav robot build` summary); pass --policy") from None
    name = min(rates, key=lambda k: (abs(rates[k] - 0.5), int(k.removeprefix("ckpt"))))
    path = build_dir / "checkpoints" / f"ckpt_{int(name.removeprefix('ckpt'))}.pt"
    if not path.is_file():
        raise ValueError(f"{path}: missing (summary.json names {name}, success {rates[name]:.2f}); pass --policy")
    return path, float(rates[name])


def resolve(exp: RobotDownstreamExperiment) -> Inputs:
    """Check every input before any work (one-line errors): finished acquisition runs with world models of this
    task for every requested strategy and seed, one pool file behind them, a base policy of the same state and
    action sizes."""
    from wav.train import checkpoint_meta

    src = Path(exp.source)
    root = src / "runs"
    if not root.is_dir():
        raise ValueError(f"--from {exp.source}: no runs/ folder (expected the output folder of `wav reproduce robot-acquisition`)")
    names = exp.strategies or tuple(s for s in STRATEGIES if (root / s).is_dir())
    if not names:
        raise ValueError(f"--from {exp.source}: no finished robot-acquisition runs (runs/<strategy>/seed<k>/ of {', '.join(STRATEGIES)})")
    paths, metas = {}, {}
    for s in names:
        for k in exp.seeds:
            d = root / s / f"seed{k}"
            if not is_done(d):
                raise ValueError(f"--from {exp.source}: runs/{s}/seed{k} is not a finished run (no 'done' file)")
            p = d / WORLD_MODEL
            if not p.is_file():
                raise ValueError(f"--from {exp.source}: runs/{s}/seed{k} has no {WORLD_MODEL} (made before world models were saved; rerun the acquisition)")
            blob = checkpoint_meta(p) or {}
            meta = blob.get("meta") or {}
            if (blob.get("config") or {}).get("image_channels"):
                raise ValueError(f"{p}: this world model reads camera images, and the planner filters states only (run the acquisition without --images)")
            task = meta.get("task")
            if task is None or str(task).lower() != exp.task.lower():
                raise ValueError(f"{p}: a world model of task {task!r}, not the requested task {exp.task!r}")
            if "scale" not in meta or "data" not in meta:
                raise ValueError(f"{p}: meta lacks 'scale'/'data' (not a robot-acquisition world model)")
            paths[(s, k)], metas[(s, k)] = str(p), meta
    data = {m["data"] for m in metas.values()}
    if len(data) > 1:
        raise ValueError(f"--from {exp.source}: the world models come from different pool files ({sorted(data)})")
    pool = Path(data.pop())
    if not pool.is_file():
        raise ValueError(f"{pool}: the pool file the world models were trained on is gone")
    policy, success = (Path(exp.policy), None) if exp.policy else pick_policy(pool.parent)
    from wav.robot.policy import DiffusionPolicy

    try:
        pol = DiffusionPolicy.load(policy)
    except FileNotFoundError:
        raise ValueError(f"--policy {policy}: no such file") from None
    except Exception as e:
        raise ValueError(f"--policy {policy}: not a diffusion-policy checkpoint ({type(e).__name__}: {e})") from None
    p0 = paths[(names[0], exp.seeds[0])]
    cfg = (checkpoint_meta(p0) or {}).get("config") or {}
    want = (int(cfg.get("state_dim", -1)), int(cfg.get("action_dim", -1)))
    if (pol.state_dim, pol.action_dim) != want:
        raise ValueError(f"--policy {policy}: state/action sizes {(pol.state_dim, pol.action_dim)} do not match the task's world models {want}")
    ptask = (getattr(pol, "meta", {}) or {}).get("task")
    if ptask is not None and str(ptask).lower() != exp.task.lower():
        raise ValueError(f"--policy {policy}: a policy of task {ptask!r}, not {exp.task!r}")
    return Inputs(tuple(names), paths, str(pool), str(policy), success, metas[(names[0], exp.seeds[0])]["layout"])


def run_dir(exp: RobotDownstreamExperiment, name: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / name / f"seed{seed}"


def settings(exp: RobotDownstreamExperiment, inputs: Inputs, name: str, seed: int, digests: dict) -> dict:
    """What a run's result depends on (compared on resume; worker counts are not in it)."""
    out = {"strategy": name, "seed": seed, "task": exp.task, "policy": os.path.abspath(inputs.policy), "policy_sha1": digests[inputs.policy],
           "episodes": exp.n_episodes, "env_seeds": exp.env_seeds(seed)[:1], "preset": exp.preset}
    if name != BASE:
        wm = inputs.world_models[(name, seed)]
        out |= {"world_model": os.path.abspath(wm), "world_model_sha1": digests[wm], "data": inputs.data, "data_sha1": digests[inputs.data],
                "planning": asdict(exp.planning)}
    return out


def load_demos(path: str):
    """Expert vs learner trajectories of the pool file (source 'expert' vs every checkpoint's rollouts), the
    `eval` partition held out."""
    from wav.data.robot_io import load_trajectories
    from wav.planning.agent import Demos

    trajs, _ = load_trajectories(path)
    held, _ = load_trajectories(path, filter_key="eval")
    heldout = {(t.source, t.seed) for t in held}
    groups = {(e, o): [t for t in trajs if (t.source == "expert") == e and ((t.source, t.seed) in heldout) == o] for e in (True, False) for o in (False, True)}
    pairs = {k: [(t.states, t.actions) for t in v] for k, v in groups.items()}
    return Demos(pairs[True, False], pairs[False, False], pairs[True, True], pairs[False, True],
                 [t.success for t in groups[False, False] + groups[False, True]],
                 [np.asarray(t.rewards, np.float32) for t in groups[True, False] + groups[False, False]])


def _env(task: str):
    from wav.robot.collect import _env as cached_env  # one env per process, kept across jobs (a ManiSkill env takes ~9 s to make)

    return cached_env(task, False, None)


def _job(exp: RobotDownstreamExperiment, inputs: Inputs, name: str, seed: int, st: dict) -> dict:
    """One run: the base policy alone, or the planner with one world model."""
    import torch

    from wav.data.io import atomic_write
    from wav.experiments.robot_acquisition import load_world_model
    from wav.planning.agent import PlanningActor, prepare, run_episodes
    from wav.robot.policy import DiffusionPolicy
    from wav.runtime import package_versions, set_threads

    set_threads(1)
    t0 = time.perf_counter()
    rd = run_dir(exp, name, seed)
    rd.mkdir(parents=True, exist_ok=True)
    (rd / "done").unlink(missing_ok=True)
    (rd / "metrics.jsonl").unlink(missing_ok=True)
    atomic_write(rd / "config.json", lambda t: Path(t).write_text(json.dumps({"settings": st, "experiment": asdict(exp), "versions": package_versions(),
                                                                               "policy_success": inputs.policy_success}, indent=2, default=str)))
    policy = DiffusionPolicy.load(inputs.policy)
    planner, fit = None, {}
    if name != BASE:
        wm, _ = load_world_model(Path(inputs.world_models[(name, seed)]))
        prepared = prepare(wm.rssm, load_demos(inputs.data), policy, inputs.layout, exp.planning, seed)
        planner, fit = prepared.planner, prepared.diagnostics
    actor = PlanningActor(policy, torch.Generator().manual_seed(seed), planner, torch.Generator().manual_seed(seed + 7), inputs.layout)
    t1 = time.perf_counter()
    rows = run_episodes(_env(exp.task), actor, exp.env_seeds(seed))
    with open(rd / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"kind": "fit", **fit, "fit_seconds": t1 - t0}) + "\n")
        for i, r in enumerate(rows):
            f.write(json.dumps({"kind": "episode", "episode": i, **r}) + "\n")
    (rd / "done").write_text("ok\n")
    return {"name": name, "seed": seed, "seconds": time.perf_counter() - t0, "episode_seconds": time.perf_counter() - t1}


def run(exp: RobotDownstreamExperiment, progress: bool = True) -> dict:
    """Validate the inputs, run (or resume) the base policy and every (strategy, seed), write the report."""
    from wav.envs.manipulation.core import require_simulator

    if exp.n_episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {exp.n_episodes}")
    inputs = resolve(exp)
    require_simulator(exp.task)
    digests = {p: file_sha1(p) for p in {inputs.policy, inputs.data, *inputs.world_models.values()}}
    names = (BASE, *inputs.strategies)
    want = {(n, k): settings(exp, inputs, n, k, digests) for k in exp.seeds for n in names}
    check_resume({run_dir(exp, n, k): s for (n, k), s in want.items()}, exp.force, RESUME_DEFAULTS)
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(n, k) for k in exp.seeds for n in names if not is_done(run_dir(exp, n, k))]
    skipped = len(want) - len(todo)
    if skipped and progress:
        print(f"resume: {skipped} of {len(want)} runs already finished, skipped", file=sys.stderr)
    t0 = time.perf_counter()
    from wav.robot.collect import close_envs

    try:
        jobs = run_jobs(_job, [(exp, inputs, n, k, want[(n, k)]) for n, k in todo], "local", exp.jobs, desc="runs" if progress else None)
    finally:
        close_envs()  # the env an in-process job kept
    wall = time.perf_counter() - t0
    results = report(exp, inputs.strategies)
    results |= {"wall_seconds": wall, "jobs": exp.jobs, "job_seconds": jobs, "policy": inputs.policy, "policy_success": inputs.policy_success}
    write_json(out / "results.json", results)
    return results


# --------------------------------------------------------------------------- report (run records only)


def _episodes(rd: Path) -> tuple[list[dict], dict]:
    rows = read_metrics(rd)
    return [r for r in rows if r.get("kind") == "episode"], next((r for r in rows if r.get("kind") == "fit"), {})


def report(exp: RobotDownstreamExperiment, strategies: tuple[str, ...] | None = None) -> dict:
    """results.json (mean and 95% CI over seeds of each seed's mean episode reward and success; paired
    differences against the base policy and wav - X), table.md and figure.png, from the run records."""
    names = (BASE, *(strategies or exp.strategies or STRATEGIES))
    per: dict[str, dict[int, dict]] = {}
    for n in names:
        for k in exp.seeds:
            rd = run_dir(exp, n, k)
            if not is_done(rd):
                continue
            eps, fit = _episodes(rd)
            if eps:
                plan = [e["plan_ms"] for e in eps if e.get("plan_ms") is not None]
                per.setdefault(n, {})[k] = {"reward": float(np.mean([e["reward"] for e in eps])), "success": float(np.mean([e["success"] for e in eps])),
                                            "seconds_per_episode": float(np.mean([e["seconds"] for e in eps])), "plan_ms": float(np.mean(plan)) if plan else None,
                                            "auc": (fit.get("reward_heldout_trajectory") or {}).get("auc"),
                                            "auc_state": (fit.get("reward_heldout_state") or {}).get("auc"),
                                            "auc_success": (fit.get("reward_success_vs_failure") or {}).get("auc"), "fit_seconds": fit.get("fit_seconds")}
    entries = {}
    for n, by_seed in per.items():
        e = {"seeds": sorted(by_seed)}
        for m, bounds in (("reward", (0.0, np.inf)), ("success", (0.0, 1.0))):
            mean, lo, hi = mean_ci([v[m] for v in by_seed.values()], bounds=bounds)
            e[m], e[f"{m}_ci"] = mean, [lo, hi]
        for m in ("seconds_per_episode", "plan_ms", "auc", "auc_state", "auc_success", "fit_seconds"):
            vals = [v[m] for v in by_seed.values() if v[m] is not None]
            e[m] = float(np.mean(vals)) if vals else None
        entries[n] = e

    def paired(a: str, b: str, m: str) -> dict:
        common = sorted(set(per.get(a, {})) & set(per.get(b, {})))
        return paired_difference([per[a][k][m] for k in common], [per[b][k][m] for k in common])

    vs_base = {n: {m: paired(n, BASE, m) for m in ("reward", "success")} for n in per if n != BASE and BASE in per}
    wav_minus = {n: {"reward": paired("wav", n, "reward")} for n in per if n not in ("wav", BASE) and "wav" in per}
    rivals = {n: e["reward"] for n, e in entries.items() if n not in (BASE, "wav", "oracle")}
    best = max(rivals, key=rivals.get) if rivals else None
    eps = [v["seconds_per_episode"] for by in per.values() for v in by.values()]
    results = {"task": exp.task, "preset": exp.preset, "episodes": exp.n_episodes, "n_seeds": len(exp.seeds), "base": entries.get(BASE),
               "strategies": {n: e for n, e in entries.items() if n != BASE}, "paired_vs_base": vs_base, "paired_wav_minus": wav_minus,
               "best_non_oracle": best, "wav_beats_best_non_oracle": (entries["wav"]["reward"] >= rivals[best]) if best and "wav" in entries else None,
               "seconds_per_episode": float(np.mean(eps)) if eps else None, "planning": asdict(exp.planning), "published": PUBLISHED.get(exp.task)}
    return write_report(exp.out, results, markdown_table, plot)


def _ci(e: dict | None, m: str, digits: int = 2) -> str:
    if not e or e.get(m) is None or not np.isfinite(e[m]):
        return "—"
    lo, hi = e[f"{m}_ci"]
    return f"{e[m]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _p(d: dict | None) -> str:
    if not d or d.get("mean") is None or not np.isfinite(d["mean"]):
        return "—"
    p = d.get("p_ttest")
    return f"{d['mean']:+.2f} (p={p:.3g})" if p is not None and np.isfinite(p) else f"{d['mean']:+.2f}"


def markdown_table(results: dict) -> str:
    task, pub = results["task"], results.get("published")
    kind = (results.get("planning") or {}).get("reward", {}).get("kind", "discriminator")
    what = "SAILOR protocol: discriminator reward" if kind == "discriminator" else f"SAILOR protocol with the {kind} reward model (an ablation)"
    lines = [f"Downstream planning on {task} ({what} + critic + MPPI residuals around a fixed base "
             f"diffusion policy), {results['episodes']} episodes x {results['n_seeds']} seeds, preset `{results['preset']}`: mean over seeds "
             "[95% CI]. Reward = the env's success reward summed over an episode; paired differences over seeds.",
             "", "| policy | reward ↑ | success ↑ | − base reward (p) | − base success (p) | wav − X reward (p) | reward AUC: expert vs learner, held-out trajectories / states; successful vs failed learner trajectories | ms per planning step | published reward |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"oracle": 2, "wav": 0}
    base = results.get("base")
    if base:
        lines.append(f"| base policy alone | {_ci(base, 'reward')} | {_ci(base, 'success')} | — | — | — | — | — | — |")
    for n, e in results["strategies"].items():
        vb = results["paired_vs_base"].get(n, {})
        auc = " / ".join(f"{e[m]:.2f}" if e.get(m) is not None else "—" for m in ("auc", "auc_state", "auc_success"))
        published = f"{pub[names[n]]} ({PUBLISHED_NAMES[n]})" if pub and n in names else (f"best baseline {pub[1]}" if pub and n == results.get("best_non_oracle") else "—")
        ms = f"{e['plan_ms']:.1f}" if e.get("plan_ms") is not None else "—"
        lines.append(f"| {n} | {_ci(e, 'reward')} | {_ci(e, 'success')} | {_p(vb.get('reward'))} | {_p(vb.get('success'))} | "
                     f"{_p(results['paired_wav_minus'].get(n, {}).get('reward'))} | {auc} | {ms} | {published} |")
    if results.get("best_non_oracle"):
        lines += ["", f"Best non-oracle strategy: {results['best_non_oracle']}; wav ≥ it: {results['wav_beats_best_non_oracle']}."]
    if results.get("seconds_per_episode") is not None:
        lines += ["", f"{results['seconds_per_episode']:.1f} s per episode (mean over runs, planning included)."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bars (95% CI over seeds) of reward and success per world model, the base policy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wav.data.io import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, m in zip(axes, ("reward", "success")):
        strategy_bars(ax, results["strategies"], m)
        base = results.get("base") or {}
        if base.get(m) is not None and np.isfinite(base[m]):
            ax.axhline(base[m], ls="--", color="k", lw=1, label="base policy alone")
            ax.legend(fontsize=7)
        ax.set_title(f"episode {m} ↑")
    fig.suptitle(f"{results['task']}: planning with each strategy's world model, {results['n_seeds']} seeds x {results['episodes']} episodes (95% CI)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def run_all(exp: RobotDownstreamExperiment, tasks: list[str], progress: bool = True) -> dict:
    """`--task all`: `source` holds one acquisition folder per task (<source>/<task>), outputs go to <out>/<task>;
    every task's inputs are checked before any runs."""
    per = {t: replace(exp, task=t, source=str(Path(exp.source) / t), out=str(Path(exp.out) / t)) for t in tasks}
    for e in per.values():
        resolve(e)
    return {t: run(e, progress) for t, e in per.items()}
