"""The acquisition figure (REFERENCE §4): pool protocol, every strategy x seed, with CIs and paired tests.

`run()` writes `<out>/runs/<strategy>/seed<k>/{config.json, metrics.jsonl}`; `report()` reads only those
records and writes `results.json`, `table.md` and `figure.png`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.data.io import atomic_write
from wav.experiments.acquisition_report import markdown_table, plot
from wav.experiments.common import cached_transitions, changed_fields, check_resume, connect_ray, is_done, read_metrics, records, run_jobs, sample_efficiency, wave_plan, write_json, write_report
from wav.config import POOL_PRESETS, ROUND_PRESETS, PoolConfig, RoundConfig, preset as lookup
from wav.domains.base import PoolData
from wav.domains.minigrid import MiniGridDomain, domain_preset
from wav.loop import pool_oracle, run_pool
from wav.stats import RANGES, mean_ci, metric_ci, paired_difference

PUBLISHED_STRATEGIES = ("random", "uncertainty", "progress", "wav", "oracle")
METRICS = ("pred_error", "dynamic_accuracy", "afs", "spearman", "kendall")


@dataclass(frozen=True)
class AcquisitionExperiment:
    """Where the data come from, which strategies and seeds run, and how."""

    out: str = "runs/acquisition"
    """output folder (run dirs, cached data, results)"""
    seeds: tuple[int, ...] = tuple(range(10))
    """seeds; each trains its own seed-set models"""
    strategies: tuple[str, ...] = PUBLISHED_STRATEGIES
    """strategies from the registry (wav.acquire.REGISTRY)"""
    preset: str = "paper"
    """the row of every preset table (models, round, pool protocol): paper | debug"""
    models: str | None = None
    """model preset overriding the preset's (paper: generic): generic (like the published net) | pointer (pointer heads; leaves the
    published benchmark nothing to acquire)"""
    test_overlap: bool = False
    """generated test set: keep transitions that also occur in the pool (as a policy test set collected
    independently does; the published 10,368 must have) instead of excluding them"""
    pool: str | None = None
    """candidate pool file (default: ~28k multi-task transitions collected by our env)"""
    seed_data: str | None = None
    """seed labelled set (default: `seed_size` transitions drawn from the pool and removed from it)"""
    test_data: str | None = None
    """balanced test set (default: make-testset with `test_per_action`, excluding the pool)"""
    video: str | None = None
    """action-free corpus for the subgoal generator (default: 25k random-play transitions)"""
    afs_data: str | None = None
    """file whose states seed the action following score (default: the test set)"""
    subgoal: str | None = None
    """a trained subgoal-generator checkpoint (default: train one on `video`, cached under <out>/cache)"""
    pretrain: str = "none"
    """world-model pre-training on `video` before the seed set (REFERENCE §4): none | recorded (the corpus's
    own actions, as the authors' code) | inferred (actions labelled by a sparse inverse model fit on the seed
    set: strictly action-free). Once per experiment (seed 0, cached under <out>/cache); every seed's and
    strategy's world model starts from it"""
    pretrain_epochs: int | None = None
    """epochs of that pretraining (None: the model preset's `world_model_pretrain`)"""
    distractors: int = 0
    """extra objects in every collected world (pool, seed set, test set, corpus): a harder setting than
    the published one (the scripted policy moves them out of its way)"""
    noise_floors: int = 0
    """noise floor tiles (random colour flips) in every collected world"""
    pool_size: int = 28000
    seed_size: int = 200
    test_per_action: int = 1500
    video_size: int = 25000
    backend: str = "local"
    """local (joblib processes) | ray"""
    jobs: int = 2
    """parallel seed jobs (local backend)"""
    ray_address: str | None = None
    round_config: RoundConfig | None = None
    """an explicit round config (scoring, refits) instead of the preset's (the CLI's method flags, benchmarks)"""
    pool_config: PoolConfig | None = None
    """an explicit pool protocol (rounds, budget) instead of the preset's"""
    force: bool = False
    """redo finished runs whose recorded settings differ from these (default: refuse to mix them)"""

    @property
    def domain(self) -> MiniGridDomain:
        d = domain_preset(self.preset, self.models)
        return replace(d, world_init=str(pretrain_path(self, d))) if self.pretrain != "none" else d

    @property
    def round(self) -> RoundConfig:
        return self.round_config or lookup(ROUND_PRESETS, self.preset)

    @property
    def protocol(self) -> PoolConfig:
        return self.pool_config or lookup(POOL_PRESETS, self.preset)


DEBUG_SIZES = dict(pool_size=3000, seed_size=100, test_per_action=60, video_size=3000)


def world_kwargs(exp: AcquisitionExperiment, objects: int | None = None) -> dict | None:
    """Env kwargs of the collected worlds: None for the published setting (nothing passed), else the
    distractors and noise floors (`objects`: the corpus's random-play env counts objects instead)."""
    if not exp.distractors and not exp.noise_floors:
        return {"objects": objects} if objects is not None else None
    if objects is not None:
        return {"objects": objects + exp.distractors, "noise_floors": exp.noise_floors}
    return {"distractors": exp.distractors, "noise_floors": exp.noise_floors}


def prepare_data(exp: AcquisitionExperiment) -> dict[str, Path]:
    """Materialise the experiment's data under <out>/data (cached; given files are only referenced)."""
    from wav.data.collect import collect, make_testset

    out = Path(exp.out) / "data"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    kw = world_kwargs(exp)
    pool = cached_transitions(out / "pool.npz", lambda: collect("WAV/MultiTask-v0", kw, "scripted", exp.pool_size, 10_000)[0], exp.pool)
    if exp.seed_data:
        seed_set = cached_transitions(out / "seed.npz", lambda: None, exp.seed_data)
    else:
        rng = np.random.default_rng(20_000)
        pick = np.sort(rng.choice(len(pool), exp.seed_size, replace=False))
        seed_set = cached_transitions(out / "seed.npz", lambda: pool.subset(pick))
        rest = np.ones(len(pool), bool)
        rest[pick] = False
        pool = cached_transitions(out / "pool_rest.npz", lambda: pool.subset(rest))
        paths["pool"] = out / "pool_rest.npz"
    paths.setdefault("pool", Path(exp.pool) if exp.pool else out / "pool.npz")
    paths["seed"] = Path(exp.seed_data) if exp.seed_data else out / "seed.npz"
    test_name = "test_overlap.npz" if exp.test_overlap else "test.npz"
    cached_transitions(out / test_name, lambda: make_testset(exp.test_per_action, None if exp.test_overlap else pool, 30_000, env_kwargs=kw)[0], exp.test_data)
    paths["test"] = Path(exp.test_data) if exp.test_data else out / test_name
    if exp.test_overlap and not exp.test_data:  # the same runs also scored on the pool-excluded set: what overlap contributes
        cached_transitions(out / "test.npz", lambda: make_testset(exp.test_per_action, pool, 30_000, env_kwargs=kw)[0])
        paths["test_excl"] = out / "test.npz"
    paths["video"] = Path(exp.video) if exp.video else out / "video.npz"  # collected by subgoal_model when it has to train
    paths["afs"] = Path(exp.afs_data) if exp.afs_data else paths["test"]
    return paths


def video_data(exp: AcquisitionExperiment, paths: dict[str, Path]):
    """The 25k-transition corpus (the given file, else random play collected once and cached)."""
    from wav.data.collect import collect

    return cached_transitions(paths["video"], lambda: collect("WAV/Interact-v0", world_kwargs(exp, 3), "random", exp.video_size, 40_000, episode_steps=50)[0], exp.video)


def subgoal_model(exp: AcquisitionExperiment, paths: dict[str, Path]):
    """The frozen subgoal generator, trained once per experiment on the action-free corpus (cached)."""
    from wav.domains.minigrid import train_subgoal
    from wav.train import load_checkpoint, save_checkpoint

    if exp.subgoal:
        return load_checkpoint(exp.subgoal, "subgoal")
    ckpt = subgoal_path(exp, paths)
    if ckpt.exists():
        return load_checkpoint(ckpt, "subgoal")
    video = video_data(exp, paths)
    p = exp.domain.preset
    model, hist = train_subgoal(video, p.subgoal, p.subgoal_train, seed=0, finetune=p.subgoal_finetune)
    save_checkpoint(ckpt, model, {"trained_on": str(paths["video"]), "seconds": hist.seconds})
    return model


def subgoal_path(exp: AcquisitionExperiment, paths: dict[str, Path]) -> Path:
    """The generator checkpoint: the given one, else the cache file of this training recipe (never mixed)."""
    if exp.subgoal:
        return Path(exp.subgoal)
    p = exp.domain.preset
    recipe = json.dumps([changed_fields(p.subgoal), changed_fields(p.subgoal_train), p.subgoal_finetune and changed_fields(p.subgoal_finetune), str(paths["video"])],
                        sort_keys=True, default=str)
    return Path(exp.out) / "cache" / f"subgoal-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}.pt"


PRETRAIN_CHOICES = ("none", "recorded", "inferred")


def pretrain_schedule(exp: AcquisitionExperiment, p):
    """The pretraining schedule: the model preset's, with `exp.pretrain_epochs` when given."""
    return p.world_model_pretrain if exp.pretrain_epochs is None else replace(p.world_model_pretrain, epochs=exp.pretrain_epochs)


def pretrain_path(exp: AcquisitionExperiment, domain: MiniGridDomain | None = None) -> Path:
    """The cache file of the pretrained world model of this recipe (model, schedule, labels, corpus, seed set)."""
    p = (domain or domain_preset(exp.preset, exp.models)).preset
    label = [changed_fields(p.inverse), changed_fields(p.inverse_train), exp.seed_data and os.path.abspath(exp.seed_data), exp.seed_size] if exp.pretrain == "inferred" else []
    recipe = json.dumps([exp.pretrain, changed_fields(p.world_model), changed_fields(pretrain_schedule(exp, p)), exp.video and os.path.abspath(exp.video),
                         exp.video_size, *label], sort_keys=True, default=str)  # non-default fields: adding a config field keeps the key
    return Path(exp.out).absolute() / "cache" / f"world-pretrain-{exp.pretrain}-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}.pt"


def pretrained_world(exp: AcquisitionExperiment, paths: dict[str, Path], progress: bool = True) -> dict | None:
    """Pre-train the world model once per experiment (`exp.pretrain`), cached; returns what it did (None: no pretraining)."""
    from wav.data.io import load_transitions
    from wav.domains.minigrid import pretrain_world_model
    from wav.train import checkpoint_meta, save_checkpoint

    if exp.pretrain == "none":
        return None
    path = Path(exp.domain.world_init)
    if path.exists():
        return checkpoint_meta(path)["meta"]
    p = exp.domain.preset  # the fits run on one thread whatever the process's count (wav.train.fit)
    if progress:
        print(f"pretraining the world model on {paths['video']} ({exp.pretrain} actions, {pretrain_schedule(exp, p).epochs} epochs)", file=sys.stderr)
    model, info = pretrain_world_model(video_data(exp, paths), p.world_model, pretrain_schedule(exp, p), exp.pretrain,
                                       load_transitions(paths["seed"]), p.inverse, p.inverse_train, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, {**info, "corpus": str(paths["video"])})
    return info


def inputs(exp: AcquisitionExperiment, paths: dict[str, Path]) -> list[Path]:
    """Every file the jobs read (shipped with them to a Ray cluster without a shared filesystem)."""
    return [*paths.values(), subgoal_path(exp, paths), proposals_path(exp), *([Path(exp.domain.world_init)] if exp.pretrain != "none" else [])]


def absolute(exp: AcquisitionExperiment) -> AcquisitionExperiment:
    """The experiment with its output folder and input files as absolute paths (for remote workers)."""
    fields = ("out", "pool", "seed_data", "test_data", "video", "afs_data", "subgoal")
    return replace(exp, **{k: os.path.abspath(getattr(exp, k)) for k in fields if getattr(exp, k)})


def settings(exp: AcquisitionExperiment, strategy: str, seed: int) -> dict:
    """What a run's result depends on (compared on resume; worker counts and backends are not in it)."""
    files = {k: getattr(exp, k) and os.path.abspath(getattr(exp, k)) for k in ("pool", "seed_data", "test_data", "video", "afs_data", "subgoal")}
    data = {**files, **{k: getattr(exp, k) for k in ("pool_size", "seed_size", "test_per_action", "video_size", "test_overlap", "distractors", "noise_floors")}}
    return {"strategy": strategy, "seed": seed, "domain": asdict(exp.domain), "round": asdict(exp.round), "pool": asdict(exp.protocol), "data": data}


def run_dir(exp: AcquisitionExperiment, strategy: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / strategy / f"seed{seed}"


def _pool_data(exp: AcquisitionExperiment, paths: dict[str, Path]) -> PoolData:
    from wav.data.io import load_transitions

    return PoolData(
        seed_set=load_transitions(paths["seed"]), pool=load_transitions(paths["pool"]), test=load_transitions(paths["test"]),
        extra_tests={"test_excl": load_transitions(paths["test_excl"])} if "test_excl" in paths else {},
        probes=exp.domain.probes(load_transitions(paths["afs"])),
    )


def _fingerprint(model, pool_path: Path) -> str:
    """Identity of (generator weights, pool file) for the proposal cache."""
    h = hashlib.sha1(str(Path(pool_path).resolve()).encode())
    for v in model.state_dict().values():
        h.update(v.numpy().tobytes())
    return h.hexdigest()


def proposals_path(exp: AcquisitionExperiment) -> Path:
    return Path(exp.out) / "cache" / "proposals.npz"


def _cached_proposals(exp: AcquisitionExperiment, paths: dict[str, Path], model) -> dict[str, np.ndarray] | None:
    """The proposal memo of `_proposals_job` when it was made by this generator on this pool, else None."""
    path = proposals_path(exp)
    if not path.exists():
        return None
    table = np.load(path)
    if str(table["fingerprint"]) != _fingerprint(model, paths["pool"]):
        return None
    return {k: table[k] for k in ("keys", "counts", "subgoals", "weights")}


def _proposals_job(exp: AcquisitionExperiment, paths: dict[str, Path]) -> dict:
    """The frozen generator's weighted modes at every distinct pool state, computed once per experiment
    (every seed's `wav` runs read them: the generator and the pool are the same for all seeds)."""
    from wav.data.io import load_transitions
    from wav.domains.minigrid import frozen_subgoals
    from wav.runtime import set_threads
    from wav.cycle import distinct_rows

    import torch

    set_threads(1)
    t0 = time.perf_counter()
    model = subgoal_model(exp, paths)
    if _cached_proposals(exp, paths, model) is not None:
        return {"kind": "proposals", "seconds": 0.0}
    states = torch.from_numpy(load_transitions(paths["pool"]).features()[0])
    sub = frozen_subgoals(model)
    sub.warm(states[distinct_rows(states)[0]])
    key = _fingerprint(model, paths["pool"])
    atomic_write(proposals_path(exp), lambda tmp: np.savez(tmp, fingerprint=key, **sub.export_modes()))
    return {"kind": "proposals", "seconds": time.perf_counter() - t0, "records": records(proposals_path(exp))}


def _fit_job(exp: AcquisitionExperiment, paths: dict[str, Path], seed: int, part: str) -> dict:
    """One seed-set model of one seed (and, for the world model, the round-0 evaluation every strategy shares)."""
    from wav.data.io import load_transitions
    from wav.loop import train_shared_part
    from wav.runtime import set_threads

    set_threads(1)
    t0 = time.perf_counter()
    model = train_shared_part(exp.domain, load_transitions(paths["seed"]), exp.round, seed, part)
    start = None
    if part == "world_model":
        data = _pool_data(exp, paths)
        start = {"metrics": exp.domain.evaluate(model, data), "oracle": pool_oracle(exp.domain, model, data.pool)}
    return {"kind": "fit", "seed": seed, "part": part, "model": model, "start": start, "seconds": time.perf_counter() - t0}


def _strategy_job(exp: AcquisitionExperiment, paths: dict[str, Path], seed: int, strategy: str, parts: dict, start: dict) -> dict:
    """One (strategy, seed) run from the seed's shared models and their round-0 records (`_fit_job`)."""
    from wav.acquire import make_strategy
    from wav.loop import shared_models, shared_parts, train_shared_part
    from wav.runtime import set_threads

    set_threads(1)
    t0 = time.perf_counter()
    data = _pool_data(exp, paths)
    from wav.domains.minigrid import frozen_subgoals

    uses = make_strategy(strategy)
    parts = dict(parts)
    for part in shared_parts([uses]):  # a seed-set model that only this run uses is fit here
        if part not in parts:
            parts[part] = train_shared_part(exp.domain, data.seed_set, exp.round, seed, part)
    uses_generator = uses.subgoal
    shared = shared_models(frozen_subgoals(subgoal_model(exp, paths)) if uses_generator else None, parts)
    table = _cached_proposals(exp, paths, shared.subgoal.model) if uses_generator and hasattr(shared.subgoal, "import_modes") else None
    if table is not None:
        shared.subgoal.import_modes(table)
    extra = {"data": {k: str(v) for k, v in paths.items()}, "experiment": asdict(exp), "settings": settings(exp, strategy, seed)}
    run_pool(exp.domain, strategy, seed, data, shared, exp.protocol, exp.round, run_dir(exp, strategy, seed), extra, start["metrics"], start["oracle"])
    return {"kind": "strategy", "seed": seed, "strategy": strategy, "seconds": time.perf_counter() - t0, "records": records(run_dir(exp, strategy, seed))}


def _job(kind: str, *args) -> dict:
    return {"proposals": _proposals_job, "fit": _fit_job, "strategy": _strategy_job}[kind](*args)


def run(exp: AcquisitionExperiment, progress: bool = True) -> dict:
    """Run (or resume) every (strategy, seed) and write the report; returns results.json's content.

    Two waves of parallel jobs: (1) the seed-set fits, one job per (seed, model) for the world model
    and for each model that several runs of the seed share, and the generator's proposals over the pool
    (once per experiment); (2) one job per (strategy, seed), longest first, which fits any seed-set
    model that only it uses (usually the sparse inverse model of `wav`).
    Every run draws from its own (seed, strategy) streams, so the schedule never changes a result."""
    from wav.acquire import make_strategy

    if exp.pretrain not in PRETRAIN_CHOICES:
        raise ValueError(f"pretrain must be one of {PRETRAIN_CHOICES}, got {exp.pretrain!r}")
    if exp.pretrain_epochs is not None and (exp.pretrain_epochs < 1 or exp.pretrain == "none"):
        raise ValueError(f"pretrain_epochs needs pretraining (--pretrain recorded|inferred) and must be >= 1, got {exp.pretrain_epochs} with pretrain {exp.pretrain!r}")
    if exp.distractors < 0 or not 0 <= exp.noise_floors <= 4 or 3 + exp.distractors + exp.noise_floors > 14:
        raise ValueError(f"distractors >= 0 and noise floors 0..4 must fit the 14 free cells with the 3 task objects, got {exp.distractors} + {exp.noise_floors}")
    if (exp.distractors or exp.noise_floors) and (exp.pool or exp.seed_data or exp.test_data or exp.video):
        raise ValueError("distractors and noise floors describe the worlds this experiment collects; they do not combine with given data files")
    check_resume({run_dir(exp, s, seed): settings(exp, s, seed) for seed in exp.seeds for s in exp.strategies}, exp.force)  # before any work
    if exp.backend == "ray":
        connect_ray(exp.ray_address)  # an unreachable cluster fails here, before anything is written
        exp = absolute(exp)
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = prepare_data(exp)
    subgoal_model(exp, paths)  # train once before the jobs fan out
    pretrained = pretrained_world(exp, paths, progress)
    t0 = time.perf_counter()
    todo = [(seed, s) for seed in exp.seeds for s in exp.strategies if not is_done(run_dir(exp, s, seed))]
    skipped = len(exp.seeds) * len(exp.strategies) - len(todo)
    if skipped and progress:
        print(f"resume: {skipped} of {len(exp.seeds) * len(exp.strategies)} runs already finished, skipped", file=sys.stderr)
    fit_plan, wave2 = wave_plan(todo)
    # wave 1 fits the world model of every seed, the inverse models and any other seed-set model that two or more runs share
    wave1 = [("fit", exp, paths, seed, part) for seed, part in fit_plan]
    if any(make_strategy(s).subgoal for _, s in todo):
        wave1.insert(0, ("proposals", exp, paths))
    fits = run_jobs(_job, wave1, exp.backend, exp.jobs, exp.ray_address, desc="seed-set fits" if progress else None, ship=inputs(exp, paths))
    t1 = time.perf_counter()
    parts = {seed: {} for seed, _ in todo}
    starts = {}
    for f in fits:
        if f["kind"] == "fit":
            parts[f["seed"]][f["part"]] = f["model"]
            if f["start"] is not None:
                starts[f["seed"]] = f["start"]
    runs = run_jobs(_job, [("strategy", exp, paths, seed, s, parts[seed], starts[seed]) for seed, s in wave2], exp.backend, exp.jobs, exp.ray_address,
                    desc="strategy runs" if progress else None, ship=inputs(exp, paths))
    wall = time.perf_counter() - t0
    results = report(exp)
    n_seeds = len({seed for seed, _ in todo})
    results["seconds_per_seed"] = wall / n_seeds if n_seeds else 0.0
    results["cpu_seconds_per_seed"] = sum(j["seconds"] for j in fits + runs) / n_seeds if n_seeds else 0.0
    results["wall_seconds"] = wall
    results["wave_seconds"] = {"fits": t1 - t0, "runs": wall - (t1 - t0)}
    results["job_seconds"] = [{k: v for k, v in j.items() if k not in ("model", "start", "records")} for j in fits + runs]
    results["jobs"] = exp.jobs
    if pretrained is not None:
        results["pretrain"] = pretrained
    write_json(out / "results.json", results)
    return results


def final_rows(exp: AcquisitionExperiment) -> dict[str, dict[int, dict]]:
    """strategy -> seed -> the last metrics row of each finished run."""
    out = {}
    for s in exp.strategies:
        for seed in exp.seeds:
            rows = read_metrics(run_dir(exp, s, seed))
            if rows and is_done(run_dir(exp, s, seed)):
                out.setdefault(s, {})[seed] = rows[-1]
    return out


def report(exp: AcquisitionExperiment) -> dict:
    """results.json (mean, 95% CI per metric; paired wav - X), table.md and figure.png, from run records."""
    rows = final_rows(exp)
    extra = sorted({k for by_seed in rows.values() for r in by_seed.values() for k in r if k.endswith(("/pred_error", "/dynamic_accuracy"))})
    strategies = {}
    for s, by_seed in rows.items():
        entry = {"seeds": sorted(by_seed)}
        for m in METRICS + tuple(extra):
            mean, ci, clipped = metric_ci([r.get(m, float("nan")) for r in by_seed.values()], m)
            entry[m], entry[f"{m}_ci"] = mean, ci
            if clipped:
                entry.setdefault("clipped", []).append(m)
        strategies[s] = entry
    paired = {}
    ref = "wav" if "wav" in rows else None
    if ref:
        for s in rows:
            if s == ref:
                continue
            common = sorted(set(rows[ref]) & set(rows[s]))
            paired[s] = {m: paired_difference([rows[ref][k].get(m, np.nan) for k in common], [rows[s][k].get(m, np.nan) for k in common]) for m in ("pred_error", "afs", *(e for e in extra if e.endswith("/pred_error")))}
    curves = learning_curves(exp)
    results = {"strategies": strategies, "paired_wav_minus": paired, "curves": curves, "sample_efficiency": sample_efficiency(curves),
               "preset": exp.preset, "models": exp.domain.models, "test_overlap": exp.test_overlap, "n_seeds": len(exp.seeds)}
    return write_report(exp.out, results, markdown_table, plot)


def learning_curves(exp: AcquisitionExperiment) -> dict:
    """strategy -> {labels: [...], pred_error: [...], ci: [[lo, hi], ...]} over rounds."""
    out = {}
    for s in exp.strategies:
        per_round: dict[int, list] = {}
        labels = {}
        for seed in exp.seeds:
            for r in read_metrics(run_dir(exp, s, seed)):
                per_round.setdefault(r["round"], []).append(r["pred_error"])
                labels[r["round"]] = r["labels"]
        if per_round:
            rounds = sorted(per_round)
            stats = [mean_ci(per_round[r], bounds=RANGES["pred_error"]) for r in rounds]
            out[s] = {"labels": [labels[r] for r in rounds], "acquired": [labels[r] - labels[rounds[0]] for r in rounds],
                      "pred_error": [m for m, _, _ in stats], "ci": [[lo, hi] for _, lo, hi in stats]}
    return out
