"""Acquisition rounds (REFERENCE §1, §4): the pool protocol of the published figure and online Algorithm 1.

Both loops take their models from factories and their strategy from the registry (wav.acquire), run the
verification cycle through wav.cycle, and append one JSON line per round to `<run_dir>/metrics.jsonl`
after writing the resolved config to `<run_dir>/config.json`. A run dir with a `done` file is complete.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wav.acquire import Candidates, Models, make_strategy, select
from wav.acquire.baselines import true_error
from wav.config import ModelsPreset, TrainConfig, model_preset
from wav.data.io import atomic_write
from wav.metrics import action_following_score, per_action_error, rank_correlation
from wav.runtime import package_versions, torch_generator
from wav.train import train_inverse, train_world_model
from wav.types import Transitions


@dataclass(frozen=True)
class AcquisitionConfig:
    """The pool protocol: seed labels + `rounds` x `budget` acquired from a candidate pool."""

    models: str = "paper"
    """model preset (wav.config.MODEL_PRESETS) for the world model, inverse and subgoal models"""
    rounds: int = 2
    """acquisition rounds R"""
    budget: int = 50
    """labels acquired per round B"""
    k: int | None = None
    """subgoals per state in the verification cycle: None = the generator's modes weighted by p(z | s), else K i.i.d. samples"""
    reduce: str = "min"
    """how WAV turns the scores of the subgoals matched to a candidate's action into one (wav.cycle.CycleResult.action_scores)"""
    score_cap: float | None = 20.0
    """WAV's verification scores saturate here before the reduction (None: no cap); chosen on a development pool"""
    continue_training: bool = True
    """fine-tune the current world model each round (True, as published) or retrain from scratch"""
    round_train: TrainConfig | None = field(default_factory=lambda: TrainConfig(epochs=30, lr=2e-3, batch_size=64, val_fraction=0.0))
    """world-model schedule for the per-round refits on all labels (None: the preset's world_model_train);
    no validation split, so every acquired label is trained on. Chosen on a development test set
    (benchmarks/acquisition.py): as accurate as 40 epochs at batch 32 and lr 1e-3 in about half the time"""
    inverse_round_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, lr=1e-3, batch_size=64, val_fraction=0.0))
    """schedule of the per-round inverse refits, continued from the current inverse model"""
    ensemble_members: int = 5
    """world models in the `ensemble` strategy's ensemble"""
    mc_passes: int = 20
    """MC-dropout passes of the `uncertainty` strategy"""
    progress_ema: float = 0.1
    """learning progress: old <- ema * old + (1 - ema) * new after each round"""
    random_mix: tuple[tuple[str, float], ...] = ()
    """overrides of the published random-mix ratios, e.g. (("uncertainty", 0.0),)"""
    afs_states: int = 200
    """start states of the action following score"""
    update_inverse: bool = True
    """refit the inverse models on all labels after each round (Algorithm 1)"""
    box_toggle: str = "swap"
    """box semantics of the pool, test set and AFS states"""

    @property
    def preset(self) -> ModelsPreset:
        return model_preset(self.models)

    @property
    def refit(self) -> TrainConfig:
        return self.round_train or self.preset.world_model_train


ACQUISITION_PRESETS: dict[str, AcquisitionConfig] = {
    "paper": AcquisitionConfig(),
    "debug": AcquisitionConfig(models="debug", rounds=1, budget=10, ensemble_members=2, mc_passes=3, afs_states=20,
                               round_train=TrainConfig(epochs=2, batch_size=32, val_fraction=0.0)),
}


@dataclass
class PoolData:
    """The data of one pool experiment (numpy Transitions) and the AFS start states (flat features)."""

    seed_set: Transitions
    pool: Transitions
    test: Transitions
    afs_states: np.ndarray
    extra_tests: dict[str, Transitions] = field(default_factory=dict)
    """more test sets evaluated every round (metrics prefixed with the name), e.g. one that excludes the pool"""


@dataclass
class SharedModels:
    """Models trained once per seed and shared by every strategy of that seed."""

    subgoal: Any
    inverse: Any
    dense_inverse: Any
    world_model: Any
    ensemble: Any = None


def _tensors(tr: Transitions) -> Candidates:
    s, sn = tr.features()
    return Candidates(torch.from_numpy(s), torch.from_numpy(tr.actions), torch.from_numpy(sn))


def ema_model(old, new, ema: float):
    """A copy of `new` whose parameters are ema * old + (1 - ema) * new (old None: a copy of new)."""
    out = copy.deepcopy(new)
    if old is not None:
        with torch.no_grad():
            for po, pn, p in zip(old.parameters(), new.parameters(), out.parameters()):
                p.copy_(ema * po + (1 - ema) * pn)
    return out.eval()


def test_metrics(world_model, test: Transitions) -> dict:
    """Prediction error, dynamic accuracy and per-action error of one test set, from one pass."""
    from wav.cycle import distinct_rows, predict_and_loss
    from wav.evaluate import dynamic_accuracy

    s, sn = test.features()
    rows = [torch.from_numpy(np.ascontiguousarray(x)) for x in (s, test.actions, sn)]
    first, where = distinct_rows(*rows)  # a policy test set repeats transitions: each distinct one runs once
    preds, errs = [], []
    with torch.no_grad():
        for i in range(0, len(first), 512):  # small chunks run ~1.5x faster on CPU (cache)
            p, e = predict_and_loss(world_model, *(x[first[i : i + 512]] for x in rows))
            preds.append(p.numpy())
            errs.append(e.numpy())
    err, pred = np.concatenate(errs)[where.numpy()], np.concatenate(preds)[where.numpy()]
    return {"pred_error": float(err.mean()), "dynamic_accuracy": dynamic_accuracy(s, sn, pred), "per_action_error": per_action_error(err, test.actions)}


def evaluate_round(world_model, data: PoolData, box_toggle: str) -> dict:
    """`test_metrics` of the test set (and, prefixed `<name>/`, of every extra test set) and the AFS."""
    out = {**test_metrics(world_model, data.test), "afs": action_following_score(world_model, data.afs_states, box_toggle)}
    for name, test in data.extra_tests.items():
        out.update({f"{name}/{k}": v for k, v in test_metrics(world_model, test).items()})
    return out


def shared_parts(needs: set[str]) -> list[str]:
    """Which seed-set models a set of strategy needs asks for (each is one independent fit)."""
    return ["world_model"] + [n for n in ("inverse", "dense_inverse", "ensemble") if n in needs]


def train_shared_part(seed_set: Transitions, cfg: AcquisitionConfig, seed: int, part: str):
    """One seed-set model of one seed: `world_model`, `inverse` (sparse), `dense_inverse` or `ensemble`."""
    p = cfg.preset
    if part == "world_model":
        return train_world_model(seed_set, p.world_model, p.world_model_train, seed)[0]
    if part == "inverse":
        return train_inverse(seed_set, p.inverse, p.inverse_train, seed)[0]
    if part == "dense_inverse":
        return train_inverse(seed_set, replace(p.inverse, dense=True), p.inverse_train, seed)[0]
    if part == "ensemble":
        return train_world_model(seed_set, replace(p.world_model, members=cfg.ensemble_members), p.world_model_train, seed)[0]
    raise ValueError(f"unknown shared model {part!r}; known: world_model, inverse, dense_inverse, ensemble")


def frozen_subgoals(subgoal):
    """The cycle's view of the generator (`FrozenSubgoals`): its weighted modes (memoised, as the pool's
    states recur every round) or K i.i.d. draws from p(s'|s), never the distinct-code mode (for coverage)."""
    from wav.models.subgoal import FrozenSubgoals, MixtureSubgoalGenerator

    return FrozenSubgoals(subgoal) if isinstance(subgoal, MixtureSubgoalGenerator) else subgoal


def shared_models(subgoal, parts: dict[str, Any]) -> SharedModels:
    """SharedModels from the fits of `train_shared_part` (absent parts are None)."""
    return SharedModels(frozen_subgoals(subgoal), parts.get("inverse"), parts.get("dense_inverse"), parts["world_model"], parts.get("ensemble"))


def train_shared(data: PoolData, subgoal, cfg: AcquisitionConfig, seed: int, needs: set[str]) -> SharedModels:
    """The seed-set models of one seed: world model, sparse inverse (and dense inverse, ensemble if needed)."""
    return shared_models(subgoal, {part: train_shared_part(data.seed_set, cfg, seed, part) for part in shared_parts(needs)})


def pool_oracle(world_model, pool: Transitions) -> np.ndarray:
    """True error of `world_model` on every pool candidate (N,): the oracle scores behind the rank correlations."""
    return true_error(_tensors(pool), Models(world_model=world_model), torch.Generator()).double().numpy()


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str)))


def run_pool(strategy_name: str, seed: int, data: PoolData, shared: SharedModels, cfg: AcquisitionConfig, run_dir: Path, extra_config: dict | None = None,
             start: dict | None = None, first_oracle: np.ndarray | None = None) -> list[dict]:
    """One (strategy, seed) run of the pool protocol; returns the metric rows it wrote.

    `start` is `evaluate_round` of the shared seed-set world model and `first_oracle` its true error on
    every pool candidate (`pool_oracle`), the same for every strategy of a seed (computed here when not
    given)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    mix = dict(cfg.random_mix)
    strategy = make_strategy(strategy_name, mix.get(strategy_name))
    _write_json(run_dir / "config.json", {"protocol": "pool", "strategy": strategy_name, "seed": seed, "random_mix": strategy.random_mix,
                                          "acquisition": asdict(cfg), "models": asdict(cfg.preset), "versions": package_versions(), **(extra_config or {})})
    metrics_path, timing_path = run_dir / "metrics.jsonl", run_dir / "timing.jsonl"
    metrics_path.unlink(missing_ok=True)
    timing_path.unlink(missing_ok=True)
    # one generator stream per (seed, strategy) so strategies do not perturb each other
    stream = np.random.SeedSequence([seed, sum(map(ord, strategy_name))])
    rng = np.random.default_rng(stream)
    gen = torch_generator(int(stream.generate_state(1)[0]))
    wm = copy.deepcopy(shared.world_model).eval()
    inv, dense, ens = shared.inverse, shared.dense_inverse, shared.ensemble
    previous = None
    labelled = data.seed_set
    cand = _tensors(data.pool)
    available = np.ones(len(data.pool), bool)
    p = cfg.preset
    rows = []

    def emit(row):
        rows.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    emit({"round": 0, "labels": len(labelled), **(start or evaluate_round(wm, data, cfg.box_toggle))})
    for r in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        models = Models(world_model=wm, subgoal=shared.subgoal, inverse=inv, dense_inverse=dense, ensemble=ens,
                        previous_world_model=previous, round=r, k=cfg.k, mc_passes=cfg.mc_passes, reduce=cfg.reduce, score_cap=cfg.score_cap)
        idx = np.flatnonzero(available)
        sub = Candidates(cand.states[idx], cand.actions[idx], cand.next_states[idx])
        scores = strategy.score(sub, models, gen).double().numpy()
        t_score = time.perf_counter() - t0
        if strategy_name == "oracle":
            oracle = scores
        elif r == 1 and first_oracle is not None:  # round 1: the shared seed-set model, every candidate available
            oracle = np.asarray(first_oracle, np.float64)[idx]
        else:
            oracle = true_error(sub, models, gen).double().numpy()
        corr = rank_correlation(scores, oracle)
        chosen = idx[select(scores, cfg.budget, strategy.random_mix, rng)]
        available[chosen] = False
        picked = data.pool.subset(chosen)
        labelled = Transitions.concat([labelled, picked])
        t1 = time.perf_counter()
        if "previous" in strategy.needs:
            previous = ema_model(previous, wm, cfg.progress_ema)
        base = wm if cfg.continue_training else None
        wm, hist = train_world_model(labelled, p.world_model, cfg.refit, seed + r, copy.deepcopy(base) if base is not None else None)
        if ens is not None:
            ens, _ = train_world_model(labelled, ens.cfg, cfg.refit, seed + r, ens if cfg.continue_training else None)
        if cfg.update_inverse and strategy_name.startswith("wav"):
            if strategy_name == "wav-dense":
                dense, _ = train_inverse(labelled, dense.cfg, cfg.inverse_round_train, seed + r, copy.deepcopy(dense))
            else:
                inv, _ = train_inverse(labelled, inv.cfg, cfg.inverse_round_train, seed + r, copy.deepcopy(inv))
        t_train = time.perf_counter() - t1
        t2 = time.perf_counter()
        ev = evaluate_round(wm, data, cfg.box_toggle)
        emit({
            "round": r, "labels": len(labelled), **ev, **corr,
            "oracle_error_of_chosen": float(oracle[np.searchsorted(idx, chosen)].mean()),
            "chosen_actions": np.bincount(picked.actions, minlength=7).tolist(),
        })
        with open(timing_path, "a") as f:  # wall times vary run to run; metrics.jsonl stays reproducible
            f.write(json.dumps({"round": r, "score": t_score, "train": t_train, "eval": time.perf_counter() - t2}) + "\n")
    (run_dir / "done").write_text("ok\n")
    return rows


# --------------------------------------------------------------------------- online (Algorithm 1)


@dataclass(frozen=True)
class OnlineConfig:
    """Algorithm 1: the agent acts in the env; every `update_every` steps the models are refit on all data."""

    models: str = "paper"
    """model preset (wav.config.MODEL_PRESETS)"""
    steps: int = 200
    """environment steps (= acquired labels) after the seed set"""
    update_every: int = 25
    """refit the world model and the inverse model every U steps, and evaluate"""
    round_train: TrainConfig | None = field(default_factory=lambda: TrainConfig(epochs=30, lr=2e-3, batch_size=64, val_fraction=0.0))
    """world-model schedule of each refit (as in the pool protocol)"""
    inverse_round_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, lr=1e-3, batch_size=64, val_fraction=0.0))
    """schedule of each inverse refit, continued from the current inverse model"""
    k: int | None = None
    """subgoals per step: None = the generator's weighted modes, else K i.i.d. samples"""
    reduce: str = "min"
    """how WAV scores an action from the subgoals it reaches (wav.cycle.CycleResult.action_scores)"""
    score_cap: float | None = 20.0
    """WAV's verification scores saturate here before the reduction (None: no cap)"""
    env_id: str = "WAV/MultiTask-v0"
    """environment the agent explores"""
    episode_steps: int = 50
    """reset the env after this many steps (or when an episode ends)"""
    ensemble_members: int = 5
    """world models of the `ensemble` strategy"""
    mc_passes: int = 20
    """MC-dropout passes of the `uncertainty` strategy"""
    random_mix: tuple[tuple[str, float], ...] = ()
    """overrides of the published random-mix ratios"""
    afs_states: int = 200
    """start states of the action following score"""
    box_toggle: str = "swap"
    """box semantics of the env"""

    @property
    def preset(self) -> ModelsPreset:
        return model_preset(self.models)


ONLINE_PRESETS: dict[str, OnlineConfig] = {
    "paper": OnlineConfig(),
    "debug": OnlineConfig(models="debug", steps=20, update_every=10, ensemble_members=2, mc_passes=3, afs_states=20,
                          round_train=TrainConfig(epochs=2, batch_size=32, val_fraction=0.0)),
}


def choose_action(strategy, state, models: Models, env_state, rng: np.random.Generator, gen: torch.Generator, box_toggle: str = "swap", n_actions: int = 7) -> int:
    """One step of action choice at one state (1, D).

    `wav`/`wav-dense` follow Algorithm 1 (subgoals -> inferred actions -> predictions -> the most
    surprising action: argmax over K i.i.d. samples, or over actions of the expected score of the
    generator's weighted modes when `models.k` is None); every other strategy scores each of the n actions with its registry score function (the
    privileged ones on the true outcomes from `env_state`), with its random-mix share of uniform picks.
    """
    from wav.cycle import verify
    from wav.envs.minigrid.dynamics import step_batch
    from wav.envs.minigrid.encoding import to_features

    if strategy.random_mix and rng.random() < strategy.random_mix:
        return int(rng.integers(n_actions))
    if strategy.name in ("wav", "wav-dense"):
        inv = models.dense_inverse if strategy.name == "wav-dense" else models.inverse
        res = verify(state, models.subgoal, inv, models.world_model, models.k, gen)
        if models.k is not None:  # Algorithm 1 as written: the inferred action of the most surprising of K samples
            best = res.scores[0]
            top = torch.nonzero(best == best.max()).flatten()  # ties (e.g. all zero) broken at random
            return int(res.actions[0, top[int(rng.integers(len(top)))]])
        # weighted modes: the action whose proposed outcomes are the most surprising (the strategy's reduction)
        acts = torch.arange(n_actions)
        best = torch.stack([res.action_scores(a.expand(1), models.reduce, models.score_cap)[0] for a in acts]).double().numpy()
        top = np.flatnonzero(best == best.max())
        return int(top[rng.integers(len(top))])
    grid, carried, under, contents = env_state
    acts = np.arange(n_actions)
    ng, nc = step_batch(np.repeat(grid[None], n_actions, 0), np.repeat(carried[None], n_actions, 0), acts,
                        box_toggle, under=np.repeat(under[None], n_actions, 0), box_contents=np.repeat(contents[None], n_actions, 0))
    cand = Candidates(state.repeat(n_actions, 1), torch.from_numpy(acts), torch.from_numpy(to_features(ng, nc)))
    scores = strategy.score(cand, models, gen).double().numpy()
    top = np.flatnonzero(scores == scores.max())
    return int(top[rng.integers(len(top))])


def _hidden_state(env) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encoded state plus the facts the encoding hides (cell under the agent, contents of the front box)."""
    from wav.envs.minigrid.encoding import EMPTY_CARRIED

    grid, carried = env.encode_state()
    here = env.grid.get(*env.agent_pos)
    under = np.array((1, 0, 0) if here is None else here.encode())
    fwd = env.grid.get(*env.front_pos)
    contents = np.array(EMPTY_CARRIED)
    if fwd is not None and fwd.type == "box" and fwd.contains is not None:
        contents = np.array(fwd.contains.encode()[1::-1])
    return grid, carried, under, contents


def run_online(strategy_name: str, seed: int, data: PoolData, shared: SharedModels, cfg: OnlineConfig, run_dir: Path, extra_config: dict | None = None) -> list[dict]:
    """One (strategy, seed) run of Algorithm 1 at an env-step budget; one metrics row per refit."""
    import gymnasium as gym

    import wav.envs  # noqa: F401
    from wav.envs.minigrid.encoding import to_features

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = make_strategy(strategy_name, dict(cfg.random_mix).get(strategy_name))
    _write_json(run_dir / "config.json", {"protocol": "online", "strategy": strategy_name, "seed": seed, "random_mix": strategy.random_mix,
                                          "online": asdict(cfg), "models": asdict(cfg.preset), "versions": package_versions(), **(extra_config or {})})
    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    stream = np.random.SeedSequence([seed, sum(map(ord, strategy_name)), 1])
    rng = np.random.default_rng(stream)
    gen = torch_generator(int(stream.generate_state(1)[0]))
    p = cfg.preset
    wm = copy.deepcopy(shared.world_model).eval()
    inv, dense, ens = shared.inverse, shared.dense_inverse, shared.ensemble
    env = gym.make(cfg.env_id, box_toggle=cfg.box_toggle).unwrapped
    episode = 0
    obs, _ = env.reset(seed=int(stream.generate_state(2)[1]))
    ep_steps = 0
    new = {k: [] for k in ("states", "carried", "actions", "next_states", "next_carried")}
    rows = []

    def emit(row):
        rows.append(row)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    emit({"steps": 0, "labels": len(data.seed_set), **evaluate_round(wm, data, cfg.box_toggle)})
    for t in range(1, cfg.steps + 1):
        hidden = _hidden_state(env)
        state = torch.from_numpy(to_features(hidden[0][None], hidden[1][None]))
        models = Models(world_model=wm, subgoal=shared.subgoal, inverse=inv, dense_inverse=dense, ensemble=ens, k=cfg.k, mc_passes=cfg.mc_passes, reduce=cfg.reduce, score_cap=cfg.score_cap)
        a = choose_action(strategy, state, models, hidden, rng, gen, cfg.box_toggle)
        obs, _, term, trunc, _ = env.step(a)
        for key, v in zip(new, (hidden[0], hidden[1], a, obs["grid"], obs["carried"])):
            new[key].append(v)
        ep_steps += 1
        if term or trunc or ep_steps >= cfg.episode_steps:
            episode += 1
            obs, _ = env.reset(seed=int(np.random.SeedSequence([seed, episode]).generate_state(1)[0]))
            ep_steps = 0
        if t % cfg.update_every == 0 or t == cfg.steps:
            acquired = Transitions.from_arrays(*(np.stack(new[k]) for k in new))
            labelled = Transitions.concat([data.seed_set, acquired])
            refit = cfg.round_train or p.world_model_train
            wm, _ = train_world_model(labelled, p.world_model, refit, seed + t, copy.deepcopy(wm))
            if strategy_name == "wav-dense":
                dense, _ = train_inverse(labelled, dense.cfg, cfg.inverse_round_train, seed + t, copy.deepcopy(dense))
            elif strategy_name == "wav":
                inv, _ = train_inverse(labelled, inv.cfg, cfg.inverse_round_train, seed + t, copy.deepcopy(inv))
            if ens is not None and "ensemble" in strategy.needs:
                ens, _ = train_world_model(labelled, ens.cfg, refit, seed + t, ens)
            emit({"steps": t, "labels": len(labelled), **evaluate_round(wm, data, cfg.box_toggle),
                  "acquired_actions": np.bincount(acquired.actions, minlength=7).tolist()})
    (run_dir / "done").write_text("ok\n")
    return rows
