"""Why inverse verification is easier (REFERENCE §4, §5): world model vs sparse inverse model dynamic accuracy
over sample size, object count and noise floors; sparse vs vanilla inverse model on unseen compositions.

`run_sweep` / `run_idm_ood` write one run dir per (x, seed) (`config.json`, `metrics.jsonl`); the reports
and figures read only those records.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.data.io import atomic_write, load_transitions
from wav.experiments.common import cached_transitions, connect_ray, is_done, read_metrics, records, run_jobs, scaled_schedule, write_json
from wav.stats import mean_ci, paired_difference
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
PUBLISHED_IDM_OOD = {"vanilla": {"pickup": 100, "drop": 95, "toggle": 72, "swap": 49}, "sparse": {"pickup": 100, "drop": 100, "toggle": 98, "swap": 72}}


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


def _random_play(objects: int, floors: int, n: int, seed: int) -> Transitions:
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
        cached_transitions(Path(tr_file), lambda: _random_play(tr_objects, tr_floors, exp.train_size, 1000 + tr_floors), str(tr_file) if exp.train_data else None)
        cached_transitions(Path(te_file), lambda: _random_play(objects, 0, exp.test_size, 2000 + objects), str(te_file) if exp.test_data else None)
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
        wm, wlo, whi = mean_ci(w)
        im, ilo, ihi = mean_ci(i)
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

OOD_ACTIONS = ("pickup", "drop", "toggle", "swap")


@dataclass(frozen=True)
class IdmOodExperiment:
    """Sparse vs vanilla inverse model, per-action accuracy on unseen action-object compositions."""

    out: str = "runs/idm-ood"
    seeds: tuple[int, ...] = tuple(range(10))
    preset: str = "paper"
    ood_train: str | None = None
    """Key-Delivery episodes (default: collected by our env)"""
    ood_test: str | None = None
    """Ball-Delivery episodes (default: collected by our env)"""
    fewshot_train: str | None = None
    """few-shot 3-noise train file (default: 29 per action from our env, 6 objects, 3 noise floors)"""
    fewshot_test: str | None = None
    size: int = 5400
    """transitions per generated OOD set"""
    train_size: int = 1000
    """training transitions drawn (per seed) from a larger training set"""
    backend: str = "local"
    jobs: int = 2
    ray_address: str | None = None


def _few_shot(n_per_action: int, seed: int) -> Transitions:
    """n per action of random play with 6 objects and 3 noise floors (box toggle recolor)."""
    tr = _random_play(6, 3, 60 * n_per_action * 7, seed)
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(tr.actions == a), n_per_action, replace=False) for a in range(7)])
    return tr.subset(np.sort(pick))


def idm_ood_data(exp: IdmOodExperiment) -> dict[str, tuple[Path, Path, str]]:
    from wav.data.collect import collect

    d = Path(exp.out) / "data"
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    tr = exp.ood_train or str(d / "ood_train.npz")
    te = exp.ood_test or str(d / "ood_test.npz")
    cached_transitions(Path(tr), lambda: collect("WAV/KeyDelivery-v0", None, "scripted", exp.size, 3000, progress=False)[0], exp.ood_train)
    cached_transitions(Path(te), lambda: collect("WAV/BallDelivery-v0", None, "scripted", exp.size, 4000, progress=False)[0], exp.ood_test)
    files["compositions"] = (Path(tr), Path(te), "swap")
    ftr = exp.fewshot_train or str(d / "fewshot_train.npz")
    fte = exp.fewshot_test or str(d / "fewshot_test.npz")
    cached_transitions(Path(ftr), lambda: _few_shot(29, 5000), exp.fewshot_train)
    cached_transitions(Path(fte), lambda: _few_shot(29, 6000), exp.fewshot_test)
    files["fewshot"] = (Path(ftr), Path(fte), "recolor")
    return files


def _ood_dir(exp: IdmOodExperiment, protocol: str, variant: str, seed: int) -> Path:
    return Path(exp.out) / "runs" / protocol / variant / f"seed{seed}"


def _ood_job(exp: IdmOodExperiment, protocol: str, files: tuple[Path, Path, str], variant: str, seed: int) -> dict:
    import torch

    from wav.config import model_preset
    from wav.evaluate import inverse_metrics
    from wav.runtime import set_threads
    from wav.domains.minigrid import train_inverse

    set_threads(1)
    rd = _ood_dir(exp, protocol, variant, seed)
    if is_done(rd):
        return {}
    rd.mkdir(parents=True, exist_ok=True)
    p = model_preset(exp.preset)
    cfg = replace(p.inverse, dense=(variant == "vanilla"))
    train, test = load_transitions(files[0]), load_transitions(files[1])
    if len(train) > exp.train_size:  # a fresh subset per seed (the same for both variants)
        train = train.subset(np.sort(np.random.default_rng([seed, 7]).choice(len(train), exp.train_size, replace=False)))
    schedule = scaled_schedule(p.inverse_train, len(train), 60_000)  # 300 epochs of 203 samples, 60 of 1,000
    atomic_write(rd / "config.json", lambda t: Path(t).write_text(json.dumps({"protocol": protocol, "variant": variant, "seed": seed, "train": str(files[0]),
                                                                            "test": str(files[1]), "n_train": len(train), "inverse": asdict(cfg), "train_schedule": asdict(schedule)}, indent=2)))
    model, _ = train_inverse(train, cfg, schedule, seed)
    m = inverse_metrics(model, test, files[2])
    s, sn = test.features()
    with torch.no_grad():
        _, mask = model.infer_with_mask(torch.from_numpy(s), torch.from_numpy(sn))
    ego, carried_kept = egocentric_mask(s, mask.float().numpy())
    row = {"seed": seed, "per_action": m["per_action"], "accuracy": m["accuracy"], "dynamic_accuracy": m["dynamic_accuracy"], "mask_size": m["mask_size"],
           "n_test_per_action": {a: int((test.actions == k).sum()) for k, a in enumerate(("left", "right", "forward", "pickup", "drop", "toggle", "swap"))}}
    row["carried_kept"] = carried_kept
    (rd / "metrics.jsonl").write_text(json.dumps(row, sort_keys=True) + "\n")
    np.save(rd / "mask_ego.npy", ego.astype(np.float32))
    (rd / "done").write_text("ok\n")
    return {"records": records(rd)}


def egocentric_mask(states: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean kept fraction of each cell relative to the agent (11 x 11, row 0 = 5 cells ahead, agent facing up)
    over the cells' three channels, and the mean kept fraction of the two carried features."""
    from wav.envs.minigrid.encoding import DIR_VEC, agent_pose, from_features

    g, _ = from_features(states)
    ax_, ay, d = agent_pose(g)
    n = len(states)
    cells = mask[:, :-2].reshape(n, 6, 6, 3).mean(-1)  # (N, x, y)
    xs, ys = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")  # (x, y)
    fwd, right = DIR_VEC[d], np.stack([-DIR_VEC[d, 1], DIR_VEC[d, 0]], 1)  # (N, 2) each
    rx, ry = xs[None] - ax_[:, None, None], ys[None] - ay[:, None, None]  # (N, 6, 6) offsets from the agent
    ahead = rx * fwd[:, 0, None, None] + ry * fwd[:, 1, None, None]
    side = rx * right[:, 0, None, None] + ry * right[:, 1, None, None]
    total, count = np.zeros((11, 11)), np.zeros((11, 11))
    np.add.at(total, (5 - ahead.ravel(), 5 + side.ravel()), cells.ravel())
    np.add.at(count, (5 - ahead.ravel(), 5 + side.ravel()), 1)
    with np.errstate(invalid="ignore"):
        return total / count, float(mask[:, -2:].mean())


def run_idm_ood(exp: IdmOodExperiment) -> dict:
    if exp.backend == "ray":
        connect_ray(exp.ray_address)  # an unreachable cluster fails here, before anything is written
        exp = replace(exp, out=os.path.abspath(exp.out), **{k: os.path.abspath(getattr(exp, k)) for k in ("ood_train", "ood_test", "fewshot_train", "fewshot_test")
                                                         if getattr(exp, k)})
    files = idm_ood_data(exp)
    jobs = [(exp, proto, f, v, s) for proto, f in files.items() for v in ("sparse", "vanilla") for s in exp.seeds]
    run_jobs(_ood_job, jobs, exp.backend, exp.jobs, exp.ray_address, desc="idm-ood runs", ship=[p for f in files.values() for p in f[:2]])
    return report_idm_ood(exp, files)


def report_idm_ood(exp: IdmOodExperiment, files) -> dict:
    res = {"n_seeds": len(exp.seeds), "protocols": {}}
    for proto in files:
        entry = {}
        per_seed = {}
        for v in ("sparse", "vanilla"):
            rows = {s: r for s in exp.seeds for r in read_metrics(_ood_dir(exp, proto, v, s))}
            per_seed[v] = rows
            entry[v] = {}
            for a in OOD_ACTIONS:
                m, lo, hi = mean_ci([r["per_action"].get(a, np.nan) for r in rows.values()])
                entry[v][a] = {"mean": m, "ci": [lo, hi]}
            entry[v]["mask_size"] = mean_ci([r["mask_size"] for r in rows.values()])[0]
            entry[v]["n_test_per_action"] = next(iter(rows.values()))["n_test_per_action"] if rows else {}
        common = sorted(set(per_seed["sparse"]) & set(per_seed["vanilla"]))
        entry["paired_sparse_minus_vanilla"] = {a: paired_difference([per_seed["sparse"][s]["per_action"].get(a, np.nan) for s in common],
                                                                     [per_seed["vanilla"][s]["per_action"].get(a, np.nan) for s in common]) for a in OOD_ACTIONS}
        res["protocols"][proto] = entry
    out = Path(exp.out)
    write_json(out / "results.json", res)
    (out / "table.md").write_text(idm_ood_table(res))
    plot_idm_ood(exp, res, out / "figure.png")
    return res


def idm_ood_table(res: dict) -> str:
    lines = []
    for proto, e in res["protocols"].items():
        lines += [f"Per-action inverse accuracy (%), `{proto}`, {res['n_seeds']} seeds, mean [95% CI] (published, few-shot file, one seed).", "",
                  "| action | vanilla | sparse | sparse − vanilla (p) | test samples |", "|---|---|---|---|---|"]
        for a in OOD_ACTIONS:
            v, s, pd = e["vanilla"][a], e["sparse"][a], e["paired_sparse_minus_vanilla"][a]
            f = lambda d: "—" if not np.isfinite(d["mean"]) else f"{100*d['mean']:.1f} [{100*d['ci'][0]:.1f}, {100*d['ci'][1]:.1f}]"
            lines.append(f"| {a} | {f(v)} ({PUBLISHED_IDM_OOD['vanilla'][a]}) | {f(s)} ({PUBLISHED_IDM_OOD['sparse'][a]}) | "
                         f"{100*pd['mean']:+.1f} (p={pd['p_ttest']:.2g}) | {e['sparse']['n_test_per_action'].get(a, '—')} |")
        lines += ["", f"mean mask size (features kept of 110): sparse {e['sparse']['mask_size']:.1f}, vanilla {e['vanilla']['mask_size']:.1f}", ""]
    return "\n".join(lines)


def plot_idm_ood(exp: IdmOodExperiment, res: dict, path: Path) -> None:
    """Per-action bars with CIs for each protocol, and where the sparse masks look (mean kept fraction per cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protos = list(res["protocols"])
    fig, axes = plt.subplots(1, 2 * len(protos), figsize=(6 * len(protos) + 4, 3.8), gridspec_kw={"width_ratios": [2, 1] * len(protos)})
    for j, proto in enumerate(protos):
        ax = axes[2 * j]
        e = res["protocols"][proto]
        xs = np.arange(len(OOD_ACTIONS))
        for off, v, c in ((-0.2, "vanilla", "#7f7f7f"), (0.2, "sparse", "#d62728")):
            m = np.array([e[v][a]["mean"] for a in OOD_ACTIONS]) * 100
            ci = np.array([e[v][a]["ci"] for a in OOD_ACTIONS]) * 100
            ax.bar(xs + off, m, 0.4, yerr=np.nan_to_num(np.abs(np.stack([m - ci[:, 0], ci[:, 1] - m]))), capsize=3, color=c, label=v)
        ax.set_xticks(xs, OOD_ACTIONS)
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{proto}: sparse vs vanilla")
        ax.legend(fontsize=7)
        masks = [np.load(_ood_dir(exp, proto, "sparse", s) / "mask_ego.npy") for s in exp.seeds if (_ood_dir(exp, proto, "sparse", s) / "mask_ego.npy").exists()]
        ax = axes[2 * j + 1]
        if masks:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # cells no agent ever saw stay blank
                ego = np.nanmean(masks, 0)
            im = ax.imshow(ego, vmin=0, vmax=1, cmap="magma", extent=(-5.5, 5.5, -5.5, 5.5))
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.plot(0, 0, marker="^", color="cyan", ms=8)
        ax.set_title("sparse mask, agent-centred\n(kept fraction; agent faces up)", fontsize=9)
        ax.set_xlabel("right of agent")
        ax.set_ylabel("ahead of agent")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
