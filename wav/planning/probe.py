"""Is the world model good enough to plan with? (issue 14: where the planner does not beat the base policy, show
why.) At states of real episodes, the same residual candidates around the base policy's chunk are scored twice
with the planner's objective (`Planner.objective`): once on the world model's imagined latents, once on the
posterior latents of the states the simulator really reaches under each candidate (snapshot, roll, restore).
If the imagined ranking does not follow the true one, no planner budget helps; if the true ranking's best
candidate is not better than the base chunk either, the reward and critic are what is missing. The actor can
also execute the imagined best (a one-iteration planner), or the true best (a planner with perfect dynamics):
the second is the ceiling of this reward and critic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from wav.planning.agent import PlanningActor, continue_quaternions

ACTS = ("base", "model", "true")
"""which candidate a probing actor executes: the base chunk's action, the imagined best, the true-dynamics best"""


@dataclass(frozen=True)
class ProbeConfig:
    candidates: int = 32
    """residual sequences per probed state; candidate 0 is the zero residual (the base chunk)"""
    std: float = 0.05
    """std of the residuals (the planner's first draw: its initial std), clipped to the planner's clamp"""
    every: int = 4
    """probe every k-th step of an episode (with act != base: every step)"""
    act: str = "base"
    """base | model | true (see ACTS)"""

    def __post_init__(self):
        if self.act not in ACTS:
            raise ValueError(f"act must be one of {ACTS}, got {self.act!r}")
        if self.candidates < 2:
            raise ValueError(f"candidates must be >= 2, got {self.candidates}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")


@torch.no_grad()
def true_features(env, rssm, latent, sequences: torch.Tensor, state: np.ndarray, slices: list) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Roll every sequence (N, H, A) in the simulator from its current state (restored after each), filter the
    visited states into the world model's posterior from `latent` (the posterior at `state`): features
    (N, H, M, F), the visited states (N, H, D) (made sign-continuous as the world model sees them; after the
    episode ends the last state repeats) and the simulator's summed reward over the H steps (N,)."""
    n, h, _ = sequences.shape
    snap = env.snapshot()
    visited, rewards = np.zeros((n, h, len(state)), np.float32), np.zeros(n)
    try:
        for i in range(n):
            env.restore(snap)
            prev, ended = state, False
            for k in range(h):
                if not ended:
                    obs, r, term, trunc, _ = env.step(sequences[i, k].numpy())
                    prev = continue_quaternions(np.asarray(obs["state"] if isinstance(obs, dict) else obs, np.float32), prev, slices)
                    rewards[i] += r
                    ended = term or trunc
                visited[i, k] = prev
    finally:
        env.restore(snap)
    lat = tuple(x.expand(n, *x.shape[1:]) for x in latent)
    feats = []
    for k in range(h):
        lat = rssm.filter_step(lat, sequences[:, k], torch.as_tensor(visited[:, k]))
        feats.append(rssm.features(*lat))
    return torch.stack(feats, 1), visited, rewards


class ProbeActor(PlanningActor):
    """The base diffusion policy, with every `every`-th state probed (imagined vs true objective of the same
    candidates) and the executed action chosen by `cfg.act`. `rows` collects one record per probed state."""

    def __init__(self, policy, policy_gen: torch.Generator, planner, cfg: ProbeConfig, probe_gen: torch.Generator, layout: dict,
                 scale: np.ndarray | None = None):
        super().__init__(policy, policy_gen, None, None, layout)
        self.probe_planner, self.cfg, self.probe_gen = planner, cfg, probe_gen
        self.scale = None if scale is None else np.asarray(scale, np.float32)
        self.rows: list[dict] = []
        self.episode = -1

    def reset(self, env=None) -> None:
        super().reset(env)
        self.t, self.platent, self.pprev_state, self.pprev_action = 0, None, None, None
        self.episode = getattr(self, "episode", -1) + 1

    @torch.no_grad()
    def __call__(self, env, state: np.ndarray) -> np.ndarray:
        action = super().__call__(env, state)  # the base chunk's action; advances the chunk bookkeeping
        planner = self.probe_planner
        rssm, c = planner.rssm, planner.cfg
        cont = continue_quaternions(np.asarray(state, np.float32), self.pprev_state, self.slices)
        prev = None if self.pprev_action is None else torch.as_tensor(self.pprev_action)[None]
        self.platent = rssm.filter_step(self.platent, prev, torch.as_tensor(cont)[None])
        if self.cfg.act != "base" or self.t % self.cfg.every == 0:
            j = self.j - 1
            base = torch.as_tensor(self.chunk[np.minimum(np.arange(j, j + c.horizon), len(self.chunk) - 1)])  # (H, A)
            res = (self.cfg.std * torch.randn(self.cfg.candidates, c.horizon, base.shape[-1], generator=self.probe_gen)).clamp(-c.clamp, c.clamp)
            res[0] = 0.0
            seqs = (base + res).clamp(-1, 1)
            t0 = time.perf_counter()
            n = len(seqs)
            start = tuple(x.expand(n, *x.shape[1:]) for x in self.platent)
            imag_feat = rssm.imagine_features(start, seqs)
            imagined = planner.objective(imag_feat)
            feat, visited, sim_reward = true_features(env, rssm, self.platent, seqs, cont, self.slices)
            true = planner.objective(feat)
            self.rows.append(self._row(imagined.numpy(), true.numpy(), rssm.decode(imag_feat).mean(-2).numpy(), visited, sim_reward,
                                       time.perf_counter() - t0))
            pick = {"base": 0, "model": int(imagined.argmax()), "true": int(true.argmax())}[self.cfg.act]
            action = seqs[pick, 0].numpy().astype(np.float32)
        self.t += 1
        self.pprev_state, self.pprev_action = cont, np.asarray(action, np.float32)
        self.prev_action = self.pprev_action
        return self.pprev_action

    def _row(self, imagined: np.ndarray, true: np.ndarray, predicted: np.ndarray, visited: np.ndarray, sim_reward: np.ndarray, seconds: float) -> dict:
        """One probed state: rank agreement of imagined and true objectives over the candidates, the true gain
        over the base chunk of the imagined best and of the true best, and the world model's state error at the
        horizon against how far the candidates' true end states lie apart (standardised when `scale` is known)."""
        scale = self.scale if self.scale is not None else np.ones(visited.shape[-1], np.float32)
        err = (((predicted - visited) / scale) ** 2).mean(-1)  # (N, H): mean over features, as the acquisition's error
        end = visited[:, -1] / scale
        spread = float(((end - end.mean(0)) ** 2).mean())  # mean over candidates and features of the squared deviation
        rho = stats.spearmanr(imagined, true).statistic if np.ptp(imagined) > 0 and np.ptp(true) > 0 else float("nan")
        mi, ti = int(imagined.argmax()), int(true.argmax())
        return {"episode": self.episode, "t": self.t, "spearman": float(rho),
                "gain_model_pick": float(true[mi] - true[0]), "gain_true_pick": float(true[ti] - true[0]),
                "true_std": float(true.std()), "imagined_std": float(imagined.std()),
                "objective_gap": float(np.sqrt(np.mean((imagined - true - (imagined - true).mean()) ** 2))),
                "state_error_step1": float(err[:, 0].mean()), "state_error_end": float(err[:, -1].mean()), "end_spread": spread,
                "sim_reward_base": float(sim_reward[0]), "sim_reward_model_pick": float(sim_reward[mi]), "sim_reward_true_pick": float(sim_reward[ti]),
                "seconds": seconds}
