"""The robot acquisition experiment (REFERENCE §6, issue 13 item 5): the pool protocol on one manipulation task,
every strategy x seed, through the shared loop (`wav.loop.run_pool`) and the manipulation domain.

Data: one pool file (`wav robot build`) with the partitions warmup_N (labelled seed set), explore (the
candidate trajectories) and eval (the test set). Per seed: the RSSM and whatever seed-set models the
strategies need are fit on warmup_N once; then each strategy runs R rounds (score the explore pool, label
the top B trajectories, continue training the RSSM on all labels) and is evaluated after each round by the
32-step open-loop error on eval. The work goes to parallel workers in two waves (`waves`): the seeds' RSSM
fits, then one job per (strategy, seed). `run()` writes `<out>/runs/<strategy>/seed<k>/{config.json, metrics.jsonl}`;
`report()` reads only those records and writes `results.json`, `table.md` and `figure.png`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.config import PoolConfig, RoundConfig, ScoringConfig, TrainConfig, preset as lookup
from wav.domains.base import PoolData
from wav.domains.manipulation import DOMAIN_PRESETS, GUARD_SECONDS, ManipulationDomain, TrajectorySet
from wav.experiments.acquisition_report import _fmt
from wav.experiments.common import check_resume, connect_ray, file_sha1, is_done, peak_rss_mb, read_metrics, records, run_jobs, sample_efficiency, strategy_bars, unfinished_by_seed, wave_plan, write_json, write_report
from wav.stats import RANGES, mean_ci, metric_ci, paired_difference

STRATEGIES = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")
"""the paper's robot comparison; `ensemble` is its "Uncertainty" (disagreement of an RSSM ensemble)"""
METRICS = ("pred_error", "spearman", "kendall")
PUBLISHED_NAMES = {"oracle": "Oracle", "wav": "WAV", "wav-dense": "Vanilla IDM", "ensemble": "Uncertainty", "progress": "Progress", "random": "RND"}
PUBLISHED = {  # REFERENCE §6: world-model error at 200 warm-up trajectories (image MSE scale; not our units)
    "Can": (16.0, 18.4, 20.6, 23.3, 22.6, 26.6), "Lift": (14.3, 16.6, 18.5, 20.9, 20.2, 24.0), "Square": (20.0, 26.3, 30.3, 33.3, 36.1, 40.2),
    "PokeCube": (21.1, 22.5, 23.6, 25.9, 27.3, 30.5), "PullCube": (16.2, 17.1, 18.1, 20.0, 21.2, 24.4), "LiftPeg": (15.8, 16.7, 17.8, 19.8, 20.9, 23.6),
}
PUBLISHED_SPEARMAN = {"Can": (0.82, 0.30, 0.53), "Lift": (0.77, 0.46, 0.61), "Square": (0.89, 0.21, 0.46), "PokeCube": (0.80, 0.53, 0.66),
                      "PullCube": (0.85, 0.16, 0.41), "LiftPeg": (0.73, 0.39, 0.53)}  # WAV / Uncertainty / Progress

# What a round does (the paper's "200 epochs" per round, scaled by preset); the RSSM refit continues the model.
ROUND_PRESETS: dict[str, RoundConfig] = {
    "debug": RoundConfig(scoring=ScoringConfig(k=None, mc_passes=1), ensemble_members=2,
                         refit=TrainConfig(epochs=20, lr=1e-3, batch_size=16, val_fraction=0.0, max_seconds=GUARD_SECONDS),
                         inverse_refit=TrainConfig(epochs=10, lr=1e-3, batch_size=128, val_fraction=0.0, max_seconds=GUARD_SECONDS)),
    # cpu: sized so that one seed's six strategies take ~10 minutes on one idle core (RSSM update ~45 ms,
    # 3-member ensemble ~100 ms at batch 16 x 32)
    "cpu": RoundConfig(scoring=ScoringConfig(k=None, mc_passes=1), ensemble_members=3,
                       refit=TrainConfig(epochs=60, lr=3e-4, batch_size=16, val_fraction=0.0, max_seconds=GUARD_SECONDS),
                       inverse_refit=TrainConfig(epochs=20, lr=3e-4, batch_size=128, val_fraction=0.0, max_seconds=GUARD_SECONDS)),
    "paper": RoundConfig(scoring=ScoringConfig(k=None, mc_passes=1), ensemble_members=5,
                         refit=TrainConfig(epochs=200, lr=1e-4, batch_size=16, val_fraction=0.0, max_seconds=36000),
                         inverse_refit=TrainConfig(epochs=50, lr=3e-4, batch_size=128, val_fraction=0.0, max_seconds=36000)),
}
ROUNDS = 2


@dataclass(frozen=True)
class RobotAcquisitionExperiment:
    """Which task, data, strategies and seeds run, and how."""

    task: str = "PullCube"
    """manipulation task (checked against the pool file's env_args)"""
    data: str = "runs/robot-PullCube/pool.hdf5"
    """the pool file (`wav robot build`): partitions warmup_<N>, explore, eval"""
    warmup: int = 50
    """warm-up (labelled seed set) size N: the partition warmup_<N>"""
    out: str = "runs/robot-acquisition"
    """output folder (run dirs, results)"""
    seeds: tuple[int, ...] = tuple(range(5))
    strategies: tuple[str, ...] = STRATEGIES
    preset: str = "cpu"
    """model sizes and schedules: debug | cpu | paper"""
    rounds: int = ROUNDS
    """acquisition rounds R"""
    budget: int | None = None
    """trajectories acquired per round B (default: 25% of the warm-up size, at least 1)"""
    backend: str = "local"
    jobs: int = 2
    """parallel seed jobs (local backend)"""
    ray_address: str | None = None
    force: bool = False
    """redo finished runs whose recorded settings differ (default: refuse to mix them)"""
    error_scale: str = "warmup"
    """per-feature scale of the squared errors (scores and evaluation alike): `warmup` = the std of the warm-up
    states (the issue's metric); `pooled` = the std of the warm-up and explore states (action-free data every
    strategy may read), under which a feature that barely moves in the warm-up set (a cube's quaternion) does
    not dominate"""

    score_space: str = "state"
    """where `wav`, `wav-dense` and `ensemble` compare rollouts: `state` (standardised state error) or `latent`
    (the RSSM's latent features, as the authors' scorer `idm_wm_latent_mismatch_mse`); the oracle and the
    evaluation stay in state units"""

    openloop_scale: float = 0.0
    """weight of the world model's open-loop loss (`RSSMConfig.openloop_scale`) for every RSSM of the experiment
    (warm-up fit, refits, ensemble); 0 = the preset's DreamerV3 objective"""

    random_mix: tuple[tuple[str, float], ...] = ()
    """overrides of the published random-mix ratios (REFERENCE §1: ensemble and progress 0.3, oracle 0.1, WAV 0),
    e.g. (("wav", 0.3),): the share of a strategy's batch drawn uniformly instead of by its score (a diagnostic)"""

    images: bool | None = None
    """whether every RSSM also reads the pool's camera frames (the pool must be built with `--camera`); None = the
    preset's (`paper`: on, `debug` and `cpu`: off)"""

    @property
    def domain(self) -> ManipulationDomain:
        base = lookup(DOMAIN_PRESETS, self.preset)
        images = base.images if self.images is None else bool(self.images)
        return replace(base, score_space=self.score_space, rssm_openloop=self.openloop_scale, images=images)

    def scaled_domain(self, data: PoolData) -> ManipulationDomain:
        """The domain with the error scale this experiment asks for (`error_scale`)."""
        from wav.domains.manipulation import standardiser

        if self.error_scale == "warmup":
            return self.domain
        if self.error_scale == "pooled":
            both = self.domain.concat([data.seed_set, data.pool])
            return replace(self.domain, scale=tuple(float(x) for x in standardiser(both)))
        raise ValueError(f"error_scale must be 'warmup' or 'pooled', got {self.error_scale!r}")

    @property
    def round(self) -> RoundConfig:
        cfg = lookup(ROUND_PRESETS, self.preset)
        return replace(cfg, random_mix=tuple(self.random_mix)) if self.random_mix else cfg

    @property
    def protocol(self) -> PoolConfig:
        return PoolConfig(rounds=self.rounds, budget=self.budget if self.budget is not None else max(1, round(0.25 * self.warmup)))


def pool_file(path: str) -> Path:
    """A pool file, or a folder holding pool.hdf5."""
    p = Path(path)
    return p / "pool.hdf5" if p.is_dir() else p


_LOADED: dict[tuple, PoolData] = {}
"""this process's last pool load (a worker runs many jobs of one experiment: ~0.9 s of HDF5 reading each on Lift)"""


def load_data(exp: RobotAcquisitionExperiment) -> PoolData:
    """The warm-up, explore and eval partitions of the pool file, validated (one-line errors naming the file and
    the field: a missing filter key, NaN states, actions outside [-1, 1], another task, too few steps). A process
    reads a file once: a later call with the same file (path, size and modification time), task, warm-up and
    window gets a deep copy of that load, so no job sees another's changes."""
    from wav.data.io import DataError

    path = pool_file(exp.data)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a pool file or a folder holding pool.hdf5)")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, exp.task.lower(), exp.warmup, exp.domain.window, exp.domain.images)
    if key not in _LOADED:
        data = _read_pool(exp, path)
        _LOADED.clear()
        _LOADED[key] = data
    return copy.deepcopy(_LOADED[key])


def _read_pool(exp: RobotAcquisitionExperiment, path: Path) -> PoolData:
    from wav.data.io import DataError
    from wav.data.robot_io import load_trajectories

    parts, env_args = {}, {}
    for name, key in (("seed_set", f"warmup_{exp.warmup}"), ("pool", "explore"), ("test", "eval")):
        trajs, env_args = load_trajectories(path, filter_key=key, images=exp.domain.images)
        if not trajs:
            raise DataError(f"{path}: mask/{key}: is empty")
        parts[name] = TrajectorySet.of(trajs, env_args.get("layout", {}))
    task = env_args.get("task")
    if task is not None and str(task).lower() != exp.task.lower():
        raise DataError(f"{path}: data.attrs['env_args'].task is {task!r}, not the requested task {exp.task!r}")
    steps = sum(len(s) for s, _ in parts["seed_set"].trajectories)
    window = exp.domain.window
    if steps < window:
        raise DataError(f"{path}: mask/warmup_{exp.warmup}: {steps} states in all, fewer than one {window}-step window")
    if not parts["seed_set"].layout.get("groups"):
        raise DataError(f"{path}: data.attrs['env_args'].layout: missing (names, sizes, groups of the flat state)")
    return PoolData(seed_set=parts["seed_set"], pool=parts["pool"], test=parts["test"])


def settings(exp: RobotAcquisitionExperiment, strategy: str, seed: int, digest: str) -> dict:
    """What a run's result depends on (compared on resume; worker counts and backends are not in it)."""
    out = {"strategy": strategy, "seed": seed, "task": exp.task, "data": os.path.realpath(pool_file(exp.data)), "data_sha1": digest,
           "warmup": exp.warmup, "domain": asdict(exp.domain), "round": asdict(exp.round), "pool": asdict(exp.protocol)}
    return out | ({"error_scale": exp.error_scale} if exp.error_scale != "warmup" else {})  # earlier runs' settings stay valid


def run_dir(exp: RobotAcquisitionExperiment, strategy: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / strategy / f"seed{seed}"


WORLD_MODEL = "world_model.pt"
"""each run's final RSSM (after its last round), for downstream planning (`wav reproduce robot-downstream`)"""


def save_world_model(path: Path, world_model, exp: RobotAcquisitionExperiment, data: PoolData) -> Path:
    """The run's final RSSM as a checkpoint (`wav.train.load_checkpoint` rebuilds it); `meta` holds what a user
    needs to trust it: task, preset, the state layout, the error standardiser and the pool file."""
    from wav.train import save_checkpoint

    meta = {"task": exp.task, "preset": exp.preset, "kind": "rssm", "layout": data.seed_set.layout, "scale": world_model.scale.tolist(),
            "window": world_model.window, "data": os.path.realpath(pool_file(exp.data)), "warmup": exp.warmup}
    return save_checkpoint(path, world_model.rssm, meta)


def load_world_model(path: Path):
    """A saved run's `RSSMWorldModel` and its checkpoint meta."""
    import torch

    from wav.domains.manipulation import RSSMWorldModel
    from wav.train import checkpoint_meta, load_checkpoint

    meta = checkpoint_meta(path)["meta"] or {}
    if "scale" not in meta:
        raise ValueError(f"{path}: meta has no 'scale' (not a robot-acquisition world model)")
    return RSSMWorldModel(load_checkpoint(path, kind="rssm"), torch.tensor(meta["scale"]), meta.get("window", 32)).eval(), meta


def inverse_diagnostics(model, data: TrajectorySet) -> dict:
    """Action MSE, per-dimension R^2 on `data` (the eval partition) and the share of each layout group the mask keeps."""
    import torch

    from wav.data.sequences import inverse_triples

    ctx, acts, nxt = inverse_triples(list(data.trajectories))
    with torch.no_grad():
        pred = torch.cat([model.model.infer(ctx[i : i + 4096], nxt[i : i + 4096]) for i in range(0, len(nxt), 4096)]).clamp(-1, 1)
    return action_fit(acts.double().numpy(), pred.double().numpy()) | {"kept_by_group": model.kept_groups(data)}


def action_fit(actions: np.ndarray, predictions: np.ndarray) -> dict:
    """Action MSE and R^2 per action dimension (None where the actions do not vary)."""
    var = actions.var(0)
    r2 = np.where(var > 1e-12, 1 - ((actions - predictions) ** 2).mean(0) / np.maximum(var, 1e-12), np.nan)
    return {"action_mse": float(((actions - predictions) ** 2).mean()), "r2_by_dim": [float(x) if np.isfinite(x) else None for x in r2]}


def probe(exp: RobotAcquisitionExperiment, data: PoolData) -> None:
    """Score two candidates with every strategy on untrained models (well under a second): a strategy this
    domain cannot serve (say MC-dropout `uncertainty`, which needs an ensemble world model) is refused before
    any work, in one line."""
    import torch

    from wav.acquire import Models, make_strategy
    from wav.domains.manipulation import RecordedFuture
    from wav.loop import shared_parts

    domain, rnd = exp.scaled_domain(data), exp.round  # an unknown error_scale is refused here, before any work
    needs = [make_strategy(s) for s in exp.strategies]
    parts = {p: domain.build(p, data.seed_set, 0, rnd.ensemble_members if p == "ensemble" else 1) for p in shared_parts(needs)}
    cand = domain.batch(domain.subset(data.pool, np.arange(min(2, len(data.pool)))))
    for s in needs:
        models = Models(world_model=parts["world_model"], space=domain.space, subgoal=RecordedFuture() if s.subgoal else None,
                        inverse=parts.get("inverse"), dense_inverse=parts.get("dense_inverse"), ensemble=parts.get("ensemble"),
                        previous_world_model=parts["world_model"] if s.progress else None)
        try:
            s.score(cand, models, rnd.scoring, torch.Generator().manual_seed(0))
        except (ValueError, NotImplementedError) as e:
            raise ValueError(f"--strategies: '{s.name}' cannot run on manipulation trajectories: {e}") from None


def _fit_job(exp: RobotAcquisitionExperiment, seed: int, part: str) -> dict:
    """One seed-set model of one seed; for the world model also its round-0 evaluation and its true error on
    every pool candidate, which every strategy of the seed starts from."""
    from wav.loop import pool_oracle, train_shared_part
    from wav.runtime import set_threads

    set_threads(1)
    t0 = time.perf_counter()
    data = load_data(exp)
    domain = exp.scaled_domain(data)
    model = train_shared_part(domain, data.seed_set, exp.round, seed, part)
    start = {"metrics": domain.evaluate(model, data), "oracle": pool_oracle(domain, model, data.pool)} if part == "world_model" else None
    return {"kind": "fit", "seed": seed, "part": part, "model": model, "start": start, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def _strategy_job(exp: RobotAcquisitionExperiment, seed: int, strategy: str, digest: str, parts: dict, start: dict) -> dict:
    """One (strategy, seed) run from the seed's shared fits (`_fit_job`); a seed-set model that only this run
    uses (the sparse inverse model of `wav`, the ensemble of `ensemble`) is fit here."""
    from wav.acquire import make_strategy
    from wav.domains.manipulation import RecordedFuture
    from wav.loop import run_pool, shared_models, shared_parts, train_shared_part
    from wav.runtime import set_threads

    set_threads(1)
    t0 = time.perf_counter()
    data = load_data(exp)
    domain = exp.scaled_domain(data)
    s = make_strategy(strategy)
    mine, fit_seconds = {}, {}
    for part in shared_parts([s]):
        t = time.perf_counter()
        if part in parts:  # a run refits its models in place: never share them (an in-process run gets the very object)
            mine[part] = copy.deepcopy(parts[part])
        else:
            mine[part] = train_shared_part(domain, data.seed_set, exp.round, seed, part)
            fit_seconds[part] = time.perf_counter() - t
    diagnostics = {p: inverse_diagnostics(mine[p], data.test) for p in ("inverse", "dense_inverse") if p in mine}
    t = time.perf_counter()
    shared = shared_models(RecordedFuture() if s.subgoal else None, mine)
    extra = {"data": str(pool_file(exp.data)), "experiment": asdict(exp), "settings": settings(exp, s.name, seed, digest),
             "reads_actions": s.reads_actions_in(domain.space), "privileged": s.privileged, "inverse_eval": diagnostics.get(s.inverse) if s.inverse else None}
    path = run_dir(exp, s.name, seed) / WORLD_MODEL
    run_pool(domain, s.name, seed, data, shared, exp.protocol, exp.round, run_dir(exp, s.name, seed), extra, start["metrics"], start["oracle"],
             keep=lambda models: save_world_model(path, models.world_model, exp, data))
    return {"kind": "strategy", "seed": seed, "strategy": s.name, "seconds": time.perf_counter() - t0, "fit_seconds": fit_seconds,
            "run_seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "inverse_eval": diagnostics, "records": records(run_dir(exp, s.name, seed))}


def _job(kind: str, *args) -> dict:
    return {"fit": _fit_job, "strategy": _strategy_job}[kind](*args)


def per_seed_seconds(jobs: list[dict]) -> list[dict]:
    """The jobs' timings gathered by seed: CPU seconds of all its jobs, each fit's and each run's seconds, the
    largest peak resident memory of the processes that ran them."""
    out: dict[int, dict] = {}
    for j in jobs:
        row = out.setdefault(j["seed"], {"seed": j["seed"], "seconds": 0.0, "fit_seconds": {}, "run_seconds": {}, "peak_rss_mb": 0.0})
        row["seconds"] += j["seconds"]
        row["peak_rss_mb"] = max(row["peak_rss_mb"], j["peak_rss_mb"])
        if j["kind"] == "fit":
            row["fit_seconds"][j["part"]] = j["seconds"]
        else:
            row["fit_seconds"].update(j["fit_seconds"])
            row["run_seconds"][j["strategy"]] = j["run_seconds"]
    return [out[k] for k in sorted(out)]


def merge_seconds(before: list[dict], now: list[dict]) -> list[dict]:
    """Per-seed timings of an earlier invocation merged with this one's. A resume that reruns a seed (a strategy
    added to the folder) keeps the earlier runs' seconds; a seed-set part fit again only because the new run
    needs it is not a cost of the experiment, so its second fit's seconds are not added twice; a run done again
    (`--force`) replaces its earlier seconds, and a seed whose every run was done again replaces its whole row."""
    rows = {j["seed"]: j for j in before}
    for j in now:
        old = rows.get(j["seed"])
        if old is None or set(old["run_seconds"]) <= set(j["run_seconds"]):  # new, or every earlier run of it redone
            rows[j["seed"]] = j
            continue
        again = sum(v for p, v in j["fit_seconds"].items() if p in old["fit_seconds"]) + sum(v for s, v in old["run_seconds"].items() if s in j["run_seconds"])
        rows[j["seed"]] = {"seed": j["seed"], "seconds": old["seconds"] + j["seconds"] - again,
                           "fit_seconds": {**j["fit_seconds"], **old["fit_seconds"]}, "run_seconds": {**old["run_seconds"], **j["run_seconds"]},
                           "peak_rss_mb": max(old["peak_rss_mb"], j["peak_rss_mb"])}
    return [rows[k] for k in sorted(rows)]


def check(exp: RobotAcquisitionExperiment) -> str:
    """Every bad input refused in one line before any work (strategies, the pool file, finished runs with other
    settings); returns the pool file's digest."""
    from wav.acquire import make_strategy

    for s in exp.strategies:
        make_strategy(s)  # unknown names fail here
    probe(exp, load_data(exp))
    digest = file_sha1(pool_file(exp.data))
    check_resume({run_dir(exp, s, seed): settings(exp, s, seed, digest) for seed in exp.seeds for s in exp.strategies}, exp.force,
                 {"domain.rssm_openloop": 0.0, "domain.images": False})  # runs from before these settings: no loss, no images
    return digest


FITS = "fits"
"""the folder (under `--out`) of the first wave's seed-set fits, one file per (seed, part), which a resume loads
instead of fitting again"""


def fit_path(exp: RobotAcquisitionExperiment, seed: int, part: str) -> Path:
    return Path(exp.out) / FITS / f"seed{seed}" / f"{part}.pt"


def fit_key(exp: RobotAcquisitionExperiment, seed: int, part: str, digest: str) -> dict:
    """What a seed-set fit and its round-0 evaluation depend on: a run's settings without the strategy and without
    the random-mix overrides (they change which candidates a run picks, not the seed-set fits)."""
    key = json.loads(json.dumps({k: v for k, v in settings(exp, "", seed, digest).items() if k != "strategy"} | {"part": part}))
    key["round"]["random_mix"] = []
    if not key["domain"].get("images"):
        key["domain"].pop("images", None)  # fits kept before the setting existed read no images
    return key


def save_fit(exp: RobotAcquisitionExperiment, fit: dict, digest: str) -> None:
    """Keep a first-wave fit (model, round-0 evaluation, seconds) for later invocations of the same folder."""
    import torch

    from wav.data.io import atomic_write

    path = fit_path(exp, fit["seed"], fit["part"])  # atomic_write makes the folders
    atomic_write(path, lambda tmp: torch.save({"key": fit_key(exp, fit["seed"], fit["part"], digest), "fit": fit}, tmp))


def load_fit(exp: RobotAcquisitionExperiment, seed: int, part: str, digest: str) -> dict | None:
    """The kept fit of (seed, part), or None when there is none or it was made with other settings. Its record
    says `cached`, and keeps the seconds its fit took (a cost of the experiment, counted once by `merge_seconds`)."""
    import torch

    path = fit_path(exp, seed, part)
    if not path.exists():
        return None
    kept = torch.load(path, weights_only=False)
    return kept["fit"] | {"cached": True} if kept.get("key") == fit_key(exp, seed, part, digest) else None


def waves(exp: RobotAcquisitionExperiment, todo: dict[int, tuple[str, ...]], digest: str, progress: bool = True) -> tuple[list[dict], list[dict], float]:
    """Two waves of parallel jobs, as in the MiniGrid experiment: (1) one job per (seed, model) for the seed-set
    world model and for any other seed-set model that two or more of the seed's runs share; (2) one job per
    (strategy, seed), the costliest first, which fits any seed-set model that only it uses. Returns the two
    waves' job records and the first wave's wall seconds. Every fit and run draws from its own (seed, part)
    or (seed, strategy) streams, so the schedule and the job count never change a result. The first wave's
    fits are kept in `<out>/fits/` (`save_fit`); a later invocation with the same settings (a resume that adds
    strategies, or one stopped during the runs) loads them instead of fitting again: the same models, the
    same round-0 evaluation. A change of library code that changes what a fit computes needs that folder
    deleted, as it needs the finished runs redone."""
    t0 = time.perf_counter()
    fit_plan, wave2 = wave_plan((seed, s) for seed, strategies in todo.items() for s in strategies)
    kept = {(seed, part): load_fit(exp, seed, part, digest) for seed, part in fit_plan}
    kept = {k: v for k, v in kept.items() if v is not None}
    if kept and progress:
        print(f"seed-set fits: {len(kept)} of {len(fit_plan)} loaded from {Path(exp.out) / FITS}", file=sys.stderr, flush=True)
    wave1 = [("fit", exp, seed, part) for seed, part in fit_plan if (seed, part) not in kept]
    ship = [pool_file(exp.data)]
    fits = run_jobs(_job, wave1, exp.backend, exp.jobs, exp.ray_address, desc="seed-set fits" if progress and wave1 else None, ship=ship)
    for f in fits:
        save_fit(exp, f, digest)
    fits = fits + list(kept.values())
    fit_wall = time.perf_counter() - t0
    parts: dict[int, dict] = {seed: {} for seed in todo}
    starts = {f["seed"]: f["start"] for f in fits if f["start"] is not None}
    for f in fits:
        parts[f["seed"]][f["part"]] = f.pop("model")
    runs = run_jobs(_job, [("strategy", exp, seed, s, digest, parts[seed], starts[seed]) for seed, s in wave2], exp.backend, exp.jobs, exp.ray_address,
                    desc="strategy runs" if progress else None, ship=ship)
    for f in fits:
        f.pop("start")
    return fits, runs, fit_wall


def run(exp: RobotAcquisitionExperiment, progress: bool = True, digest: str | None = None, report_only: bool = False) -> dict:
    """Validate the data, run (or resume) every (strategy, seed), write the report; returns results.json's content.
    `report_only`: run nothing, rewrite the report from the finished runs."""
    digest = check(exp) if digest is None else digest
    if exp.backend == "ray":
        connect_ray(exp.ray_address)
        exp = replace(exp, out=os.path.abspath(exp.out), data=os.path.abspath(pool_file(exp.data)))
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    todo = {} if report_only else unfinished_by_seed(exp.seeds, exp.strategies, lambda s, seed: run_dir(exp, s, seed), progress)
    fits, runs, fit_wall = waves(exp, todo, digest, progress)
    wall = time.perf_counter() - t0
    before = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    results = report(exp)
    # a resume keeps what earlier invocations measured (timings, inverse diagnostics), merged per seed with what it reran
    job_seconds = merge_seconds([j for j in before.get("job_seconds", []) if j.get("seed") in exp.seeds], per_seed_seconds(fits + runs))
    results["seconds_per_seed"] = wall / len(todo) if todo else before.get("seconds_per_seed", 0.0)
    results["cpu_seconds_per_seed"] = float(np.mean([j["seconds"] for j in job_seconds])) if job_seconds else 0.0
    results["wall_seconds"] = wall if todo else before.get("wall_seconds", wall)  # a run of nothing keeps what was measured
    results["jobs"] = exp.jobs if todo else before.get("jobs", exp.jobs)
    if not todo and "wave_seconds" in before:
        results["wave_seconds"] = before["wave_seconds"]
    results["job_seconds"] = job_seconds
    results["inverse_eval"] = {k: v for k, v in before.get("inverse_eval", {}).items() if int(k) in exp.seeds}  # a seed's fits are the same in every invocation
    for j in runs:
        results["inverse_eval"].setdefault(str(j["seed"]), {}).update(j["inverse_eval"])
    if todo:
        results["wave_seconds"] = {"fits": fit_wall, "runs": wall - fit_wall}
    write_json(out / "results.json", results)
    return results


def task_experiments(exp: RobotAcquisitionExperiment, tasks: list[str]) -> dict[str, RobotAcquisitionExperiment]:
    """Several tasks (`--task all` or a comma-separated list): `data` holds one build folder per task
    (<data>/<task>/pool.hdf5: `wav robot build --task <task> --out <data>/<task>`) and each task's output goes to
    <out>/<task>."""
    return {t: replace(exp, task=t, data=str(Path(exp.data) / t), out=str(Path(exp.out) / t)) for t in tasks}


def run_tasks(exp: RobotAcquisitionExperiment, tasks: list[str], progress: bool = True, report_only: bool = False) -> dict:
    """Every task's inputs are checked before any run; then one task after another (each with `jobs` seed jobs);
    writes the cross-task table (`tasks_table`) as <out>/table.md and <out>/results.json {"tasks": ...}."""
    from wav.data.io import DataError

    per = task_experiments(exp, tasks)
    missing = [t for t, e in per.items() if not pool_file(e.data).is_file()]
    if missing:
        raise DataError(f"{exp.data}: no pool for {', '.join(missing)} (expected <data>/<task>/pool.hdf5; build with "
                        f"`wav robot build --task <task> --out {Path(exp.data)}/<task>`, or name the built tasks with --task A,B)")
    digests = {t: check(e) for t, e in per.items()}
    results = {t: run(e, progress, digests[t], report_only) for t, e in per.items()}
    out = Path(exp.out)
    write_json(out / "results.json", {"tasks": results})
    (out / "table.md").write_text(tasks_table(results))
    return results


def tasks_table(results: dict[str, dict]) -> str:
    """The cross-task table (the README's) from per-task results.json contents, with the issue's targets scored:
    error below random / ensemble / progress / wav-dense (paired p), within 10% of the oracle, Spearman, 2x
    sample efficiency (wav after round 1 at or below random after round 2)."""
    names = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")
    head = "| task | seeds | " + " | ".join(names) + " | WAV Spearman (ensemble, progress) | wav − best baseline (p) | wav r1 ≤ random r2 |"
    lines = ["32-step open-loop error on the eval partition after the last round (mean over seeds; lower is better), round-1 Spearman "
             "of each strategy's scores with the oracle error, and the paired difference of WAV's error to the best of random, "
             "ensemble, progress and wav-dense.", "", head, "|" + "---|" * (head.count("|") - 1)]
    below, below_sig, ratios, rho_ok, eff_ok, n = 0, 0, [], 0, 0, 0
    for task, r in results.items():
        e = r["strategies"]
        if "wav" not in e:
            continue
        n += 1
        err = {s: e[s]["pred_error"] for s in names if s in e}
        base = [s for s in ("random", "ensemble", "progress", "wav-dense") if s in err]
        best = min(base, key=lambda s: err[s]) if base else None
        diff = r["paired_wav_minus"].get(best, {}).get("pred_error", {}) if best else {}
        wins = [s for s in base if err["wav"] < err[s]]
        sig = [s for s in wins if (r["paired_wav_minus"].get(s, {}).get("pred_error", {}).get("p_ttest") or 1.0) < 0.05]
        below += len(wins) == len(base) and bool(base)
        below_sig += len(sig) == len(base) and bool(base)
        if "oracle" in err:
            ratios.append(err["wav"] / err["oracle"])
        rho = lambda s: e.get(s, {}).get("spearman")  # noqa: E731
        rho_ok += bool(rho("wav") is not None and rho("wav") >= 0.80 and all(rho("wav") > (rho(s) if rho(s) is not None else -1) for s in ("ensemble", "progress")))
        c = r.get("curves", {})
        r1 = c.get("wav", {}).get("pred_error", [None, None])[1:2]
        rand = c.get("random", {}).get("pred_error", [None])[-1:]
        eff = bool(r1 and rand and r1[0] is not None and rand[0] is not None and r1[0] <= rand[0])
        eff_ok += eff
        fmt = lambda x: f"{x:.3f}" if x is not None and np.isfinite(x) else "—"  # noqa: E731
        rhos = f"{fmt(rho('wav'))} ({fmt(rho('ensemble'))}, {fmt(rho('progress'))})"
        p = diff.get("p_ttest")
        d = (f"{diff['mean']:+.3f} vs {best} " + (f"(p={p:.3g})" if p is not None and np.isfinite(p) else "(no test)")) if diff.get("mean") is not None else "—"
        lines.append(f"| {task} | {r['n_seeds']} | " + " | ".join(fmt(err.get(s)) for s in names) + f" | {rhos} | {d} | {'yes' if eff else 'no'} |")
    if n:
        present = [s for s in ("random", "ensemble", "progress", "wav-dense") if any(s in r["strategies"] for r in results.values())]
        which = "all four baselines" if len(present) == 4 else "the baselines run here (" + ", ".join(present) + ")"
        oracle = f"WAV / oracle error {np.mean(ratios):.2f} on average (target <= 1.10)" if ratios else "no oracle runs"
        lines += ["", f"Targets over these {n} of 6 tasks: WAV below {which} on {below} (with paired p < 0.05 against each on {below_sig}; "
                  f"targets >= 5 and >= 4 of 6); {oracle}; Spearman >= 0.80 and above "
                  f"ensemble's and progress's on {rho_ok} (target: every task); WAV after round 1 at or below random after round 2 on {eff_ok} "
                  "(target >= 4 of 6)."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report (run records only)


def _rows(exp: RobotAcquisitionExperiment) -> dict[str, dict[int, list[dict]]]:
    """strategy -> seed -> the metrics rows of each finished run, over the seeds every strategy with finished runs
    finished (a seed that some of them lack, e.g. an interrupted run, would compare means over different seeds; a
    stderr line names it). A strategy with no finished run at all is simply absent."""
    out: dict[str, dict[int, list[dict]]] = {}
    for s in exp.strategies:
        for seed in exp.seeds:
            rows = read_metrics(run_dir(exp, s, seed))
            if rows and is_done(run_dir(exp, s, seed)):
                out.setdefault(s, {})[seed] = rows
    partial = sorted({k for v in out.values() for k in v} - set.intersection(*(set(v) for v in out.values()))) if out else []
    if partial:
        print(f"{exp.out}: seeds {partial} left out of the report (not every strategy finished them)", file=sys.stderr)
        out = {s: {k: v for k, v in by.items() if k not in partial} for s, by in out.items()}
        out = {s: by for s, by in out.items() if by}
    return out


def report(exp: RobotAcquisitionExperiment) -> dict:
    """results.json (mean and 95% CI over seeds; paired wav - X), table.md and figure.png, from the run records.
    The error is the last round's; Spearman and Kendall are round 1's (the seed-set model's scores vs the oracle)."""
    from wav.acquire import REGISTRY

    rows = _rows(exp)
    strategies = {}
    for s, by_seed in rows.items():
        first = {k: next((r for r in v if r.get("round") == 1), {}) for k, v in by_seed.items()}
        entry: dict = {"seeds": sorted(by_seed), "reads_actions": REGISTRY[s].reads_actions_in(exp.domain.space), "privileged": REGISTRY[s].privileged}
        for m, src in (("pred_error", {k: v[-1] for k, v in by_seed.items()}), ("spearman", first), ("kendall", first)):
            mean, ci, clipped = metric_ci([r.get(m, np.nan) if r.get(m) is not None else np.nan for r in src.values()], m)
            entry[m], entry[f"{m}_ci"] = mean, ci
            if clipped:
                entry.setdefault("clipped", []).append(m)
        groups = sorted({g for v in by_seed.values() for g in v[-1].get("pred_error_by_group", {})})
        entry["pred_error_by_group"] = {g: mean_ci([v[-1]["pred_error_by_group"].get(g, np.nan) for v in by_seed.values()], bounds=RANGES["pred_error"])[0] for g in groups}
        entry["pred_error_round1"] = mean_ci([first[k].get("pred_error", np.nan) for k in first], bounds=RANGES["pred_error"])[0]
        strategies[s] = entry
    paired = {}
    if "wav" in rows:
        for s in rows:
            if s != "wav":
                common = sorted(set(rows["wav"]) & set(rows[s]))
                paired[s] = {"pred_error": paired_difference([rows["wav"][k][-1]["pred_error"] for k in common], [rows[s][k][-1]["pred_error"] for k in common])}
    curves = {}
    for s, by_seed in rows.items():
        per_round: dict[int, list] = {}
        labels: dict[int, int] = {}
        for v in by_seed.values():
            for r in v:
                per_round.setdefault(r["round"], []).append(r["pred_error"])
                labels[r["round"]] = r["labels"]
        rounds = sorted(per_round)
        stats = [mean_ci(per_round[r], bounds=RANGES["pred_error"]) for r in rounds]
        curves[s] = {"labels": [labels[r] for r in rounds], "acquired": [labels[r] - labels[rounds[0]] for r in rounds],
                     "pred_error": [m for m, _, _ in stats], "ci": [[lo, hi] for _, lo, hi in stats]}
    results = {"task": exp.task, "warmup": exp.warmup, "preset": exp.preset, "n_seeds": len({k for by in rows.values() for k in by}), "rounds": exp.rounds, "error_scale": exp.error_scale,
               "score_space": exp.score_space, **({"openloop_scale": exp.openloop_scale} if exp.openloop_scale else {}),
               **({"random_mix": dict(exp.random_mix)} if exp.random_mix else {}),
               "budget": exp.protocol.budget, "data": str(pool_file(exp.data)), "strategies": strategies, "paired_wav_minus": paired,
               "curves": curves, "sample_efficiency": sample_efficiency(curves)}
    return write_report(exp.out, results, markdown_table, plot)


def markdown_table(results: dict) -> str:
    task = results["task"]
    pub = PUBLISHED.get(task)
    names = ("oracle", "wav", "wav-dense", "ensemble", "progress", "random")
    lines = [f"Robot acquisition on {task} (pool protocol), warm-up {results['warmup']}, {results['rounds']} rounds x {results['budget']} trajectories, "
             f"{results['n_seeds']} seeds, preset `{results['preset']}`: mean [95% CI]. Error = 32-step open-loop squared error on the eval "
             f"partition, standardised by the {'warm-up and explore states' if results.get('error_scale') == 'pooled' else 'warm-up set'} "
             "(after the last round); Spearman/Kendall = round-1 scores vs the oracle error."
             + (" wav, wav-dense and ensemble score in the RSSM's latent feature space (`--score-space latent`)." if results.get("score_space") == "latent" else "")
             + (f" Every RSSM trains with the open-loop loss at weight {results['openloop_scale']:g} (`--openloop-scale`)." if results.get("openloop_scale") else "")
             + (" Random-mix ratios changed from the published ones (`--random-mix`): "
                + ", ".join(f"{k} {v:g}" for k, v in results["random_mix"].items()) + "." if results.get("random_mix") else ""),
             "", "| strategy | reads candidate actions | error ↓ | error after round 1 | ee / robot / object error | Spearman ↑ | Kendall ↑ | wav − X error (p) | published error (image units) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s, e in results["strategies"].items():
        pd = results["paired_wav_minus"].get(s, {}).get("pred_error")
        diff = f"{pd['mean']:+.3f} (p={pd['p_ttest']:.3g})" if pd and pd["mean"] is not None and np.isfinite(pd["mean"]) else "—"
        g = e.get("pred_error_by_group", {})
        groups = " / ".join(f"{g[k]:.3f}" if k in g and g[k] is not None and np.isfinite(g[k]) else "—" for k in ("ee", "robot", "object"))
        r1 = e.get("pred_error_round1")
        published = f"{pub[names.index(s)]} ({PUBLISHED_NAMES[s]})" if pub and s in names else "—"
        r1 = f"{r1:.3f}" if r1 is not None and np.isfinite(r1) else "—"
        reads = ("yes" if e["reads_actions"] else "no") + (" (privileged)" if e.get("privileged") else "")
        lines.append(f"| {s} | {reads} | {_fmt(e, 'pred_error')} | {r1} | {groups} | {_fmt(e, 'spearman')} | {_fmt(e, 'kendall')} | {diff} | {published} |")
    if task in PUBLISHED_SPEARMAN:
        w, u, p = PUBLISHED_SPEARMAN[task]
        lines += ["", f"Published Spearman on {task}: WAV {w}, Uncertainty {u}, Progress {p}."]
    if any(e.get("clipped") for e in results["strategies"].values()):
        lines += ["", f"\\* the 95% t-interval left the metric's range (few seeds: {results['n_seeds']}) and is clipped to it."]
    eff = results.get("sample_efficiency") or {}
    if eff.get("ratio"):
        lines += ["", f"wav reaches random's final error ({eff['target_error']:.3f}) after {eff['labels_needed']:.1f} acquired trajectories "
                  f"(random: {eff['ref_labels']}): {eff['ratio']:.2f}x sample efficiency."]
    elif eff:
        lines += ["", f"Sample efficiency undefined: {eff.get('reason', 'wav does not reach random’s final error within the budget')}."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bars (95% CI) of the final error and of round-1 Spearman, and error vs labelled trajectories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wav.data.io import atomic_write

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, (m, title) in zip(axes[:2], [("pred_error", "32-step open-loop error ↓"), ("spearman", "Spearman ρ with oracle (round 1) ↑")]):
        strategy_bars(ax, results["strategies"], m)
        ax.set_title(title)
    ax = axes[2]
    for s, c in results.get("curves", {}).items():
        x, y = np.array(c["labels"]), np.array(c["pred_error"], float)
        lo, hi = np.array(c["ci"], float).T
        ax.plot(x, y, marker="o", label=s)
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xlabel("labelled trajectories")
    ax.set_ylabel("32-step error")
    ax.legend(fontsize=7)
    fig.suptitle(f"{results['task']}: robot acquisition, {results['n_seeds']} seeds (95% CI)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
