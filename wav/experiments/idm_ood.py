"""Sparse vs vanilla inverse model on unseen compositions (REFERENCE §4, Proposition 3.1): per-action top-1
accuracy out of distribution, and the learned masks in agent-centred coordinates.

`run_idm_ood` writes one run dir per (protocol, variant, seed) (`config.json`, `metrics.jsonl`,
`mask_ego.npy`); the report and figure read only those records.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wav.data.io import atomic_write, load_transitions
from wav.experiments.asymmetry import random_play
from wav.experiments.common import cached_transitions, connect_ray, is_done, read_metrics, records, run_jobs, scaled_schedule, write_json
from wav.stats import mean_ci, metric_ci, paired_difference
from wav.data.io import Transitions

PUBLISHED_IDM_OOD = {"vanilla": {"pickup": 100, "drop": 95, "toggle": 72, "swap": 49}, "sparse": {"pickup": 100, "drop": 100, "toggle": 98, "swap": 72}}

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
    tr = random_play(6, 3, 60 * n_per_action * 7, seed)
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
                m, ci, clipped = metric_ci([r["per_action"].get(a, np.nan) for r in rows.values()], "accuracy")
                entry[v][a] = {"mean": m, "ci": ci, "clipped": clipped}
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
            f = lambda d: "—" if not np.isfinite(d["mean"]) else f"{100*d['mean']:.1f} [{100*d['ci'][0]:.1f}, {100*d['ci'][1]:.1f}]" + ("*" if d.get("clipped") else "")
            lines.append(f"| {a} | {f(v)} ({PUBLISHED_IDM_OOD['vanilla'][a]}) | {f(s)} ({PUBLISHED_IDM_OOD['sparse'][a]}) | "
                         f"{100*pd['mean']:+.1f} (p={pd['p_ttest']:.2g}) | {e['sparse']['n_test_per_action'].get(a, '—')} |")
        lines += ["", f"mean mask size (features kept of 110): sparse {e['sparse']['mask_size']:.1f}, vanilla {e['vanilla']['mask_size']:.1f}", ""]
    if any(d.get("clipped") for e in res["protocols"].values() for v in ("sparse", "vanilla") for d in e[v].values() if isinstance(d, dict)):
        lines += ["\\* the 95% t-interval left [0, 100] and is clipped to it.", ""]
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
