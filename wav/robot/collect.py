"""Roll actors (scripted experts, diffusion-policy checkpoints) out in the manipulation envs, in
parallel over processes, into Trajectory lists (wav.data.robot_io)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wav.data.robot_io import Trajectory


@dataclass(frozen=True)
class ActorSpec:
    """What acts: `kind` "expert" or "policy" (then `checkpoint` is a .pt path); picklable for workers."""

    kind: str
    checkpoint: str | None = None
    source: str = "expert"


def _make_actor(spec: ActorSpec, task: str, seed: int):
    if spec.kind == "expert":
        from wav.robot.experts import make_expert

        expert = make_expert(task)
        return expert.reset, lambda env, state: expert.act(env)
    if spec.kind == "policy":
        import torch

        from wav.robot.policy import ChunkActor, DiffusionPolicy

        actor = ChunkActor(DiffusionPolicy.load(spec.checkpoint), torch.Generator().manual_seed(seed))
        return (lambda env: actor.reset()), lambda env, state: actor(state)
    raise ValueError(f"unknown actor kind {spec.kind!r}")


def run_episode(env, reset_actor, act, seed: int, noise_std: float, rng: np.random.Generator, source: str) -> Trajectory:
    """One episode; Gaussian noise (std `noise_std`) is added to every action before clipping."""
    obs, _ = env.reset(seed=seed)
    reset_actor(env)
    state = obs["state"] if env.camera else obs
    states, images, actions, rewards, dones = [state], [obs["image"]] if env.camera else [], [], [], []
    done, info = False, {"success": False}
    while not done:
        a = np.asarray(act(env, state), dtype=np.float64)
        if noise_std > 0:
            a = a + rng.normal(0.0, noise_std, a.shape)
        a = np.clip(a, -1.0, 1.0)
        obs, r, terminated, truncated, info = env.step(a)
        state = obs["state"] if env.camera else obs
        done = terminated or truncated
        states.append(state)
        if env.camera:
            images.append(obs["image"])
        actions.append(a)
        rewards.append(r)
        dones.append(terminated)
    return Trajectory(
        states=np.stack(states).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        rewards=np.asarray(rewards, np.float32),
        dones=np.asarray(dones, bool),
        success=bool(info["success"]),
        source=source,
        seed=seed,
        images=np.stack(images) if env.camera else None,
    )


# One env per (task, camera, horizon) per process, kept across chunks: making a ManiSkill env costs ~9 s
# on 2 cores, as much as simulating a few of its episodes. Every episode starts with reset(seed).
_ENVS: dict[tuple, object] = {}


def _env(task: str, camera: bool, horizon: int | None):
    from wav.envs.manipulation import make_env

    key = (task, camera, horizon)
    if key not in _ENVS:
        _ENVS[key] = make_env(task, camera=camera, horizon=horizon)
    return _ENVS[key]


def close_envs() -> None:
    """Close the envs this process keeps for collection."""
    while _ENVS:
        _ENVS.popitem()[1].close()


def _collect_chunk(task: str, spec: ActorSpec, seeds: list[int], noise_std: float, camera: bool, horizon: int | None) -> list[Trajectory]:
    import torch

    torch.set_num_threads(1)
    env = _env(task, camera, horizon)
    reset_actor, act = _make_actor(spec, task, seeds[0] if seeds else 0)
    rng = np.random.default_rng([seeds[0] if seeds else 0, 7])
    return [run_episode(env, reset_actor, act, s, noise_std, rng, spec.source) for s in seeds]


def collect(task: str, specs: list[tuple[ActorSpec, list[int]]], noise_std: float = 0.0, n_jobs: int = 2, camera: bool = False,
            horizon: int | None = None, progress: bool = True, chunk: int = 5) -> list[Trajectory]:
    """Run every (actor, seeds) pair; work is split into chunks of `chunk` episodes over `n_jobs` processes.
    Results keep the order of `specs` and seeds."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    from wav.envs.manipulation.core import require_simulator

    require_simulator(task)  # fail here with a clear message, not inside a worker
    jobs = [(spec, seeds[i : i + chunk]) for spec, seeds in specs for i in range(0, len(seeds), chunk)]
    total = sum(len(s) for _, s in jobs)
    bar = tqdm(total=total, desc=f"rollout {task}", disable=not progress, mininterval=2)
    out: list[Trajectory] = []
    if n_jobs <= 1:
        try:
            for spec, seeds in jobs:
                out += _collect_chunk(task, spec, seeds, noise_std, camera, horizon)
                bar.update(len(seeds))
        finally:
            close_envs()
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_collect_chunk)(task, spec, seeds, noise_std, camera, horizon) for spec, seeds in jobs
        )
        for (spec, seeds), res in zip(jobs, results):
            out += res
            bar.update(len(seeds))
    bar.close()
    return out
