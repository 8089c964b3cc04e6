"""Proposition 3.2 with learned models: the project's MLP world model and sparse continuous inverse model
(wav.models.continuous), trained on the linear-Gaussian world of wav.theory.prop32 whose state carries
d_s - d_z distractor coordinates. Sweeps d_s / d_z and sigma_s and compares the error ratio with the formula.

Errors are excess risks against the world's true conditional means (known in closed form), averaged over
a large fresh test set: forward per state coordinate, inverse per action coordinate times lambda^2 —
the same normalisation as the linear-Gaussian check (docs/theory.md). The least-squares learners of
prop32 are fitted on the same data sets as a reference.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from wav.config import ContinuousInverseConfig, ContinuousWorldModelConfig, TrainConfig
from wav.models.continuous import MLPWorldModel, SparseContinuousInverse
from wav.theory.prop32 import LinearGaussianModel, excess_risk, ols_fit, sample_transitions


@dataclass(frozen=True)
class LearnedConfig:
    """Learned-model sweeps of Proposition 3.2 on a linear-Gaussian world with distractors."""

    seeds: int = 5
    """seeds per sweep point (data, initialisation, minibatches, mask noise)"""
    n: int = 400
    """labelled transitions per training set (10% of them held out for early stopping)"""
    n_test: int = 4000
    """fresh transitions on which the excess risks are averaged"""
    d_z: int = 2
    """action-relevant coordinates"""
    d_a: int = 2
    """action dimension"""
    sigma_a: float = 0.3
    """inverse noise (std of a given z, z')"""
    lam: float = 1.0
    """action gain"""
    d_s_sweep: tuple[int, ...] = (4, 8, 16, 32)
    """state dimensions of the dimensionality sweep (at sigma_s = base_sigma_s)"""
    sigma_s_sweep: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """forward noises of the stochasticity sweep (at d_s = base_d_s)"""
    base_d_s: int = 16
    """state dimension held fixed in the stochasticity sweep"""
    base_sigma_s: float = 1.0
    """forward noise held fixed in the dimensionality sweep"""
    hidden: int = 128
    """hidden units of both models"""
    l1: float = 0.5
    """mask L1 weight of the sparse inverse model (the penalty is a mean over features, so its pull on each
    distractor shrinks with d_s: at d_s = 32, 0.1 keeps 12-19% of the distractors; see docs/theory.md)"""
    epochs: int = 300
    """maximum epochs per fit (early stopping, patience 20)"""
    restarts: int = 1
    """inverse-model fits per data set; the one with the lowest validation loss is kept"""
    debug: bool = False
    """one seed, two points per sweep, 30 epochs, one restart (CI smoke run)"""

    @property
    def runs(self) -> list[tuple[str, int, float]]:
        """(sweep, d_s, sigma_s) for every sweep point."""
        d_s_sweep = self.d_s_sweep[:2] if self.debug else self.d_s_sweep
        sigma_sweep = self.sigma_s_sweep[:2] if self.debug else self.sigma_s_sweep
        return ([("dimensionality", d, self.base_sigma_s) for d in d_s_sweep]
                + [("stochasticity", self.base_d_s, s) for s in sigma_sweep])

    @property
    def n_seeds(self) -> int:
        return 1 if self.debug else self.seeds

    @property
    def train(self) -> TrainConfig:
        return TrainConfig(epochs=30 if self.debug else self.epochs, lr=1e-3, batch_size=64, val_fraction=0.1, patience=20)


@dataclass
class LearnedResult:
    sweep: str
    d_s: int
    d_z: int
    sigma_s: float
    seed: int
    formula: float
    forward: float
    """MLP world model: excess risk per state coordinate"""
    inverse: float
    """sparse inverse model: lambda^2 x excess risk per action coordinate"""
    ratio: float
    ols_forward: float
    ols_inverse: float
    """least squares on the oracle block (z, z'), as in Proposition 3.2"""
    ols_ratio: float
    mask_on_z: float
    """fraction of the action-relevant coordinates the inverse model's mask keeps (test mean)"""
    mask_on_distractors: float
    """fraction of the distractor coordinates the mask keeps (test mean)"""


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def run_one(cfg: LearnedConfig, sweep: str, d_s: int, sigma_s: float, seed: int) -> LearnedResult:
    """Train both models on one data set of cfg.n transitions and measure their excess risks."""
    from wav.train import build, fit

    world = LinearGaussianModel(d_s, cfg.d_a, cfg.d_z, sigma_s, cfg.sigma_a, cfg.lam)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, d_s, int(round(1000 * sigma_s))])))
    P = world.sample_parameters(rng)
    d_a = cfg.d_a
    data = sample_transitions(world, P, 1, cfg.n, rng)[0]  # (n, [s | a | s'])
    test = sample_transitions(world, P, 1, cfg.n_test, rng)[0]
    s, a, sn = data[:, :d_s], data[:, d_s:d_s + d_a], data[:, d_s + d_a:]
    ts, ta, tsn = test[:, :d_s], test[:, d_s:d_s + d_a], test[:, d_s + d_a:]
    true_next = test[:, :d_s + d_a] @ P.F.T  # (n_test, d_s): E[s' | s, a]
    true_action = np.concatenate([ts[:, :cfg.d_z], tsn[:, :cfg.d_z]], 1) @ P.G.T  # (n_test, d_a): E[a | z, z']

    wm_cfg = ContinuousWorldModelConfig(state_dim=d_s, action_dim=d_a, hidden=cfg.hidden, layers=2, gaussian=False)
    inv_cfg = ContinuousInverseConfig(state_dim=d_s, action_dim=d_a, hidden=cfg.hidden, layers=2, l1=cfg.l1)
    wm = build(MLPWorldModel, wm_cfg, seed)
    fit(wm, (_tensor(s), _tensor(a), _tensor(sn)), cfg.train, seed)
    fits = []  # restarts are selected by validation loss, as one would without access to the true model
    for k in range(cfg.restarts):
        inv = build(SparseContinuousInverse, inv_cfg, 1000 * (k + 1) + seed)
        hist = fit(inv, (_tensor(s), _tensor(a), _tensor(sn)), cfg.train, 1000 * (k + 1) + seed)
        fits.append((min(hist.val_loss), k, inv))
    inv = min(fits, key=lambda f: f[:2])[2]
    with torch.no_grad():
        pred_next = wm.predict(_tensor(ts), _tensor(ta)).double().numpy()
        pred_action, mask = inv.infer_with_mask(_tensor(ts), _tensor(tsn))
    forward = float(((pred_next - true_next) ** 2).sum(1).mean() / d_s)
    inverse = float(cfg.lam**2 * ((pred_action.double().numpy() - true_action) ** 2).sum(1).mean() / d_a)
    mask = mask.numpy()

    # reference: the least-squares learners of Proposition 3.2 on the same data set (excess risk exact)
    W_f = ols_fit(data[None, :, :], d_s + d_a)  # (1, d_s + d_a, d_s)
    inv_xy = np.concatenate([s[:, :cfg.d_z], sn[:, :cfg.d_z], a], 1)[None]  # (1, n, 2 d_z + d_a)
    W_i = ols_fit(inv_xy, 2 * cfg.d_z)  # (1, 2 d_z, d_a)
    ols_f = float(excess_risk(W_f, P.F.T, P.sigma_f)[0] / d_s)
    ols_i = float(cfg.lam**2 * excess_risk(W_i, P.G.T, P.sigma_i)[0] / d_a)
    return LearnedResult(
        sweep=sweep, d_s=d_s, d_z=cfg.d_z, sigma_s=sigma_s, seed=seed, formula=world.closed_form(cfg.n), forward=forward,
        inverse=inverse, ratio=forward / inverse, ols_forward=ols_f, ols_inverse=ols_i, ols_ratio=ols_f / ols_i,
        mask_on_z=float(mask[:, :cfg.d_z].mean()),
        mask_on_distractors=float(mask[:, cfg.d_z:].mean()) if d_s > cfg.d_z else float("nan"),
    )


def run(cfg: LearnedConfig) -> list[LearnedResult]:
    """Every sweep point x seed; the point the two sweeps share is trained once and reported in both."""
    if cfg.debug:
        cfg = dataclasses.replace(cfg, restarts=1)
    done: dict[tuple[int, float, int], LearnedResult] = {}
    out = []
    for sweep, d_s, sig in cfg.runs:
        for seed in range(cfg.n_seeds):
            key = (d_s, sig, seed)
            if key not in done:
                done[key] = run_one(cfg, sweep, d_s, sig, seed)
            out.append(dataclasses.replace(done[key], sweep=sweep))
    return out


def aggregate(results: list[LearnedResult]) -> list[dict]:
    """Per sweep point: geometric means over seeds of the errors and ratios, with the spread of log ratio."""
    keys = sorted({(r.sweep, r.d_s, r.sigma_s) for r in results}, key=lambda k: (k[0], k[1], k[2]))
    rows = []
    for sweep, d_s, sig in keys:
        rs = [r for r in results if (r.sweep, r.d_s, r.sigma_s) == (sweep, d_s, sig)]
        gm = lambda xs: float(np.exp(np.mean(np.log(xs))))  # noqa: E731
        lr = np.log([r.ratio for r in rs])
        rows.append({
            "sweep": sweep, "d_s": d_s, "d_z": rs[0].d_z, "sigma_s": sig, "seeds": len(rs), "formula": rs[0].formula,
            "forward": gm([r.forward for r in rs]), "inverse": gm([r.inverse for r in rs]),
            "ratio": gm([r.ratio for r in rs]),
            "ratio_ci95": [float(np.exp(lr.mean() - 1.96 * lr.std(ddof=1) / math.sqrt(len(rs)))),
                           float(np.exp(lr.mean() + 1.96 * lr.std(ddof=1) / math.sqrt(len(rs))))] if len(rs) > 1 else None,
            "ols_ratio": gm([r.ols_ratio for r in rs]),
            "mask_on_z": float(np.mean([r.mask_on_z for r in rs])),
            "mask_on_distractors": float(np.mean([r.mask_on_distractors for r in rs])),
            "mask_lost_z": sum(r.mask_on_z < 0.9 for r in rs),
        })
    return rows


def slopes(rows: list[dict]) -> dict[str, float]:
    """Per sweep, the least-squares slope of log(measured ratio) on log(formula): 1 = the formula's trend."""
    out = {}
    for sweep in sorted({r["sweep"] for r in rows}):
        rs = [r for r in rows if r["sweep"] == sweep]
        if len(rs) < 2:
            continue
        x, y = np.log([r["formula"] for r in rs]), np.log([r["ratio"] for r in rs])
        out[sweep] = float(np.polyfit(x, y, 1)[0])
    return out


def json_summary(results: list[LearnedResult]) -> dict:
    rows = aggregate(results)
    return {sweep: {"x": [r["d_s"] / r["d_z"] if sweep == "dimensionality" else r["sigma_s"] for r in rows if r["sweep"] == sweep],
                    "formula": [round(r["formula"], 4) for r in rows if r["sweep"] == sweep],
                    "ratio": [round(r["ratio"], 4) for r in rows if r["sweep"] == sweep],
                    "slope": round(slopes(rows).get(sweep, float("nan")), 4)}
            for sweep in ("dimensionality", "stochasticity") if any(r["sweep"] == sweep for r in rows)}


def write_records(results: list[LearnedResult], cfg: LearnedConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    with open(out / "metrics.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(asdict(r)) + "\n")


def format_report(results: list[LearnedResult]) -> str:
    rows = aggregate(results)
    lines = ["Proposition 3.2 with learned models (geometric means over seeds; errors are excess risks)",
             "| sweep | d_s/d_z | sigma_s | formula | MLP/sparse-IDM ratio (95% CI) | OLS ratio | WM error | IDM error | mask on z | mask on distractors | seeds with mask on z < 0.9 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" ({r['ratio_ci95'][0]:.3g}-{r['ratio_ci95'][1]:.3g})" if r["ratio_ci95"] else ""
        lines.append(f"| {r['sweep']} | {r['d_s'] / r['d_z']:g} | {r['sigma_s']:g} | {r['formula']:.3g} | {r['ratio']:.3g}{ci} | "
                     f"{r['ols_ratio']:.3g} | {r['forward']:.3g} | {r['inverse']:.3g} | {r['mask_on_z']:.2f} | "
                     f"{r['mask_on_distractors']:.2f} | {r['mask_lost_z']}/{r['seeds']} |")
    lines.append("slope of log(measured ratio) on log(formula) per sweep (1 = the formula's trend): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in slopes(rows).items()))
    return "\n".join(lines)


def plot(results: list[LearnedResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = aggregate(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, sweep, key, label in ((axes[0], "dimensionality", "d_s", "d_s / d_z"), (axes[1], "stochasticity", "sigma_s", "sigma_s")):
        rs = [r for r in rows if r["sweep"] == sweep]
        if not rs:
            continue
        x = np.array([r["d_s"] / r["d_z"] if key == "d_s" else r[key] for r in rs], float)
        pts = [r for r in results if r.sweep == sweep]
        ax.scatter([(p.d_s / p.d_z if key == "d_s" else p.sigma_s) for p in pts], [p.ratio for p in pts], s=10, color="C0", alpha=0.4)
        ax.plot(x, [r["ratio"] for r in rs], "o-", color="C0", label="MLP world model / sparse inverse model")
        ax.plot(x, [r["ols_ratio"] for r in rs], "s--", color="C2", label="least squares (same data)")
        ax.plot(x, [r["formula"] for r in rs], "k-", label="formula")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("forward / inverse excess risk")
        ax.set_title(sweep)
    axes[0].legend(fontsize=7)
    fig.suptitle("Proposition 3.2 with learned models (distractor coordinates in the state)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
