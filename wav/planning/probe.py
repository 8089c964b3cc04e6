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

ACTS = ("base", "model", "true", "task")
"""which candidate a probing actor executes: the base chunk's action, the imagined best, the true-dynamics best
under the planner's objective, or the best under the simulator's shaped task reward (privileged: the ceiling of
residual planning around this base policy with a reward that is right)"""


@dataclass(frozen=True)
class ProbeConfig:
    candidates: int = 32
    """residual sequences per probed state; candidate 0 is the zero residual (the base chunk)"""
    std: float = 0.05
    """std of the residuals (the planner's first draw: its initial std), clipped to the planner's clamp"""
    every: int = 4
    """probe every k-th step of an episode (with act != base: every step)"""
    act: str = "base"
    """base | model | true | task (see ACTS)"""
    task_reward: bool = True
    """also read the simulator's shaped task reward along every candidate (when the env has `dense_reward`)"""

    def __post_init__(self):
        if self.act not in ACTS:
            raise ValueError(f"act must be one of {ACTS}, got {self.act!r}")
        if self.candidates < 2:
            raise ValueError(f"candidates must be >= 2, got {self.candidates}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")


@dataclass
class Rollouts:
    """N candidates rolled in the simulator: posterior features (N, H, M, F), visited states (N, H, D) (made
    sign-continuous as the world model sees them; after the episode ends the last state repeats), and per
    candidate the summed success reward and shaped task reward over the H steps (N,) (task: None without
    `env.dense_reward`)."""

    features: torch.Tensor
    states: np.ndarray
    success_reward: np.ndarray
    task_reward: np.ndarray | None
    replay_features: torch.Tensor | None = None
    """with `replay`: sequence 0 rolled a second time from the same snapshot, features (1, H, M, F) ..."""
    replay_states: np.ndarray | None = None
    """... and visited states (1, H, D): how well the simulator's restore replays (bit for bit on robosuite,
    to PhysX's contact caches on ManiSkill), the noise floor of the true side of the probe"""


def simulate(env, sequences: torch.Tensor, state: np.ndarray, slices: list, task_reward: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Roll every sequence (N, H, A) in the simulator from its current state `state`, restoring its snapshot before
    each and at the end: the visited states (N, H, D) with sign-continuous quaternions (once an episode ends its
    last state repeats), the summed rewards (N,), the summed shaped task rewards (N,) with `task_reward` where the
    env has one (else None), and how many steps each sequence ran before its episode ended (N,)."""
    n, h, _ = sequences.shape
    dense = task_reward and hasattr(env, "dense_reward")
    snap = env.snapshot()
    visited, rewards, task = np.zeros((n, h, len(state)), np.float32), np.zeros(n), np.zeros(n) if dense else None
    ran = np.full(n, h)
    try:
        for i in range(n):
            env.restore(snap)
            prev, ended = state, False
            for k in range(h):
                if not ended:
                    obs, r, term, trunc, _ = env.step(sequences[i, k].numpy())
                    prev = continue_quaternions(np.asarray(obs["state"] if isinstance(obs, dict) else obs, np.float32), prev, slices)
                    rewards[i] += r
                    if dense:
                        task[i] += env.dense_reward()
                    ended = term or trunc
                    if ended:
                        ran[i] = k + 1
                visited[i, k] = prev
    finally:
        env.restore(snap)
    return visited, rewards, task, ran


@torch.no_grad()
def true_features(env, rssm, latent, sequences: torch.Tensor, state: np.ndarray, slices: list, task_reward: bool = False,
                  replay: bool = False) -> Rollouts:
    """Roll every sequence (N, H, A) in the simulator from its current state (`simulate`) and filter the visited
    states into the world model's posterior from `latent` (the posterior at `state`). With `replay`, sequence 0
    is rolled once more at the end (`Rollouts.replay_*`; filtered on its own, so the N rows' numbers do not
    depend on it)."""
    n, h, _ = sequences.shape
    rolled = torch.cat([sequences, sequences[:1]]) if replay else sequences
    visited, rewards, task, _ = simulate(env, rolled, state, slices, task_reward)

    def features(rows: slice) -> torch.Tensor:
        lat = tuple(x.expand(rows.stop - rows.start, *x.shape[1:]) for x in latent)
        feats = []
        for k in range(h):
            lat = rssm.filter_step(lat, rolled[rows, k], torch.as_tensor(visited[rows, k]))
            feats.append(rssm.features(*lat))
        return torch.stack(feats, 1)

    out = Rollouts(features(slice(0, n)), visited[:n], rewards[:n], None if task is None else task[:n])
    if replay:
        out.replay_features, out.replay_states = features(slice(n, n + 1)), visited[n:]
    return out


def learned_reward(planner, feat: torch.Tensor) -> torch.Tensor:
    """The reward part of `Planner.objective` alone: discounted learned reward of N latent paths (N, H, M, F) ->
    (N,), without the critics' value and spread (is the reward or the critic what does not follow the task?)."""
    return (planner.weights(feat)[2] * planner.reward(feat.mean(-2))).sum(1)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")


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
        if getattr(self, "cfg", None) is not None and self.cfg.act == "task" and env is not None and not hasattr(env, "dense_reward"):
            raise NotImplementedError("act='task' needs an env with dense_reward()")
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
            roll = true_features(env, rssm, self.platent, seqs, cont, self.slices, self.cfg.task_reward or self.cfg.act == "task", replay=True)
            true = planner.objective(roll.features)
            replayed = float(planner.objective(roll.replay_features)[0])
            self.rows.append(self._row(imagined.numpy(), true.numpy(), rssm.decode(imag_feat).mean(-2).numpy(), roll, time.perf_counter() - t0, replayed,
                                       learned_reward(planner, roll.features).numpy()))
            pick = {"base": 0, "model": int(imagined.argmax()), "true": int(true.argmax()),
                    "task": int(np.argmax(roll.task_reward)) if roll.task_reward is not None else 0}[self.cfg.act]
            action = seqs[pick, 0].numpy().astype(np.float32)
        self.t += 1
        self.pprev_state, self.pprev_action = cont, np.asarray(action, np.float32)
        self.prev_action = self.pprev_action
        return self.pprev_action

    def _row(self, imagined: np.ndarray, true: np.ndarray, predicted: np.ndarray, roll: Rollouts, seconds: float,
             replayed: float | None = None, true_reward: np.ndarray | None = None) -> dict:
        """One probed state: rank agreement of imagined and true objectives over the candidates, the true gain
        over the base chunk of the imagined best and of the true best, the world model's state error at the
        horizon against how far the candidates' true end states lie apart (standardised when `scale` is known),
        the simulator's replay noise in the same units (the base chunk rolled twice: end-state squared
        difference, and its objective's difference), and with the task reward: whether the planner's
        objective ranks candidates as the task does, and its learned reward alone (`true_reward`: the objective
        without the critic, under the true dynamics)."""
        visited = roll.states
        scale = self.scale if self.scale is not None else np.ones(visited.shape[-1], np.float32)
        err = (((predicted - visited) / scale) ** 2).mean(-1)  # (N, H): mean over features, as the acquisition's error
        end = visited[:, -1] / scale
        spread = float(((end - end.mean(0)) ** 2).mean())  # mean over candidates and features of the squared deviation
        mi, ti = int(imagined.argmax()), int(true.argmax())
        row = {"episode": self.episode, "t": self.t, "spearman": _spearman(imagined, true),
               "gain_model_pick": float(true[mi] - true[0]), "gain_true_pick": float(true[ti] - true[0]),
               "true_std": float(true.std()), "imagined_std": float(imagined.std()),
               "objective_gap": float(np.sqrt(np.mean((imagined - true - (imagined - true).mean()) ** 2))),
               "state_error_step1": float(err[:, 0].mean()), "state_error_end": float(err[:, -1].mean()), "end_spread": spread,
               "success_reward_base": float(roll.success_reward[0]), "seconds": seconds}
        if roll.replay_states is not None:
            row["replay_state_diff"] = float((((roll.replay_states[0, -1] - visited[0, -1]) / scale) ** 2).mean())
        if replayed is not None:
            row["replay_objective_diff"] = float(abs(replayed - true[0]))
        task = roll.task_reward
        if task is not None:
            ki = int(np.argmax(task))
            row |= {"task_reward_base": float(task[0]), "task_gain_model_pick": float(task[mi] - task[0]),
                    "task_gain_true_pick": float(task[ti] - task[0]), "task_gain_task_pick": float(task[ki] - task[0]),
                    "task_std": float(task.std()), "spearman_true_vs_task": _spearman(true, task), "spearman_imagined_vs_task": _spearman(imagined, task)}
            if true_reward is not None:  # within this state's candidates; reward_base across states (against task_reward_base)
                row |= {"spearman_reward_vs_task": _spearman(true_reward, task), "reward_base": float(true_reward[0])}
        return row
