"""Metrics of the verifier's models (REFERENCE §3): prediction error, dynamic accuracy, per-action
accuracy, subgoal validity and coverage.

The metric functions are pure functions of numpy arrays of flat features (N, D) (see
`wav.envs.minigrid.encoding.to_features`), reusable by the acquisition loop; the `*_metrics` functions
run a model over a `Transitions` set in batches and return a JSON-ready dict.
"""

from __future__ import annotations

import numpy as np
import torch

from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import (ACTION_NAMES, AGENT, DIR_VEC, FLOOR, GOAL, N_CELLS, N_CHANNELS, N_FEATURES, PICKABLE, PICKUP, SWAP, TOGGLE,
                                        agent_pose, from_features, to_features)
from wav.data.io import Transitions

N_GRID = N_CELLS * N_CHANNELS
AFS_ACTIONS = (PICKUP, TOGGLE, SWAP)


# --------------------------------------------------------------------------- dynamic accuracy


def dynamic_items(states: np.ndarray, next_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The items dynamic accuracy scores: cells that change between s and s' except cells that are floor
    in both, (N, 36) bool; and whether the carried object changes, (N,) bool."""
    c, cn = states[:, :N_GRID].reshape(-1, N_CELLS, N_CHANNELS), next_states[:, :N_GRID].reshape(-1, N_CELLS, N_CHANNELS)
    changed = (c != cn).any(-1) & ~((c[..., 0] == FLOOR) & (cn[..., 0] == FLOOR))
    return changed, (states[:, N_GRID:] != next_states[:, N_GRID:]).any(-1)


def dynamic_counts(states: np.ndarray, next_states: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per transition: (correct, total) dynamic items, (N,) int each. An item is correct when all its
    channels (3 for a cell, 2 for the carried object) equal those of s'."""
    cells, hand = dynamic_items(states, next_states)
    ok_cells = (predicted[:, :N_GRID] == next_states[:, :N_GRID]).reshape(-1, N_CELLS, N_CHANNELS).all(-1)
    ok_hand = (predicted[:, N_GRID:] == next_states[:, N_GRID:]).all(-1)
    correct = (cells & ok_cells).sum(1) + (hand & ok_hand)
    return correct.astype(np.int64), (cells.sum(1) + hand).astype(np.int64)


def dynamic_accuracy(states: np.ndarray, next_states: np.ndarray, predicted: np.ndarray) -> float:
    """Pooled dynamic accuracy: correct dynamic items / dynamic items (nan when there are none)."""
    correct, total = dynamic_counts(states, next_states, predicted)
    return float(correct.sum() / total.sum()) if total.sum() else float("nan")


def per_action_dynamic_accuracy(states: np.ndarray, actions: np.ndarray, next_states: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Pooled dynamic accuracy within each true action (actions without dynamic items are left out)."""
    correct, total = dynamic_counts(states, next_states, predicted)
    out = {}
    for a, name in enumerate(ACTION_NAMES):
        sel = actions == a
        if total[sel].sum():
            out[name] = float(correct[sel].sum() / total[sel].sum())
    return out


def per_action_accuracy(true_actions: np.ndarray, inferred: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy of inferred vs true action within each true action present."""
    return {name: float((inferred[true_actions == a] == a).mean()) for a, name in enumerate(ACTION_NAMES) if (true_actions == a).any()}


def execute(states: np.ndarray, actions: np.ndarray, box_toggle: str = "swap") -> np.ndarray:
    """Run actions through the true dynamics: (N, D), (N,) -> (N, D) next-state features."""
    g, c = from_features(states)
    ng, nc = step_batch(g, c, actions, box_toggle=box_toggle)
    return to_features(ng, nc)


# --------------------------------------------------------------------------- subgoals


def true_successors(states: np.ndarray, box_toggle: str = "swap") -> np.ndarray:
    """{step(s, a) : a in 0..6} for each state, (N, D) -> (N, 7, D) (boxes assumed empty)."""
    n, a = len(states), len(ACTION_NAMES)
    reps = np.repeat(np.arange(n), a)  # (N*7,)
    return execute(states[reps], np.tile(np.arange(a), n), box_toggle).reshape(n, a, N_FEATURES)


def onto_goal(states: np.ndarray, successors: np.ndarray) -> np.ndarray:
    """(N, 7) bool: successors where the agent moved onto the goal (terminal; never stored in the data)."""
    c = states[:, :N_GRID].reshape(-1, 1, N_CELLS, N_CHANNELS)
    cn = successors[..., :N_GRID].reshape(*successors.shape[:2], N_CELLS, N_CHANNELS)
    return ((c[..., 0] == GOAL) & (cn[..., 0] == AGENT)).any(-1)


def subgoal_quality(states: np.ndarray, samples: np.ndarray, successors: np.ndarray, exclude: np.ndarray | None = None) -> dict[str, float]:
    """Validity and coverage of subgoal samples.

    states (N, D); samples (N, K, D); successors (N, 7, D); exclude (N, 7) bool marks successors that
    count neither as valid targets nor for coverage (e.g. terminal moves onto the goal).
    validity: fraction of the N*K samples equal to some (kept) true successor, pooled.
    coverage: fraction of the distinct (kept) true successors other than s that some sample hits, pooled.
    """
    keep = np.ones(successors.shape[:2], bool) if exclude is None else ~exclude
    eq = (samples[:, :, None, :] == successors[:, None, :, :]).all(-1) & keep[:, None]  # (N, K, 7)
    validity = float(eq.any(-1).mean())
    same = (successors[:, :, None] == successors[:, None, :]).all(-1)  # (N, 7, 7)
    first = ~np.tril(same, -1).any(-1)  # (N, 7): first occurrence of each distinct successor
    target = first & keep & ~(successors == states[:, None]).all(-1)
    hit = eq.any(1) & target
    n_target = int(target.sum())
    return {"validity": validity, "coverage": float(hit.sum() / n_target) if n_target else float("nan"), "n_targets": n_target}


# --------------------------------------------------------------------------- model runners


def _batched(fn, *arrays: np.ndarray, batch: int = 512) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for i in range(0, len(arrays[0]), batch):
            outs.append(fn(*(torch.from_numpy(np.ascontiguousarray(a[i : i + batch])) for a in arrays)).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))


def world_model_metrics(model, tr: Transitions) -> dict:
    """pred_error (mean published Prediction Error), dynamic_accuracy, per_action (dynamic accuracy)."""
    s, sn = tr.features()
    pred = _batched(model.predict, s, tr.actions)
    err = _batched(model.loss, s, tr.actions, sn)
    return {
        "pred_error": float(err.mean()),
        "dynamic_accuracy": dynamic_accuracy(s, sn, pred),
        "per_action": per_action_dynamic_accuracy(s, tr.actions, sn, pred),
        "n": len(tr),
    }


def inverse_metrics(model, tr: Transitions, box_toggle: str = "swap") -> dict:
    """per_action (top-1), accuracy, dynamic_accuracy (inferred action executed by step_batch), mask_size
    (mean number of state features the mask keeps, of D = 110)."""
    s, sn = tr.features()
    acts, masks = [], []
    with torch.no_grad():
        for i in range(0, len(s), 4096):
            a, m = model.infer_with_mask(torch.from_numpy(s[i : i + 4096]), torch.from_numpy(sn[i : i + 4096]))
            acts.append(a.numpy())
            masks.append(m.sum(-1).numpy())
    inferred, mask_size = np.concatenate(acts), np.concatenate(masks)
    outcome = execute(s, inferred, box_toggle)
    return {
        "per_action": per_action_accuracy(tr.actions, inferred),
        "accuracy": float((inferred == tr.actions).mean()),
        "dynamic_accuracy": dynamic_accuracy(s, sn, outcome),
        "mask_size": float(mask_size.mean()),
        "n": len(tr),
    }


def subgoal_metrics(model, states: np.ndarray, k: int = 16, box_toggle: str = "swap", seed: int = 0, exclude_goal: bool = False) -> dict:
    """Validity and coverage of `model.sample(states, k)` against the true successor sets."""
    g = torch.Generator()
    g.manual_seed(seed)
    samples = _batched(lambda x: model.sample(x, k, g), states)
    succ = true_successors(states, box_toggle)
    exclude = onto_goal(states, succ) if exclude_goal else None
    return {**subgoal_quality(states, samples, succ, exclude), "k": k, "n": len(states)}


# --------------------------------------------------------------------------- action following score


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
