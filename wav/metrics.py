"""Acquisition-round metrics of every domain (REFERENCE §3): rank correlation with the oracle, per-action
prediction error. A domain's own model-quality metrics live with the domain (MiniGrid: wav.evaluate)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def rank_correlation(scores: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
    """Spearman rho and Kendall tau (tau-b) between a strategy's scores and the oracle error."""
    scores, oracle = np.asarray(scores, np.float64), np.asarray(oracle, np.float64)
    if np.ptp(scores) == 0 or np.ptp(oracle) == 0:
        return {"spearman": float("nan"), "kendall": float("nan")}
    return {"spearman": float(stats.spearmanr(scores, oracle).statistic), "kendall": float(stats.kendalltau(scores, oracle).statistic)}


def per_action_error(errors: np.ndarray, actions: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Mean prediction error within each true action id (named by `names`) that occurs."""
    return {name: float(errors[actions == a].mean()) for a, name in enumerate(names) if (actions == a).any()}
