"""The robot online experiment (issue 13 item 6): Algorithm 1 in a manipulation simulator through the shared online
loop (`wav.loop.run_online`) and the manipulation domain.

Per seed: the RSSM (and, for the strategies that need them, the sparse inverse model, an RSSM ensemble and the
action-free trajectory generator) are fit once on the warm-up partition of a pool file; the generator reads the
states of the warm-up and explore partitions only, never their actions. Each strategy then acts in the task's
simulator for `steps` env steps from the same episode seeds, labels every step it takes, refits the world model
(and WAV its inverse model) on all labels every `update_every` steps, and is evaluated then by the 32-step
open-loop error on the pool's eval partition. `wav`: K subgoal sequences from the generator -> inferred actions
-> the RSSM rolled under them -> execute the first action of the most surprising one. `random`: uniform actions.
`ensemble`: the most disagreed-on of K uniform candidate actions (and 30% uniform picks, the registry's mix).
`run()` writes `<out>/runs/<strategy>/seed<k>/{config.json, metrics.jsonl}`; `report()` reads only those.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.config import OnlineConfig, RoundConfig, ScoringConfig, preset as lookup
from wav.domains.manipulation import DOMAIN_PRESETS, ManipulationDomain
from wav.experiments.common import check_resume, connect_ray, file_sha1, is_done, read_metrics, records, run_jobs, unfinished_by_seed, write_json, write_report
from wav.experiments.robot_acquisition import ROUND_PRESETS as POOL_ROUNDS, RobotAcquisitionExperiment, load_data, pool_file
from wav.stats import RANGES, mean_ci, paired_difference

STRATEGIES = ("random", "ensemble", "wav")
ALLOWED = ("random", "ensemble", "wav", "wav-dense")
"""strategies that can act online here: the privileged ones would need every candidate's true outcome"""
K = 16
"""subgoal sequences (wav) or candidate actions (ensemble) per step"""

ONLINE_PRESETS: dict[str, OnlineConfig] = {
    "debug": OnlineConfig(steps=20, update_every=10, episode_steps=50),
    "cpu": OnlineConfig(steps=400, update_every=100, episode_steps=50),
    "paper": OnlineConfig(steps=5000, update_every=500, episode_steps=50),
}


@dataclass(frozen=True)
class RobotOnlineExperiment:
    """Which task, data, strategies and seeds run online, and how."""

    task: str = "PullCube"
    """the simulator task (checked against the pool file)"""
    data: str = "runs/robot-PullCube/pool.hdf5"
    """the pool file: warmup_<N> (labelled seed set), explore (action-free states for the generator), eval"""
    warmup: int = 50
    out: str = "runs/robot-online"
    seeds: tuple[int, ...] = tuple(range(5))
    strategies: tuple[str, ...] = STRATEGIES
    preset: str = "cpu"
    """model sizes, schedules and the step budget: debug | cpu | paper"""
    steps: int | None = None
    """env steps (default: the preset's)"""
    update_every: int | None = None
    """refit every U steps (default: the preset's)"""
    horizon: int = 4
    """steps of each generated subgoal sequence"""
    backend: str = "local"
    jobs: int = 2
    ray_address: str | None = None
    force: bool = False

    @property
    def domain(self) -> ManipulationDomain:
        return replace(lookup(DOMAIN_PRESETS, self.preset), task=self.task, images=False)  # the online loop observes states

    @property
    def round(self) -> RoundConfig:
        return replace(lookup(POOL_ROUNDS, self.preset), scoring=ScoringConfig(k=K, mc_passes=1))

    @property
    def online(self) -> OnlineConfig:
        base = lookup(ONLINE_PRESETS, self.preset)
        return replace(base, steps=self.steps or base.steps, update_every=self.update_every or base.update_every)

    @property
    def pool(self) -> RobotAcquisitionExperiment:
        return RobotAcquisitionExperiment(task=self.task, data=self.data, warmup=self.warmup, preset=self.preset)


def settings(exp: RobotOnlineExperiment, strategy: str, seed: int, digest: str) -> dict:
    return {"strategy": strategy, "seed": seed, "task": exp.task, "data": os.path.realpath(pool_file(exp.data)), "data_sha1": digest,
            "warmup": exp.warmup, "horizon": exp.horizon, "domain": asdict(exp.domain), "round": asdict(exp.round), "online": asdict(exp.online)}


def run_dir(exp: RobotOnlineExperiment, strategy: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / strategy / f"seed{seed}"


def check(exp: RobotOnlineExperiment) -> None:
    """Refuse what cannot run, in one line, before any work."""
    from wav.acquire import make_strategy

    for s in exp.strategies:
        make_strategy(s)
        if s not in ALLOWED:
            raise ValueError(f"--strategies: '{s}' cannot act online in a simulator here (it reads every candidate's true outcome); "
                             f"choose from {', '.join(ALLOWED)}")
    if exp.online.steps < exp.online.update_every:
        raise ValueError(f"--steps {exp.online.steps} is below --update-every {exp.online.update_every}: no refit would happen")
    load_data(exp.pool)


def _seed_job(exp: RobotOnlineExperiment, seed: int, strategies: tuple[str, ...], digest: str) -> dict:
    from wav.acquire import make_strategy
    from wav.loop import run_online, shared_models, shared_parts, train_shared_part
    from wav.runtime import set_threads

    set_threads(1)
    t0 = time.perf_counter()
    data = load_data(exp.pool)
    domain = exp.domain
    needs = [make_strategy(s) for s in strategies]
    parts, fit_seconds = {}, {}
    for part in shared_parts(needs):
        t = time.perf_counter()
        parts[part] = train_shared_part(domain, data.seed_set, exp.round, seed, part)
        fit_seconds[part] = time.perf_counter() - t
    generator = None
    if any(s.subgoal for s in needs):
        t = time.perf_counter()
        generator = domain.fit_generator(domain.concat([data.seed_set, data.pool]), seed, horizon=exp.horizon)
        fit_seconds["generator"] = time.perf_counter() - t
    run_seconds = {}
    for s in needs:
        t = time.perf_counter()
        mine = {p: copy.deepcopy(parts[p]) for p in ("world_model", *s.parts)}
        shared = shared_models(generator if s.subgoal else None, mine)
        extra = {"data": str(pool_file(exp.data)), "experiment": asdict(exp), "settings": settings(exp, s.name, seed, digest)}
        run_online(domain, s.name, seed, data, shared, exp.online, exp.round, run_dir(exp, s.name, seed), extra)
        run_seconds[s.name] = time.perf_counter() - t
    return {"seed": seed, "seconds": time.perf_counter() - t0, "fit_seconds": fit_seconds, "run_seconds": run_seconds,
            "records": records(*(run_dir(exp, s, seed) for s in strategies))}


def run(exp: RobotOnlineExperiment, progress: bool = True) -> dict:
    """Validate, run (or resume) every (strategy, seed), write the report; returns results.json's content."""
    check(exp)
    digest = file_sha1(pool_file(exp.data))
    check_resume({run_dir(exp, s, seed): settings(exp, s, seed, digest) for seed in exp.seeds for s in exp.strategies}, exp.force)
    if exp.backend == "ray":
        connect_ray(exp.ray_address)
        exp = replace(exp, out=os.path.abspath(exp.out), data=os.path.abspath(pool_file(exp.data)))
    Path(exp.out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    todo = unfinished_by_seed(exp.seeds, exp.strategies, lambda s, seed: run_dir(exp, s, seed), progress)
    jobs = run_jobs(_seed_job, [(exp, seed, s, digest) for seed, s in todo.items()], exp.backend, exp.jobs, exp.ray_address,
                    desc="seeds" if progress else None, ship=[pool_file(exp.data)])
    results = report(exp)
    results["wall_seconds"] = time.perf_counter() - t0
    results["seconds_per_seed"] = results["wall_seconds"] / len(todo) if todo else 0.0
    results["job_seconds"] = [{k: v for k, v in j.items() if k != "records"} for j in jobs]
    write_json(Path(exp.out) / "results.json", results)
    return results


# --------------------------------------------------------------------------- report (run records only)


def report(exp: RobotOnlineExperiment) -> dict:
    """results.json (error vs env steps: mean and 95% CI over seeds; paired wav - X at every step count),
    table.md and figure.png."""
    rows = {s: {seed: read_metrics(run_dir(exp, s, seed)) for seed in exp.seeds if is_done(run_dir(exp, s, seed))} for s in exp.strategies}
    rows = {s: v for s, v in rows.items() if v}
    curves, final = {}, {}
    for s, by_seed in rows.items():
        steps = sorted({r["steps"] for v in by_seed.values() for r in v})
        at = {t: [next(r["pred_error"] for r in v if r["steps"] == t) for v in by_seed.values() if any(r["steps"] == t for r in v)] for t in steps}
        stats = [mean_ci(at[t], bounds=RANGES["pred_error"]) for t in steps]
        curves[s] = {"steps": steps, "pred_error": [m for m, _, _ in stats], "ci": [[lo, hi] for _, lo, hi in stats],
                     "min": [float(np.min(at[t])) for t in steps], "max": [float(np.max(at[t])) for t in steps]}
        final[s] = {"pred_error": stats[-1][0], "pred_error_ci": [stats[-1][1], stats[-1][2]], "seeds": sorted(by_seed)}
    paired = {}
    if "wav" in rows:
        for s in rows:
            if s == "wav":
                continue
            common = sorted(set(rows["wav"]) & set(rows[s]))
            steps = sorted({r["steps"] for k in common for r in rows["wav"][k]} & {r["steps"] for k in common for r in rows[s][k]})
            paired[s] = {str(t): paired_difference([_at(rows["wav"][k], t) for k in common], [_at(rows[s][k], t) for k in common]) for t in steps}
    results = {"task": exp.task, "warmup": exp.warmup, "preset": exp.preset, "n_seeds": len(exp.seeds), "online": asdict(exp.online),
               "horizon": exp.horizon, "k": K, "strategies": final, "curves": curves, "paired_wav_minus": paired}
    return write_report(exp.out, results, markdown_table, plot)


def _at(rows: list[dict], steps: int) -> float:
    return next(r["pred_error"] for r in rows if r["steps"] == steps)


def markdown_table(results: dict) -> str:
    o = results["online"]
    lines = [f"Robot online (Algorithm 1) on {results['task']}: warm-up {results['warmup']} trajectories, {o['steps']} env steps, refit every "
             f"{o['update_every']}, {results['n_seeds']} seeds, preset `{results['preset']}`, K = {results['k']}, subgoal horizon {results['horizon']}. "
             "32-step open-loop error on the eval partition, mean [95% CI] (min-max over seeds).", ""]
    steps = next(iter(results["curves"].values()))["steps"] if results["curves"] else []
    lines += ["| strategy | " + " | ".join(f"{t} steps" for t in steps) + " | wav − X at the end (p) |", "|---|" + "---|" * (len(steps) + 1)]
    for s, c in results["curves"].items():
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}] ({a:.2f}-{b:.2f})" for m, (lo, hi), a, b in zip(c["pred_error"], c["ci"], c["min"], c["max"])]
        pd = results["paired_wav_minus"].get(s, {}).get(str(steps[-1])) if steps else None
        diff = f"{pd['mean']:+.3f} (p={pd['p_ttest']:.3g})" if pd and pd.get("mean") is not None and np.isfinite(pd["mean"]) else "—"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wav.data.io import atomic_write

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for s, c in results["curves"].items():
        x, y = np.array(c["steps"]), np.array(c["pred_error"], float)
        lo, hi = np.array(c["ci"], float).T
        ax.plot(x, y, marker="o", label=s, color="#d62728" if s == "wav" else None)
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xlabel("env steps (acquired labels)")
    ax.set_ylabel("32-step open-loop error (eval)")
    ax.legend(fontsize=8)
    ax.set_title(f"{results['task']}: online exploration, {results['n_seeds']} seeds (95% CI)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
