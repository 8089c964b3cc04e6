"""Online WAV-guided exploration (Algorithm 1, which the authors' release does not implement) against
random, uncertainty- and ensemble-driven action choice at equal env-step budgets; error vs labels."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.experiments.acquisition import AcquisitionExperiment, absolute, inputs, prepare_data, subgoal_model
from wav.experiments.common import check_resume, connect_ray, efficiency_sentence, is_done, read_metrics, records, run_jobs, sample_efficiency, write_json, write_report
from wav.config import ONLINE_PRESETS, ROUND_PRESETS, OnlineConfig, RoundConfig, preset as lookup
from wav.domains.base import PoolData
from wav.domains.minigrid import MiniGridDomain, domain_preset, frozen_subgoals
from wav.loop import run_online, shared_models, shared_parts, train_shared_part
from wav.stats import RANGES, mean_ci, paired_difference

ONLINE_STRATEGIES = ("random", "uncertainty", "ensemble", "wav")
# extra test sets of the explored env: name -> (collector policy, collection seed, results key suffix, title)
EXTRA_TESTS = {
    "test_explore": ("random", 77_000, "explore", "random play in the explored env, object actions only where they act"),
    "test_uniform": ("uniform", 78_000, "uniform", "uniform-action play in the explored env, as random exploration acts"),
}


@dataclass(frozen=True)
class OnlineExperiment:
    """Seeds, strategies and data of the online comparison (the data options match `acquisition`)."""

    out: str = "runs/online"
    seeds: tuple[int, ...] = tuple(range(10))
    strategies: tuple[str, ...] = ONLINE_STRATEGIES
    preset: str = "paper"
    models: str | None = None
    """model preset overriding the preset's (paper: generic): generic (like the published net) | pointer (pointer heads)"""
    data: AcquisitionExperiment = AcquisitionExperiment()
    """where the seed set, test set, AFS states and action-free corpus come from"""
    explore_test: int = 5000
    """transitions of each extra test set collected in the explored env (0: none), one per policy of
    `explore_policies`. The policy test set's object actions always change something; an explorer's
    mostly do nothing, so these distributions are scored too"""
    explore_policies: tuple[str, ...] = ("random", "uniform")
    """collectors of the extra test sets: random (`test_explore`: the published random play, object actions
    only where they act) and uniform (`test_uniform`: any action at 1/7, the online `random` strategy's choice)"""
    backend: str = "local"
    jobs: int = 2
    ray_address: str | None = None
    force: bool = False
    """redo finished runs whose recorded settings differ from these (default: refuse to mix them)"""
    round_config: RoundConfig | None = None
    """an explicit round config (scoring, refits) instead of the preset's"""
    online_config: OnlineConfig | None = None
    """an explicit online protocol (steps, update interval) instead of the preset's"""

    @property
    def domain(self) -> MiniGridDomain:
        return domain_preset(self.preset, self.models)

    @property
    def round(self) -> RoundConfig:
        return self.round_config or lookup(ROUND_PRESETS, self.preset)

    @property
    def online(self) -> OnlineConfig:
        return self.online_config or lookup(ONLINE_PRESETS, self.preset)


def settings(exp: OnlineExperiment, strategy: str, seed: int) -> dict:
    """What a run's result depends on (compared on resume)."""
    from wav.experiments.acquisition import settings as data_settings

    data = data_settings(exp.data, strategy, seed)["data"]
    return {"strategy": strategy, "seed": seed, "domain": asdict(exp.domain), "round": asdict(exp.round), "online": asdict(exp.online),
            "data": data, "explore_test": exp.explore_test, "explore_policies": list(exp.explore_policies)}


def run_dir(exp: OnlineExperiment, strategy: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / strategy / f"seed{seed}"


def _seed_job(exp: OnlineExperiment, paths: dict, seed: int) -> dict:
    from wav.acquire import make_strategy
    from wav.data.io import load_transitions
    from wav.runtime import set_threads

    set_threads(1)
    todo = [s for s in exp.strategies if not is_done(run_dir(exp, s, seed))]
    if not todo:
        return {"seed": seed, "seconds": 0.0, "ran": []}
    t0 = time.perf_counter()
    domain = exp.domain
    seed_set = load_transitions(paths["seed"])
    data = PoolData(seed_set=seed_set, pool=seed_set.subset(slice(0, 0)), test=load_transitions(paths["test"]),
                    extra_tests={name: load_transitions(paths[name]) for name in EXTRA_TESTS if name in paths},
                    probes=domain.probes(load_transitions(paths["afs"])))
    parts = shared_parts([make_strategy(s) for s in todo])
    shared = shared_models(frozen_subgoals(subgoal_model(exp.data, paths)), {p: train_shared_part(domain, seed_set, exp.round, seed, p) for p in parts})
    for s in todo:
        run_online(domain, s, seed, data, shared, exp.online, exp.round, run_dir(exp, s, seed),
                   {"data": {k: str(v) for k, v in paths.items()}, "settings": settings(exp, s, seed)})
    return {"seed": seed, "seconds": time.perf_counter() - t0, "ran": todo, "records": records(*(run_dir(exp, s, seed) for s in todo))}


def run(exp: OnlineExperiment) -> dict:
    finished = check_resume({run_dir(exp, st, seed): settings(exp, st, seed) for seed in exp.seeds for st in exp.strategies}, exp.force)
    if exp.backend == "ray":
        connect_ray(exp.ray_address)  # an unreachable cluster fails here, before anything is written
        exp = replace(exp, out=os.path.abspath(exp.out), data=absolute(exp.data))
    Path(exp.out).mkdir(parents=True, exist_ok=True)
    paths = prepare_data(exp.data)
    from wav.data.collect import collect
    from wav.experiments.common import cached_transitions

    known = {policy for policy, *_ in EXTRA_TESTS.values()}
    if set(exp.explore_policies) - known:
        raise ValueError(f"explore_policies must be among {sorted(known)}, got {list(exp.explore_policies)}")
    for name, (policy, seed, _, _) in EXTRA_TESTS.items():
        if not exp.explore_test or policy not in exp.explore_policies:
            continue
        path = Path(exp.out) / "data" / f"{name}_{exp.explore_test}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        cached_transitions(path, lambda: collect(exp.domain.env_id, {"box_toggle": exp.domain.box_toggle}, policy, exp.explore_test, seed,
                                                 episode_steps=exp.online.episode_steps)[0])
        paths[name] = path
    subgoal_model(exp.data, paths)
    if finished:
        print(f"resume: {finished} of {len(exp.seeds) * len(exp.strategies)} runs already finished, skipped", file=sys.stderr)
    done = run_jobs(_seed_job, [(exp, paths, s) for s in exp.seeds], exp.backend, exp.jobs, exp.ray_address, desc="online seeds",
                    ship=inputs(exp.data, paths))
    ran = [d for d in done if d["ran"]]
    results = report(exp)
    results["seconds_per_seed"] = float(np.mean([d["seconds"] for d in ran])) if ran else 0.0
    write_json(Path(exp.out) / "results.json", results)
    return results


def report(exp: OnlineExperiment) -> dict:
    """results.json (error vs acquired labels with CIs, final-step stats, paired wav - X, sample efficiency),
    table.md and figure.png, from the run records only."""
    curves, finals = _curves(exp, "pred_error")
    strategies = {s: {**_final(per_seed, "pred_error"), "seeds": sorted(per_seed)} for s, per_seed in finals.items()}
    paired = _paired(finals)
    results = {"strategies": strategies, "curves": curves, "paired_wav_minus": paired, "sample_efficiency": sample_efficiency(curves),
               "preset": exp.preset, "n_seeds": len(exp.seeds), "online": asdict(exp.online), "round": asdict(exp.round)}
    for name, (_, _, suffix, _) in EXTRA_TESTS.items():  # the extra test sets of the explored env
        extra_curves, extra_finals = _curves(exp, f"{name}/pred_error")
        if extra_curves:
            for s, per_seed in extra_finals.items():
                strategies[s].update(_final(per_seed, f"{suffix}_pred_error"))
            results.update({f"curves_{suffix}": extra_curves, f"paired_wav_minus_{suffix}": _paired(extra_finals),
                            f"sample_efficiency_{suffix}": sample_efficiency(extra_curves)})
    return write_report(exp.out, results, markdown_table, plot)


def _curves(exp: OnlineExperiment, key: str) -> tuple[dict, dict]:
    """strategy -> error-vs-steps curve (mean, CI) of metric `key`, and strategy -> seed -> final value."""
    curves, finals = {}, {}
    for s in exp.strategies:
        by_step: dict[int, dict[int, float]] = {}
        for seed in exp.seeds:
            if not is_done(run_dir(exp, s, seed)):
                continue
            for r in read_metrics(run_dir(exp, s, seed)):
                if key in r:
                    by_step.setdefault(r["steps"], {})[seed] = r[key]
        if not by_step:
            continue
        steps = sorted(by_step)
        st = [mean_ci(list(by_step[x].values()), bounds=RANGES["pred_error"]) for x in steps]
        curves[s] = {"acquired": steps, "pred_error": [m for m, _, _ in st], "ci": [[lo, hi] for _, lo, hi in st]}
        finals[s] = by_step[steps[-1]]
    return curves, finals


def _final(per_seed: dict, name: str) -> dict:
    """{name: mean, name_ci: [lo, hi]} of one strategy's final values over seeds."""
    m, lo, hi = mean_ci(list(per_seed.values()), bounds=RANGES["pred_error"])
    return {name: m, f"{name}_ci": [lo, hi]}


def _paired(finals: dict) -> dict:
    if "wav" not in finals:
        return {}
    out = {}
    for s in finals:
        if s != "wav":
            common = sorted(set(finals["wav"]) & set(finals[s]))
            out[s] = paired_difference([finals["wav"][k] for k in common], [finals[s][k] for k in common])
    return out


def _table(title: str, curves: dict, paired: dict) -> list[str]:
    steps = next(iter(curves.values()))["acquired"] if curves else []
    lines = [title, "", "| strategy | " + " | ".join(f"{s} steps" for s in steps) + " | wav − X at the end (p) |", "|---|" + "---|" * (len(steps) + 1)]
    for s, c in curves.items():
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, (lo, hi) in zip(c["pred_error"], c["ci"])]
        pd = paired.get(s)
        lines.append(f"| {s} | " + " | ".join(cells) + " | " + (f"{pd['mean']:+.3f} (p={pd['p_ttest']:.3g})" if pd else "—") + " |")
    return lines


def markdown_table(results: dict) -> str:
    lines = _table(f"Online exploration (Algorithm 1), {results['n_seeds']} seeds, preset `{results['preset']}`: prediction error on the balanced test set, mean [95% CI].",
                   results["curves"], results["paired_wav_minus"])
    lines += efficiency_sentence(results.get("sample_efficiency") or {}, "steps")
    for name, (_, _, suffix, title) in EXTRA_TESTS.items():
        if results.get(f"curves_{suffix}"):
            lines += [""] + _table(f"The same runs on `{name}` ({title}):", results[f"curves_{suffix}"], results[f"paired_wav_minus_{suffix}"])
            lines += efficiency_sentence(results.get(f"sample_efficiency_{suffix}") or {}, "steps")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wav.data.io import atomic_write

    panels = [("curves", "balanced policy test set")] + [(f"curves_{suffix}", name) for name, (_, _, suffix, _) in EXTRA_TESTS.items() if results.get(f"curves_{suffix}")]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels):
        for s, c in results[key].items():
            x = np.array(c["acquired"])
            lo, hi = np.array(c["ci"]).T
            ax.plot(x, c["pred_error"], marker="o", label=s, lw=2.5 if s == "wav" else 1.5)
            ax.fill_between(x, lo, hi, alpha=0.15)
        ax.set_xlabel("env steps (acquired labels)")
        ax.set_ylabel(f"prediction error ({name})")
        ax.set_title(f"Online exploration, {results['n_seeds']} seeds (95% CI)")
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
