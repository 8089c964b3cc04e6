"""The data chain of one manipulation task: experts -> diffusion policy (10 checkpoints) -> noisy
rollouts of every checkpoint -> partitions (warm-up labelled set, exploration pool, held-out eval).

Each step reads and writes files in a run directory, so the CLI can run them one at a time:
  experts.hdf5, checkpoints/ckpt_<k>.pt, pool.hdf5 (with partitions as robomimic filter keys),
  config.json (written first), metrics.jsonl (one record per step), summary.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from wav.data.io import atomic_write
from wav.data.robot_io import Trajectory, load_trajectories, save_trajectories
from wav.robot.collect import ActorSpec, collect
from wav.robot.policy import PolicyConfig


@dataclass(frozen=True)
class BuildConfig:
    task: str = "Lift"
    """manipulation task (wav.envs.manipulation.TASKS)"""
    scale: str = "debug"
    """preset the sizes came from (debug | cpu | paper)"""
    expert_episodes: int = 10
    """scripted-expert demonstrations (the policy's training set and part of the warm-up set)"""
    rollouts_per_checkpoint: int = 4
    """noisy episodes per policy checkpoint in the pool"""
    noise_std: float = 0.1
    """Gaussian action noise added in pool rollouts (published: 0.1)"""
    eval_fraction: float = 0.15
    """share of every source's trajectories held out for evaluation"""
    warmup_sizes: tuple[int, ...] = (5, 10)
    """nested warm-up labelled set sizes (published: 200..1000)"""
    best_checkpoints: int = 3
    """checkpoints with the highest success whose rollouts may enter the warm-up set"""
    expert_share: float = 0.25
    """share of expert demos in every warm-up size (published: ~50 demos in a warm-up of 200); the rest are
    noisy rollouts of the best checkpoints, whose actions vary like the pool's"""
    n_jobs: int = 2
    """worker processes for rollouts"""
    seed: int = 0
    """base seed of episodes, training and partitions"""
    camera: bool = False
    """record a 64x64 camera frame per step (obs/image) in the experts' and the pool's files"""
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(train_steps=300, hidden=128))
    """diffusion-policy hyper-parameters"""


PRESETS = {
    # Runs in a few minutes on 2 cores; sizes are too small for a useful world model.
    "debug": BuildConfig(),
    # The default scale on a 2-core machine: 300 trajectories per task instead of ~1,500.
    "cpu": BuildConfig(scale="cpu", expert_episodes=60, rollouts_per_checkpoint=24, warmup_sizes=(25, 50, 75, 100),
                       policy=PolicyConfig(train_steps=4000)),
    # The published sizes (~1,500 pool trajectories, warm-up 200..1000); hours on 2 cores.
    "paper": BuildConfig(scale="paper", expert_episodes=600, rollouts_per_checkpoint=150, best_checkpoints=4,
                         warmup_sizes=(200, 400, 600, 800, 1000), policy=PolicyConfig(train_steps=30000), camera=True),
}


def preset(task: str, scale: str, **overrides) -> BuildConfig:
    if scale not in PRESETS:
        raise ValueError(f"unknown preset {scale!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[scale], task=task, **overrides)


def _env_args(task: str) -> dict:
    from wav.envs.manipulation import make_env
    from wav.envs.manipulation.core import task_spec

    spec = task_spec(task)
    env = make_env(task)
    try:
        layout = env.layout.to_dict()
    finally:
        env.close()
    control = "OSC_POSE" if spec.backend == "robosuite" else "pd_ee_delta_pose"
    return {"task": task, "backend": spec.backend, "sim_id": spec.sim_id, "horizon": spec.horizon, "control": control, "layout": layout}


def _log(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _seeds(base: int, stream: int, n: int) -> list[int]:
    """Disjoint episode seeds per stream (experts = 0, checkpoint k = k + 1)."""
    return [base * 1_000_000 + stream * 10_000 + i for i in range(n)]


def run_experts(task: str, episodes: int, seed: int = 0, n_jobs: int = 2, out: str | Path | None = None,
                camera: bool = False, progress: bool = True) -> tuple[list[Trajectory], float]:
    trajs = collect(task, [(ActorSpec("expert", source="expert"), _seeds(seed, 0, episodes))], n_jobs=n_jobs, camera=camera, progress=progress)
    rate = float(np.mean([t.success for t in trajs])) if trajs else 0.0
    if out is not None:
        save_trajectories(out, trajs, _env_args(task))
    return trajs, rate


def train(experts_path, out_dir, cfg: PolicyConfig, seed: int = 0, successful_only: bool = True, progress: bool = True) -> list[dict]:
    """Train on the (successful) expert demos; writes out_dir/ckpt_<k>.pt for k = 1..checkpoints."""
    import torch

    from wav.robot.policy import train_policy

    trajs, env_args = load_trajectories(experts_path)
    if successful_only:
        trajs = [t for t in trajs if t.success] or trajs
    out_dir = Path(out_dir)
    torch.set_num_threads(1)

    def save(pol, step, index):
        pol.save(out_dir / f"ckpt_{index + 1}.pt", task=env_args.get("task"), step=step, index=index + 1)

    return train_policy([(t.states, t.actions) for t in trajs], cfg, seed, save=save, progress=progress)


def checkpoints(ckpt_dir) -> list[Path]:
    paths = sorted(Path(ckpt_dir).glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise FileNotFoundError(f"{ckpt_dir}: no ckpt_<k>.pt checkpoints (run `wav robot train-policy` first)")
    return paths


def rollout(task: str, ckpt_dir, episodes: int, noise_std: float, seed: int = 0, n_jobs: int = 2, camera: bool = False,
            progress: bool = True) -> list[Trajectory]:
    specs = [(ActorSpec("policy", str(p), source=p.stem.replace("_", "")), _seeds(seed, i + 1, episodes)) for i, p in enumerate(checkpoints(ckpt_dir))]
    return collect(task, specs, noise_std=noise_std, n_jobs=n_jobs, camera=camera, progress=progress)


def partition(trajs: list[Trajectory], warmup_sizes, best_checkpoints: int, eval_fraction: float, seed: int,
              expert_share: float = 0.25) -> dict[str, list[int]]:
    """Published protocol: held-out eval = `eval_fraction` of every source; warm-up = expert demos and noisy
    rollouts of the `best_checkpoints` most successful checkpoints, `expert_share` of each (nested) size being
    experts while both last; exploration pool = the remaining rollouts of the other, imperfect checkpoints.
    Returns filter key -> trajectory indices.

    The mix matters: the published warm-up of 200 holds ~50 noise-free expert demos, so most of its actions
    carry the pool's noise. A warm-up of experts alone (what "experts first" gives at small sizes) has nearly
    constant rotation and gripper actions, and no inverse model trained on it can read those off a noisy
    rollout."""
    if not 0.0 <= expert_share <= 1.0:
        raise ValueError(f"expert_share must be in [0, 1], got {expert_share}")
    rng = np.random.default_rng([seed, 11])
    by_source: dict[str, list[int]] = {}
    for i, t in enumerate(trajs):
        by_source.setdefault(t.source, []).append(i)
    held = []
    for idx in by_source.values():
        idx = list(rng.permutation(idx))
        held += idx[: int(round(eval_fraction * len(idx)))]
    held_set = set(held)
    rate = {s: np.mean([trajs[i].success for i in idx]) for s, idx in by_source.items() if s != "expert"}
    best = sorted(rate, key=lambda s: (-rate[s], s))[:best_checkpoints]
    experts = [i for i in by_source.get("expert", []) if i not in held_set]
    rollouts = [int(i) for i in rng.permutation([i for s in best for i in by_source[s] if i not in held_set])]
    candidates = []
    while experts or rollouts:  # the first n candidates hold round(share * n) experts while both kinds last
        want_expert = sum(1 for i in candidates if trajs[i].source == "expert") < round(expert_share * (len(candidates) + 1))
        candidates.append((experts if (want_expert and experts) or not rollouts else rollouts).pop(0))
    sizes = sorted(int(n) for n in warmup_sizes)
    if sizes and sizes[-1] > len(candidates):
        raise ValueError(f"warm-up size {sizes[-1]} exceeds the {len(candidates)} expert + best-checkpoint trajectories; "
                         "collect more or choose smaller warmup_sizes")
    warm = set(candidates[: sizes[-1]]) if sizes else set()
    masks = {f"warmup_{n}": sorted(int(i) for i in candidates[:n]) for n in sizes}
    masks["explore"] = sorted(int(i) for s, idx in by_source.items() if s != "expert" for i in idx if i not in held_set and i not in warm)
    masks["eval"] = sorted(int(i) for i in held)
    return masks


def build(cfg: BuildConfig, run_dir, progress: bool = True) -> dict:
    """The whole chain for one task; returns (and writes) the summary with success rates and timings."""
    kept = lambda n: n - int(round(cfg.eval_fraction * n))  # noqa: E731  (what partition() leaves after the hold-out)
    available = kept(cfg.expert_episodes) + min(cfg.best_checkpoints, cfg.policy.checkpoints) * kept(cfg.rollouts_per_checkpoint)
    if cfg.warmup_sizes and max(cfg.warmup_sizes) > available:
        raise ValueError(f"warm-up size {max(cfg.warmup_sizes)} exceeds the {available} expert + best-checkpoint trajectories "
                         "this config collects; raise expert_episodes / rollouts_per_checkpoint or lower warmup_sizes")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(asdict(cfg), indent=2)))
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    timings = {}

    t0 = time.time()
    experts, expert_rate = run_experts(cfg.task, cfg.expert_episodes, cfg.seed, cfg.n_jobs, run_dir / "experts.hdf5", camera=cfg.camera,
                                       progress=progress)
    timings["experts_s"] = time.time() - t0
    _log(run_dir, {"step": "experts", "success_rate": expert_rate, "episodes": len(experts), "seconds": timings["experts_s"]})

    t0 = time.time()
    losses = train(run_dir / "experts.hdf5", run_dir / "checkpoints", cfg.policy, cfg.seed, progress=progress)
    timings["train_s"] = time.time() - t0
    _log(run_dir, {"step": "train", "losses": losses, "seconds": timings["train_s"]})

    t0 = time.time()
    pool = rollout(cfg.task, run_dir / "checkpoints", cfg.rollouts_per_checkpoint, cfg.noise_std, cfg.seed, cfg.n_jobs, camera=cfg.camera,
                   progress=progress)
    timings["rollout_s"] = time.time() - t0
    ckpt_rates = {}
    for t in pool:
        ckpt_rates.setdefault(t.source, []).append(t.success)
    ckpt_rates = {k: float(np.mean(v)) for k, v in sorted(ckpt_rates.items(), key=lambda kv: int(kv[0][4:]))}
    _log(run_dir, {"step": "rollout", "success_by_checkpoint": ckpt_rates, "episodes": len(pool), "seconds": timings["rollout_s"]})

    everything = experts + pool
    masks = partition(everything, cfg.warmup_sizes, cfg.best_checkpoints, cfg.eval_fraction, cfg.seed, cfg.expert_share)
    save_trajectories(run_dir / "pool.hdf5", everything, _env_args(cfg.task), masks)
    summary = {
        "task": cfg.task,
        "scale": cfg.scale,
        "expert_success": expert_rate,
        "checkpoint_success": ckpt_rates,
        "trajectories": len(everything),
        "transitions": int(sum(len(t) for t in everything)),
        "partitions": {k: len(v) for k, v in masks.items()},
        "seconds": {**timings, "total_s": sum(timings.values())},
    }
    _log(run_dir, {"step": "partition", "partitions": summary["partitions"]})
    atomic_write(run_dir / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    return summary
