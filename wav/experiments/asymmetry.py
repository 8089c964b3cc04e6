"""Why inverse verification is easier (REFERENCE §4, §5): world model vs sparse inverse model dynamic accuracy
over sample size, object count and noise floors (the sparse-vs-vanilla inverse model on unseen
compositions is wav.experiments.idm_ood).

`run_sweep` writes one run dir per (x, seed) (`config.json`, `metrics.jsonl`); the report and figure read
only those records.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.data.io import atomic_write, load_transitions
from wav.experiments.common import cached_transitions, connect_ray, is_done, read_metrics, records, run_jobs, scaled_schedule, write_json
from wav.stats import RANGES, mean_ci, paired_difference
from wav.data.io import Transitions

SWEEPS = {
    "samples": (400, 800, 1200, 1600, 2000),
    "objects": (6, 8, 10, 12, 14),
    "noise": (0, 1, 2, 3, 4),
}
PUBLISHED_SWEEPS = {  # REFERENCE §4 (~, %)
    "samples": {"world_model": [43, 49, 59, 69, 82], "inverse": [87, 93, 94.5, 94.5, 95.5]},
    "objects": {"world_model": [82, 76, 70, 59, 47], "inverse": [95, 95, 95, 95, 95]},
    "noise": {"world_model": [81, 75, 72, 68, 58], "inverse": [95, 95, 94, 94.5, 93.5]},
}


@dataclass(frozen=True)
class AsymmetryExperiment:
    """One sweep of the WM-vs-IDM comparison."""

    sweep: str = "samples"
    """samples | objects | noise"""
    out: str = "runs/asymmetry"
    seeds: tuple[int, ...] = tuple(range(5))
    preset: str = "generic"
    """model preset: generic (the conv world model without pointer heads, like the published one) | paper | debug"""
    train_data: tuple[str, ...] = ()
    """given training files: one (samples, objects) or one per x (noise)"""
    test_data: tuple[str, ...] = ()
    """given test files: one (samples, noise) or one per x (objects)"""
    train_size: int = 2000
    """transitions per generated training set (the samples sweep subsamples it)"""
    test_size: int = 1000
    """transitions per generated test set"""
    xs: tuple[int, ...] = ()
    """x values (default: the published ones)"""
    backend: str = "local"
    jobs: int = 2
    ray_address: str | None = None

    @property
    def x_values(self) -> tuple[int, ...]:
        return self.xs or SWEEPS[self.sweep]


def random_play(objects: int, floors: int, n: int, seed: int) -> Transitions:
    from wav.data.collect import collect

    return collect("WAV/Interact-v0", {"objects": objects, "noise_floors": floors, "box_toggle": "recolor"}, "random", n, seed, episode_steps=50, progress=False)[0]


def sweep_data(exp: AsymmetryExperiment) -> dict[int, tuple[Path, Path]]:
    """x -> (train file, test file); generated random play (box toggle `recolor`, like `o6`) unless given."""
    if exp.sweep not in SWEEPS:
        raise ValueError(f"sweep must be one of {sorted(SWEEPS)}, got {exp.sweep!r}")
    d = Path(exp.out) / exp.sweep / "data"
    d.mkdir(parents=True, exist_ok=True)
    xs = exp.x_values

    def given(files, i, what):
        if not files:
            return None
        if len(files) == 1:
            return files[0]
        if len(files) != len(xs):
            raise ValueError(f"--{what} takes one file or one per x ({len(xs)}), got {len(files)}")
        return files[i]

    out = {}
    for i, x in enumerate(xs):
        objects = x if exp.sweep == "objects" else 6
        floors = x if exp.sweep == "noise" else 0
        tr_objects = 6
        tr_floors = floors if exp.sweep == "noise" else 0
        tr_file = given(exp.train_data, i, "train-data") or d / f"train_o{tr_objects}_n{tr_floors}.npz"
        te_file = given(exp.test_data, i, "test-data") or d / f"test_o{objects}_n0.npz"
        cached_transitions(Path(tr_file), lambda: random_play(tr_objects, tr_floors, exp.train_size, 1000 + tr_floors), str(tr_file) if exp.train_data else None)
        cached_transitions(Path(te_file), lambda: random_play(objects, 0, exp.test_size, 2000 + objects), str(te_file) if exp.test_data else None)
        out[x] = (Path(tr_file), Path(te_file))
    return out


def _sweep_dir(exp: AsymmetryExperiment, x: int, seed: int) -> Path:
    return Path(exp.out) / exp.sweep / "runs" / f"x{x}" / f"seed{seed}"


def _sweep_job(exp: AsymmetryExperiment, xs: tuple[int, ...], files: dict, seed: int) -> dict:
    """Train both models for one seed and score them at each x. Runs that share their training data (the
    objects sweep: one 6-object training set, five test sets) share one pair of models."""
    from wav.config import model_preset
    from wav.evaluate import inverse_metrics, world_model_metrics
    from wav.runtime import set_threads
    from wav.domains.minigrid import train_inverse, train_world_model

    set_threads(1)
    todo = [x for x in xs if not is_done(_sweep_dir(exp, x, seed))]
    if not todo:
        return {}
    p = model_preset(exp.preset)
    models = None
    for x in todo:
        rd = _sweep_dir(exp, x, seed)
        rd.mkdir(parents=True, exist_ok=True)
        train, test = load_transitions(files[x][0]), load_transitions(files[x][1])
        if exp.sweep == "samples":
            if x > len(train):
                raise ValueError(f"{files[x][0]} has {len(train)} transitions; the samples sweep needs {x}")
            train = train.subset(np.sort(np.random.default_rng([seed, x]).choice(len(train), x, replace=False)))
        atomic_write(rd / "config.json", lambda t: Path(t).write_text(json.dumps({"sweep": exp.sweep, "x": x, "seed": seed, "train": str(files[x][0]), "test": str(files[x][1]),
                                                                                "n_train": len(train), "experiment": asdict(exp), "models": asdict(p)}, indent=2, default=str)))
        t0 = time.perf_counter()
        if models is None or exp.sweep != "objects":
            wm, _ = train_world_model(train, p.world_model, scaled_schedule(p.world_model_train, len(train), 120_000), seed)
            inv, _ = train_inverse(train, p.inverse, scaled_schedule(p.inverse_train, len(train), 60_000), seed)
            models = (wm, inv)
        wm, inv = models
        w, i = world_model_metrics(wm, test), inverse_metrics(inv, test, "recolor")
        row = {"x": x, "seed": seed, "world_model": w["dynamic_accuracy"], "inverse": i["dynamic_accuracy"], "inverse_top1": i["accuracy"],
               "world_model_pred_error": w["pred_error"], "mask_size": i["mask_size"], "n_train": len(train)}
        (rd / "metrics.jsonl").write_text(json.dumps(row, sort_keys=True) + "\n")
        (rd / "timing.json").write_text(json.dumps({"seconds": time.perf_counter() - t0}))
        (rd / "done").write_text("ok\n")
    return {"records": records(*(_sweep_dir(exp, x, seed) for x in todo))}


def inverse_ceiling(test: Transitions) -> float:
    """Dynamic accuracy of a perfect inverse model (true dynamics, lowest aliasing action) on a test set:
    below 1 where the data hold state the encoding hides (floors under the agent) or other box semantics."""
    import torch

    from wav.envs.minigrid.oracles import TrueInverseModel
    from wav.evaluate import dynamic_accuracy, execute

    s, sn = test.features()
    a = TrueInverseModel("recolor").infer(torch.from_numpy(s), torch.from_numpy(sn)).numpy()
    return dynamic_accuracy(s, sn, execute(s, a, "recolor"))


def run_sweep(exp: AsymmetryExperiment) -> dict:
    if exp.backend == "ray":
        connect_ray(exp.ray_address)  # an unreachable cluster fails here, before anything is written
        exp = replace(exp, out=os.path.abspath(exp.out), train_data=tuple(map(os.path.abspath, exp.train_data)), test_data=tuple(map(os.path.abspath, exp.test_data)))
    files = sweep_data(exp)
    if exp.sweep == "objects":  # one training set: one job per seed scores every x
        jobs = [(exp, tuple(exp.x_values), files, s) for s in exp.seeds]
    else:
        jobs = [(exp, (x,), files, s) for s in exp.seeds for x in exp.x_values]  # seed-major: whole sweeps finish first
    run_jobs(_sweep_job, jobs, exp.backend, exp.jobs, exp.ray_address, desc="asymmetry runs", ship=[p for pair in files.values() for p in pair])
    return report_sweep(exp, files)


def report_sweep(exp: AsymmetryExperiment, files: dict) -> dict:
    xs = list(exp.x_values)
    res = {"sweep": exp.sweep, "x": xs, "world_model": [], "world_model_ci": [], "inverse": [], "inverse_ci": [], "inverse_ceiling": [], "paired": [], "n_seeds": len(exp.seeds)}
    for x in xs:
        rows = [r for s in exp.seeds for r in read_metrics(_sweep_dir(exp, x, s))]
        w, i = [r["world_model"] for r in rows], [r["inverse"] for r in rows]
        wm, wlo, whi = mean_ci(w, bounds=RANGES["dynamic_accuracy"])
        im, ilo, ihi = mean_ci(i, bounds=RANGES["dynamic_accuracy"])
        res["world_model"].append(wm)
        res["world_model_ci"].append([wlo, whi])
        res["inverse"].append(im)
        res["inverse_ci"].append([ilo, ihi])
        res["paired"].append(paired_difference(i, w))
        res["inverse_ceiling"].append(inverse_ceiling(load_transitions(files[x][1])))
    out = Path(exp.out) / exp.sweep
    write_json(out / "results.json", res)
    (out / "table.md").write_text(sweep_table(res))
    plot_sweep(res, out / "figure.png")
    return res


def sweep_table(res: dict) -> str:
    pub = PUBLISHED_SWEEPS[res["sweep"]]
    lines = [f"World model vs sparse inverse model, dynamic accuracy (%), sweep `{res['sweep']}`, {res['n_seeds']} seeds, mean [95% CI] (published).", "",
             "| x | world model | inverse model | inverse − WM (p) | perfect-inverse ceiling |", "|---|---|---|---|---|"]
    for j, x in enumerate(res["x"]):
        w, (wl, wh) = 100 * res["world_model"][j], res["world_model_ci"][j]
        i, (il, ih) = 100 * res["inverse"][j], res["inverse_ci"][j]
        pd = res["paired"][j]
        lines.append(f"| {x} | {w:.1f} [{100*wl:.1f}, {100*wh:.1f}] ({pub['world_model'][j] if j < len(pub['world_model']) else '—'}) | "
                     f"{i:.1f} [{100*il:.1f}, {100*ih:.1f}] ({pub['inverse'][j] if j < len(pub['inverse']) else '—'}) | "
                     f"{100*pd['mean']:+.1f} (p={pd['p_ttest']:.2g}) | {100*res['inverse_ceiling'][j]:.1f} |")
    return "\n".join(lines) + "\n"


def plot_sweep(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"samples": "labelled transitions", "objects": "objects at test time (trained on 6)", "noise": "noise floors in training data (tested clean)"}
    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = np.array(res["x"])
    for key, colour, name in (("world_model", "#1f77b4", "world model"), ("inverse", "#d62728", "sparse inverse model")):
        y = 100 * np.array(res[key])
        lo, hi = 100 * np.array(res[f"{key}_ci"]).T
        ax.plot(x, y, marker="o", color=colour, label=name)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2)
        ax.plot(x, PUBLISHED_SWEEPS[res["sweep"]][key][: len(x)], ls=":", color=colour, label=f"{name} (published)")
    ax.plot(x, 100 * np.array(res["inverse_ceiling"]), ls="--", color="grey", label="perfect inverse ceiling")
    ax.set_xlabel(labels[res["sweep"]])
    ax.set_ylabel("dynamic accuracy (%)")
    ax.set_title(f"Forward vs inverse, {res['n_seeds']} seeds (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


# --------------------------------------------------------------------------- sparse vs vanilla on unseen compositions
