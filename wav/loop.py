"""Acquisition rounds (REFERENCE §1, §4): the pool protocol of the published figure and online Algorithm 1.

Both loops take a domain (wav.domains: its data, models, metrics and env) and a strategy from the registry
(wav.acquire), run the verification cycle through wav.cycle, and append one JSON line per round to
`<run_dir>/metrics.jsonl` after writing the resolved config to `<run_dir>/config.json`. A run dir with a
`done` file is complete. Nothing here knows which world it runs in.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wav.acquire import Models, Strategy, make_strategy, select
from wav.acquire.baselines import true_error
from wav.config import OnlineConfig, PoolConfig, RoundConfig
from wav.cycle import Discrete, tie_broken_argmax
from wav.data.io import atomic_write
from wav.domains.base import Domain, PoolData
from wav.metrics import rank_correlation
from wav.runtime import package_versions, torch_generator
from wav.train import MEMBER_SEED_STRIDE
from wav.types import TransitionBatch


@dataclass
class SharedModels:
    """Models trained once per seed and shared by every strategy of that seed."""

    subgoal: Any
    inverse: Any
    dense_inverse: Any
    world_model: Any
    ensemble: Any = None


def ema_model(old, new, ema: float):
    """A copy of `new` whose parameters are ema * old + (1 - ema) * new (old None: a copy of new)."""
    out = copy.deepcopy(new)
    if old is not None:
        with torch.no_grad():
            for po, pn, p in zip(old.parameters(), new.parameters(), out.parameters()):
                p.copy_(ema * po + (1 - ema) * pn)
    return out.eval()


def shared_parts(strategies: list[Strategy]) -> list[str]:
    """Which seed-set models a set of strategies asks for (each is one independent fit)."""
    used = {p for s in strategies for p in s.parts}
    return ["world_model"] + [p for p in ("inverse", "dense_inverse", "ensemble") if p in used]


def train_shared_part(domain: Domain, seed_set, round_cfg: RoundConfig, seed: int, part: str):
    """One seed-set model of one seed: `world_model`, `inverse` (sparse), `dense_inverse` or `ensemble`."""
    return domain.fit(part, seed_set, seed, members=round_cfg.ensemble_members if part == "ensemble" else 1)


def shared_models(subgoal, parts: dict[str, Any]) -> SharedModels:
    """SharedModels from the fits of `train_shared_part` (absent parts are None)."""
    return SharedModels(subgoal, parts.get("inverse"), parts.get("dense_inverse"), parts["world_model"], parts.get("ensemble"))


def pool_oracle(domain: Domain, world_model, pool) -> np.ndarray:
    """True error of `world_model` on every pool candidate (N,): the oracle scores behind the rank correlations."""
    return true_error(domain.batch(pool), Models(world_model=world_model)).double().numpy()


PROBE_STATES = 512
"""states in the probe rows of a medoid refit (each under every action of a discrete space)"""


def probe_rows(cand: TransitionBatch, space, rng: np.random.Generator, n: int = PROBE_STATES) -> TransitionBatch:
    """Unlabelled (state, action) rows on which the fits of a medoid refit are compared: n states drawn from
    `cand`, each under every action of a discrete space (a continuous one keeps the rows' own actions).
    Next states are the rows' own and are never read."""
    pick = torch.from_numpy(np.sort(rng.choice(len(cand), min(n, len(cand)), replace=False)))
    rows = cand.subset(pick)
    if not isinstance(space, Discrete):
        return rows
    k = len(rows)
    acts = space.all().to(rows.actions.dtype).repeat_interleave(k)
    return TransitionBatch(rows.states.repeat(space.n, 1), acts, rows.next_states.repeat(space.n, 1))


def medoid_fit(fit: Callable[[int], Any], n: int, seed: int, probe: TransitionBatch) -> tuple[Any, int]:
    """The medoid of n fits `fit(seed + MEMBER_SEED_STRIDE * j)`: the member i whose predictions on the probe
    rows are closest to the others', sum over j of the mean `loss` of i's prediction under j and of j's under
    i (the world model's own prediction error, so any domain's metric). Returns (model, its index j)."""
    if n < 1:
        raise ValueError(f"a medoid refit needs n >= 1 fits, got {n}")
    models = [fit(seed + MEMBER_SEED_STRIDE * j) for j in range(n)]
    if n == 1:
        return models[0], 0
    d = np.zeros((n, n))
    with torch.no_grad():
        preds = [m.predict(probe.states, probe.actions) for m in models]
        for i, m in enumerate(models):
            for j in range(n):
                if i != j:
                    d[i, j] = float(m.loss(probe.states, probe.actions, preds[j]).mean())
    k = int(np.argmin((d + d.T).sum(1)))  # ties: the earliest member
    return models[k], k


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str)))


class _Run:
    """The state one (strategy, seed) run carries from round to round: its models, its labels, its records."""

    def __init__(self, domain: Domain, strategy: Strategy, seed: int, shared: SharedModels, round_cfg: RoundConfig, labelled, run_dir: Path, stream_key: list[int]):
        self.domain, self.strategy, self.seed, self.cfg, self.labelled = domain, strategy, seed, round_cfg, labelled
        # one generator stream per (seed, strategy) so strategies do not perturb each other
        stream = np.random.SeedSequence(stream_key)
        self.stream = stream
        self.rng = np.random.default_rng(stream)
        self.gen = torch_generator(int(stream.generate_state(1)[0]))
        self.models = Models(world_model=copy.deepcopy(shared.world_model).eval(), space=domain.space, subgoal=shared.subgoal, inverse=shared.inverse,
                             dense_inverse=shared.dense_inverse, ensemble=shared.ensemble)
        self.metrics_path = Path(run_dir) / "metrics.jsonl"
        self.metrics_path.unlink(missing_ok=True)
        self.rows: list[dict] = []
        self.probe: TransitionBatch | None = None
        """unlabelled rows of a medoid refit (None: the labelled set's states under every action)"""

    def emit(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    def refit(self, seed: int, refit_ensemble: bool = True, refit_inverse: bool = True) -> None:
        """Refit the world model (and the strategy's inverse model, and an ensemble) on all labels. Each fit draws
        from its own seeded stream, so leaving out the ensemble or the inverse model (after the last round,
        where nothing scores again) leaves the world model bit for bit the same."""
        m, cfg, d = self.models, self.cfg, self.domain
        base = m.world_model if cfg.continue_training else None

        def one(s: int):
            return d.fit("world_model", self.labelled, s, cfg.refit, copy.deepcopy(base) if base is not None else None)

        if cfg.refit_medoid > 1:
            probe = self.probe
            if probe is None:
                probe = probe_rows(d.batch(self.labelled), d.space, np.random.default_rng([seed, 7]))
            m.world_model, _ = medoid_fit(one, cfg.refit_medoid, seed, probe)
        else:
            m.world_model = one(seed)
        if m.ensemble is not None and refit_ensemble:
            ens = copy.deepcopy(m.ensemble) if cfg.continue_training else None  # never train the shared seed-set ensemble in place
            m.ensemble = d.fit("ensemble", self.labelled, seed, cfg.refit, ens, members=cfg.ensemble_members)
        s = self.strategy
        if refit_inverse and cfg.update_inverse and s.inverse and s.refits_inverse:
            setattr(m, s.inverse, d.fit(s.inverse, self.labelled, seed, cfg.inverse_refit, copy.deepcopy(getattr(m, s.inverse))))


def _start(strategy_name: str, seed: int, run_dir: Path, round_cfg: RoundConfig, record: dict) -> Strategy:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    strategy = make_strategy(strategy_name, dict(round_cfg.random_mix).get(strategy_name))
    _write_json(Path(run_dir) / "config.json", {"strategy": strategy_name, "seed": seed, "random_mix": strategy.random_mix,
                                                "round": asdict(round_cfg), "versions": package_versions(), **record})
    return strategy


def run_pool(domain: Domain, strategy_name: str, seed: int, data: PoolData, shared: SharedModels, pool_cfg: PoolConfig, round_cfg: RoundConfig,
             run_dir: Path, extra_config: dict | None = None, start: dict | None = None, first_oracle: np.ndarray | None = None,
             keep: Callable[[Models], None] | None = None) -> list[dict]:
    """One (strategy, seed) run of the pool protocol; returns the metric rows it wrote.

    `start` is `domain.evaluate` of the shared seed-set world model and `first_oracle` its true error on
    every pool candidate (`pool_oracle`), the same for every strategy of a seed (computed here when not
    given). `keep(models)` is called with the final models before the run is marked done (to save them)."""
    strategy = _start(strategy_name, seed, run_dir, round_cfg, {"protocol": "pool", "pool": asdict(pool_cfg), "domain": asdict(domain), **(extra_config or {})})
    timing_path = Path(run_dir) / "timing.jsonl"
    timing_path.unlink(missing_ok=True)
    run = _Run(domain, strategy, seed, shared, round_cfg, data.seed_set, run_dir, [seed, sum(map(ord, strategy_name))])
    cand = domain.batch(data.pool)
    available = np.ones(len(cand), bool)
    if round_cfg.refit_medoid > 1:
        run.probe = probe_rows(cand, domain.space, np.random.default_rng([seed, 7]))
    run.emit({"round": 0, "labels": len(run.labelled), **(start or domain.evaluate(run.models.world_model, data))})
    for r in range(1, pool_cfg.rounds + 1):
        t0 = time.perf_counter()
        idx = np.flatnonzero(available)
        sub = cand.subset(torch.from_numpy(idx))
        scores = strategy.score(sub, run.models, round_cfg.scoring, run.gen).double().numpy()
        t_score = time.perf_counter() - t0
        if strategy.oracle:
            oracle = scores
        elif r == 1 and first_oracle is not None:  # round 1: the shared seed-set model, every candidate available
            oracle = np.asarray(first_oracle, np.float64)[idx]
        else:
            oracle = true_error(sub, run.models).double().numpy()
        corr = rank_correlation(scores, oracle)
        chosen = idx[select(scores, pool_cfg.budget, strategy.random_mix, run.rng)]
        available[chosen] = False
        picked = domain.subset(data.pool, chosen)
        run.labelled = domain.concat([run.labelled, picked])
        t1 = time.perf_counter()
        if strategy.progress:
            run.models.previous_world_model = ema_model(run.models.previous_world_model, run.models.world_model, round_cfg.progress_ema)
        last = r == pool_cfg.rounds  # only the evaluated world model is used after the last round: no scorer is refit
        run.refit(seed + r, refit_ensemble=not last, refit_inverse=not last)
        t_train = time.perf_counter() - t1
        t2 = time.perf_counter()
        run.emit({"round": r, "labels": len(run.labelled), **domain.evaluate(run.models.world_model, data), **corr,
                  "oracle_error_of_chosen": float(oracle[np.searchsorted(idx, chosen)].mean()),
                  "chosen_actions": domain.space.counts(domain.batch(picked).actions.numpy()),
                  "chosen": [int(i) for i in chosen]})  # pool indices of the labelled batch, in pick order
        with open(timing_path, "a") as f:  # wall times vary run to run; metrics.jsonl stays reproducible
            f.write(json.dumps({"round": r, "score": t_score, "train": t_train, "eval": time.perf_counter() - t2}) + "\n")
    if keep is not None:
        keep(run.models)
    (Path(run_dir) / "done").write_text("ok\n")
    return run.rows


# --------------------------------------------------------------------------- online (Algorithm 1)


CANDIDATES = 16
"""uniform candidate actions a score-based strategy compares at a state of a continuous action space"""


def act(strategy: Strategy, state, models: Models, round_cfg: RoundConfig, outcomes, rng: np.random.Generator, gen: torch.Generator):
    """One step of action choice at one state (1, D): the strategy's random-mix share of uniform picks,
    else its `act` (WAV: Algorithm 1 through the cycle), else its score of every candidate action on that
    action's outcome (`outcomes`), ties broken at random. The candidates are every action of a discrete
    space, or `scoring.k` (default CANDIDATES) uniform draws of a continuous one."""
    space = models.space
    if strategy.random_mix and rng.random() < strategy.random_mix:
        return int(rng.integers(space.n)) if isinstance(space, Discrete) else space.sample(1, gen)[0]
    if strategy.act is not None:
        return strategy.act(strategy, state, models, round_cfg.scoring, outcomes, rng, gen)
    candidates = space.all() if isinstance(space, Discrete) else space.sample(round_cfg.scoring.k or CANDIDATES, gen)
    scores = strategy.score(outcomes(candidates), models, round_cfg.scoring, gen).double().numpy()
    best = candidates[tie_broken_argmax(scores, rng)]
    return int(best) if isinstance(space, Discrete) else best


def run_online(domain: Domain, strategy_name: str, seed: int, data: PoolData, shared: SharedModels, online_cfg: OnlineConfig, round_cfg: RoundConfig,
               run_dir: Path, extra_config: dict | None = None) -> list[dict]:
    """One (strategy, seed) run of Algorithm 1 at an env-step budget; one metrics row per refit."""
    strategy = _start(strategy_name, seed, run_dir, round_cfg, {"protocol": "online", "online": asdict(online_cfg), "domain": asdict(domain), **(extra_config or {})})
    run = _Run(domain, strategy, seed, shared, round_cfg, data.seed_set, run_dir, [seed, sum(map(ord, strategy_name)), 1])
    env = domain.make_env(int(run.stream.generate_state(2)[1]))
    episode, ep_steps, records = 0, 0, []
    run.emit({"steps": 0, "labels": len(data.seed_set), **domain.evaluate(run.models.world_model, data)})
    for t in range(1, online_cfg.steps + 1):
        state, outcomes = domain.observe(env)
        a = act(strategy, state, run.models, round_cfg, outcomes, run.rng, run.gen)
        record, ended = domain.step(env, a)
        records.append(record)
        ep_steps += 1
        if ended or ep_steps >= online_cfg.episode_steps:
            episode += 1
            domain.reset(env, int(np.random.SeedSequence([seed, episode]).generate_state(1)[0]))
            ep_steps = 0
        if t % online_cfg.update_every == 0 or t == online_cfg.steps:
            acquired = domain.transitions(records)
            run.labelled = domain.concat([data.seed_set, acquired])
            run.refit(seed + t, refit_ensemble=strategy.ensemble)
            run.emit({"steps": t, "labels": len(run.labelled), **domain.evaluate(run.models.world_model, data),
                      "acquired_actions": domain.space.counts(domain.batch(acquired).actions.numpy())})
    if hasattr(domain, "close"):  # a simulator holds native resources
        domain.close(env)
    (Path(run_dir) / "done").write_text("ok\n")
    return run.rows
