"""Replay a transition set through the true dynamics: the conformance measure of `wav data check-dynamics`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.encoding import ACTION_NAMES, FLOOR
from wav.data.io import Transitions


@dataclass(frozen=True)
class Conformance:
    n: int
    matched: int
    mismatches_by_action: dict[str, int]
    matches: np.ndarray  # (N,) bool

    @property
    def fraction(self) -> float:
        return self.matched / self.n if self.n else float("nan")

    def as_dict(self) -> dict:
        return {"n": self.n, "matched": self.matched, "fraction": self.fraction, "mismatches_by_action": self.mismatches_by_action}


def check_dynamics(tr: Transitions, box_toggle: str) -> Conformance:
    """Fraction of transitions whose next grid and carried equal step_batch's, noise-floor colours excluded."""
    pred_g, pred_c = step_batch(tr.states, tr.carried, tr.actions, box_toggle)
    true_g = tr.next_states.copy()
    floors = (pred_g[..., 0] == FLOOR) & (true_g[..., 0] == FLOOR)  # (N, W, H): colour is noise there
    pred_g[..., 1][floors] = 0
    true_g[..., 1][floors] = 0
    ok = (pred_g == true_g).reshape(len(tr), -1).all(1) & (pred_c == tr.next_carried).all(1)
    bad = np.bincount(tr.actions[~ok], minlength=len(ACTION_NAMES))
    return Conformance(len(tr), int(ok.sum()), {name: int(b) for name, b in zip(ACTION_NAMES, bad)}, ok)
