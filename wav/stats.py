"""Seed statistics for every experimental claim: t-based 95% confidence intervals and paired tests (scipy.stats)."""

from __future__ import annotations

import re

import numpy as np
from scipy import stats


def mean_ci(values, level: float = 0.95, bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float, float]:
    """Mean and the two ends of its t confidence interval over seeds (nan-safe; one value: a zero-width CI),
    the ends clipped to the metric's possible range `bounds` (with few seeds a t interval can leave it;
    `metric_ci` also says whether it did)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, max(m - half, bounds[0]), min(m + half, bounds[1])


RANGES = {"pred_error": (0.0, np.inf), "dynamic_accuracy": (0.0, 1.0), "afs": (0.0, 1.0), "accuracy": (0.0, 1.0),
          "spearman": (-1.0, 1.0), "kendall": (-1.0, 1.0)}
"""the possible range of each reported metric (a prefixed name such as `test_excl/pred_error` uses its last part)"""


def metric_ci(values, metric: str, level: float = 0.95) -> tuple[float, list[float], bool]:
    """Mean, the t interval clipped to the metric's range (`RANGES`; unbounded if unknown), and whether it
    was clipped: what every report prints, with a star where it is True."""
    bounds = RANGES.get(metric.split("/")[-1], (-np.inf, np.inf))
    m, lo, hi = mean_ci(values, level)
    return m, [max(lo, bounds[0]), min(hi, bounds[1])], bool(lo < bounds[0] or hi > bounds[1])


def paired_difference(a, b, level: float = 0.95) -> dict:
    """a - b over matched seeds: mean, CI, paired t-test and Wilcoxon signed-rank p-values (two-sided)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    m, lo, hi = mean_ci(d, level)
    out = {"mean": m, "ci": [lo, hi], "n": int(len(d)), "p_ttest": float("nan"), "p_wilcoxon": float("nan")}
    # differences equal up to rounding (9/20 - 17/20 against 12/20 - 20/20) have no spread to test against:
    # a t statistic over a rounding-level spread would report p ~ 1e-17
    if len(d) >= 2 and np.ptp(d) > 1e-9 * (1.0 + np.abs(d).max()):
        out["p_ttest"] = float(stats.ttest_rel(a[ok], b[ok]).pvalue)
        if np.any(d != 0):
            out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out


def se_from_t_interval(ci, n: int, level: float = 0.95) -> float:
    """The standard error behind a t confidence interval [lo, hi] over n values (what `mean_ci` and
    `paired_difference` report), for pooling results that kept only their interval."""
    lo, hi = ci
    return float((hi - lo) / (2 * stats.t.ppf(0.5 + level / 2, n - 1)))


def pool_random_effects(estimates, ses, level: float = 0.95) -> dict:
    """Random-effects pooling of k independent estimates with standard errors (e.g. one paired difference per
    task): DerSimonian-Laird's between-estimate variance tau2 and weights, and for the interval the Hartung-Knapp
    correction with a t on k - 1 df, its variance factor floored at 1 (with few estimates the plain normal
    interval is too narrow). Returns the pooled mean, its se, CI, two-sided p, tau2, Cochran's Q, I^2 (the
    share of Q beyond chance) and k."""
    y, s = np.asarray(estimates, np.float64), np.asarray(ses, np.float64)
    if y.shape != s.shape:
        raise ValueError(f"estimates and ses must have the same length, got {y.size} and {s.size}")
    if y.size == 0 or not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError(f"every standard error must be finite and positive, got {s.tolist()}")
    w = 1.0 / s**2
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    df = y.size - 1
    c = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, (q - df) / c) if df > 0 else 0.0
    wr = 1.0 / (s**2 + tau2)
    mean = float((wr * y).sum() / wr.sum())
    if df > 0:
        spread = float((wr * (y - mean) ** 2).sum() / df)
        se = float(np.sqrt(max(1.0, spread) / wr.sum()))
        dist = stats.t(df)
    else:
        se, dist = float(s[0]), stats.norm()
    half = float(dist.ppf(0.5 + level / 2) * se)
    return {"mean": mean, "se": se, "ci": [mean - half, mean + half], "p": float(2 * dist.sf(abs(mean) / se)),
            "tau2": float(tau2), "q": q, "i2": float(max(0.0, (q - df) / q)) if q > 0 else 0.0, "k": int(y.size)}


def parse_seeds(text: str) -> list[int]:
    """'0-9' -> 0..9; '1,3,5' -> [1, 3, 5]; '0-2,7' -> [0, 1, 2, 7]. Seeds are integers >= 0."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part, flags=re.ASCII)
        if not m:
            where = f" in {text!r}" if part != str(text).strip() else ""
            raise ValueError(f"bad seed {part!r}{where}; expected integers >= 0 and ranges, e.g. 0-9, 1,3,5 or 0-2,7")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}: {hi} < {lo}")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return sorted(set(seeds))
