"""Acquisition-round metrics (REFERENCE §3): rank correlation with the oracle, action following score,
per-action prediction error. Model-quality metrics live in wav.evaluate."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import ACTION_NAMES, PICKUP, SWAP, TOGGLE, PICKABLE, DIR_VEC, agent_pose, from_features, to_features

AFS_ACTIONS = (PICKUP, TOGGLE, SWAP)


def rank_correlation(scores: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
    """Spearman rho and Kendall tau (tau-b) between a strategy's scores and the oracle error."""
    scores, oracle = np.asarray(scores, np.float64), np.asarray(oracle, np.float64)
    if np.ptp(scores) == 0 or np.ptp(oracle) == 0:
        return {"spearman": float("nan"), "kendall": float("nan")}
    return {"spearman": float(stats.spearmanr(scores, oracle).statistic), "kendall": float(stats.kendalltau(scores, oracle).statistic)}


def per_action_error(errors: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """Mean prediction error within each true action."""
    return {name: float(errors[actions == a].mean()) for a, name in enumerate(ACTION_NAMES) if (actions == a).any()}


def afs_states(states: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n start states (flat features) for the action following score, drawn from `states`.

    Kept: states with a key, ball or box in front of the agent, so that toggle and one of pickup/swap
    change the world (no state lets pickup AND swap act: one needs an empty hand, the other a full one).
    """
    uniq = np.unique(states, axis=0)
    g, c = from_features(uniq)
    x, y, d = agent_pose(g)
    front = g[np.arange(len(g)), x + DIR_VEC[d, 0], y + DIR_VEC[d, 1], 0]
    keep = np.flatnonzero(np.isin(front, PICKABLE))
    pick = rng.choice(keep, size=min(n, len(keep)), replace=False)
    return uniq[np.sort(pick)]


@torch.no_grad()
def action_following_score(world_model, states: np.ndarray, box_toggle: str = "swap") -> float:
    """AFS: over states and action pairs from {pickup, toggle, swap}, the channels where both predictions
    are exactly right and differ from each other, over the channels where the two true outcomes differ."""
    g, c = from_features(states)
    n = len(states)
    truth, pred = {}, {}
    for a in AFS_ACTIONS:
        ng, nc = step_batch(g, c, np.full(n, a), box_toggle)
        truth[a] = to_features(ng, nc)
        pred[a] = world_model.predict(torch.from_numpy(states), torch.full((n,), a)).numpy()
    num = den = 0
    for i, a in enumerate(AFS_ACTIONS):
        for b in AFS_ACTIONS[i + 1 :]:
            differ = truth[a] != truth[b]  # (N, D) channels the action choice changes
            right = (pred[a] == truth[a]) & (pred[b] == truth[b])
            num += int((differ & right).sum())
            den += int(differ.sum())
    return num / den if den else float("nan")
