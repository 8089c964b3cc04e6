"""Downstream planning with one world model (REFERENCE §6, ROBOT.md §7): fit the discriminator reward and the
critic on the world model's latents of recorded trajectories (`prepare`), then act in the simulator with the
base diffusion policy plus the MPPI residual (`PlanningActor`), filtering each observed state into the world
model's posterior as the episode goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from wav.planning.critic import CriticConfig, fit_critic
from wav.planning.planner import Planner, PlannerConfig
from wav.planning.reward import RewardConfig, fit_discriminator, fit_success_reward, separation, success_targets
from wav.types import SequenceBatch


@dataclass(frozen=True)
class PlanningConfig:
    """Reward model, critic and planner of one preset."""

    reward: RewardConfig = field(default_factory=RewardConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)


@dataclass(frozen=True)
class Demos:
    """Recorded trajectories (raw states (T+1, D), actions (T, A)) for the reward model and the critic:
    expert vs learner, each split into train and held-out."""

    expert: list
    learner: list
    expert_heldout: list
    learner_heldout: list
    learner_success: list | None = None
    """whether each learner trajectory (train, then held-out) succeeded: is the reward aligned with the task?"""
    rewards: list | None = None
    """the recorded success rewards (T,) of each training trajectory, expert then learner (the `success` reward
    model's labels)"""


# --------------------------------------------------------------------------- latents of recorded trajectories


def posterior_latents(rssm, trajectories: list, layout: dict, chunk: int = 128) -> list[tuple[Tensor, Tensor]]:
    """The world model's posterior (mode) along each trajectory, from its first state: per trajectory
    (h (T+1, M, deter), z (T+1, M, S*K)). States are made sign-continuous as the world model was trained."""
    from wav.domains.manipulation import continuous_quaternions

    out: list = [None] * len(trajectories)
    by_len: dict[int, list[int]] = {}
    for i, (s, _) in enumerate(trajectories):
        by_len.setdefault(len(s), []).append(i)
    with torch.no_grad():
        for t1, idx in by_len.items():
            for j in range(0, len(idx), chunk):
                part = idx[j : j + chunk]
                s = torch.as_tensor(np.stack([continuous_quaternions(np.asarray(trajectories[i][0], np.float32), layout) for i in part]))  # (B, T+1, D)
                a = torch.as_tensor(np.stack([np.asarray(trajectories[i][1], np.float32) for i in part]))  # (B, T, A)
                a = torch.cat([a, torch.zeros(len(part), 1, a.shape[-1])], 1)  # (B, T+1, A): a_t taken at s_t
                first = torch.zeros(len(part), t1, dtype=torch.bool)
                first[:, 0] = True
                h, z, _ = rssm.posterior(SequenceBatch(s, a, first))
                for k, i in enumerate(part):
                    out[i] = (h[k], z[k])
    return out


def base_chunks(policy, trajectories: list, generator: torch.Generator, chunk: int = 4096) -> Tensor:
    """The base policy's action chunk at every state s_0..s_{T-1} of every trajectory (raw states, the
    policy's own history rule): (sum T, pred_horizon, A)."""
    from wav.robot.policy import windows

    obs, _ = windows([(np.asarray(s), np.asarray(a)) for s, a in trajectories], policy.cfg.obs_horizon, policy.cfg.pred_horizon)
    obs = torch.as_tensor(obs)  # (N, O, D)
    return torch.cat([policy.sample(obs[i : i + chunk], generator) for i in range(0, len(obs), chunk)])


def _features(rssm, latents: list) -> list[Tensor]:
    return [rssm.features(h, z).mean(-2) for h, z in latents]  # each (T+1, F)


@dataclass
class Prepared:
    """What planning with one world model needs, and how its parts were fitted."""

    planner: Planner
    diagnostics: dict


def fit_reward(feats: list[Tensor], demos: Demos, cfg: RewardConfig, seed: int) -> tuple[torch.nn.Module, list[float]]:
    """The reward model on the training trajectories' posterior features (expert, then learner; each (T+1, F)):
    the discriminator (expert vs learner states), or the success regressor (every state against
    `success_targets` of its trajectory's recorded rewards)."""
    ne = len(demos.expert)
    if cfg.kind == "discriminator":
        return fit_discriminator(torch.cat(feats[:ne]), torch.cat(feats[ne:]), cfg, seed)
    if demos.rewards is None or len(demos.rewards) != len(feats):
        raise ValueError(f"the success reward model needs the recorded rewards of every training trajectory ({len(feats)}), "
                         f"got {None if demos.rewards is None else len(demos.rewards)}")
    targets = torch.as_tensor(np.concatenate([success_targets(r, cfg.success_gamma) for r in demos.rewards]))
    return fit_success_reward(torch.cat(feats), targets, cfg, seed)


def prepare(rssm, demos: Demos, policy, layout: dict, cfg: PlanningConfig, seed: int) -> Prepared:
    """Fit the reward model (`fit_reward`: by default the discriminator on expert vs learner posterior features
    of every state) and the critic (imagined rollouts from every non-final posterior state of the training
    trajectories under the base policy's chunk there); held-out diagnostics: the reward's AUC and balanced
    accuracy on trajectory-mean scores and on single states of the held-out expert vs learner trajectories."""
    t0 = time.perf_counter()
    rssm = rssm.eval().requires_grad_(False)
    train = demos.expert + demos.learner
    latents = posterior_latents(rssm, train, layout)
    feats = _features(rssm, latents)
    ne = len(demos.expert)
    fe, fl = torch.cat(feats[:ne]), torch.cat(feats[ne:])
    disc, disc_log = fit_reward(feats, demos, cfg.reward, seed)
    t_disc = time.perf_counter() - t0
    with torch.no_grad():
        threshold = 0.5 * float(disc(fe).mean() + disc(fl).mean())
        held = _features(rssm, posterior_latents(rssm, demos.expert_heldout + demos.learner_heldout, layout))
        scores = [disc(f) for f in held]
        nh = len(demos.expert_heldout)
        by_traj = separation(np.array([float(s.mean()) for s in scores[:nh]]), np.array([float(s.mean()) for s in scores[nh:]]), threshold)
        by_state = separation(torch.cat(scores[:nh]).numpy() if nh else np.zeros(0), torch.cat(scores[nh:]).numpy() if len(scores) > nh else np.zeros(0), threshold)
        learner_scores = np.array([float(disc(f).mean()) for f in feats[ne:]] + [float(s.mean()) for s in scores[nh:]])
        train_sep = separation(np.array([float(disc(f).mean()) for f in feats[:ne]]), learner_scores[: len(demos.learner)], threshold)
        ok = np.asarray(demos.learner_success if demos.learner_success is not None else [], bool)
        # does a higher reward mean a successful episode? learner trajectories, by outcome
        by_success = separation(learner_scores[ok], learner_scores[~ok], float(np.median(learner_scores))) if len(ok) == len(learner_scores) else {"auc": None, "accuracy": None}
    t1 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed + 1)
    chunks = base_chunks(policy, train, gen)  # (N, P, A)
    h = torch.cat([lh[:-1] for lh, _ in latents])  # (N, M, deter): states s_0..s_{T-1}
    z = torch.cat([lz[:-1] for _, lz in latents])
    critic, critic_log = fit_critic(rssm, disc, (h, z), chunks, cfg.critic, seed + 2)
    diagnostics = {
        "reward_heldout_trajectory": by_traj, "reward_heldout_state": by_state, "reward_train_trajectory": train_sep,
        "reward_success_vs_failure": by_success, "learner_success_rate": float(ok.mean()) if len(ok) else None,
        "reward_loss": disc_log, "critic_loss": critic_log,
        "expert_trajectories": ne, "learner_trajectories": len(demos.learner),
        "heldout_trajectories": [len(demos.expert_heldout), len(demos.learner_heldout)],
        "seconds": {"reward": t_disc, "critic": time.perf_counter() - t1},
    }
    return Prepared(Planner(rssm, disc, critic, cfg.planner), diagnostics)


# --------------------------------------------------------------------------- acting


def continue_quaternions(state: np.ndarray, prev: np.ndarray | None, slices: list[slice]) -> np.ndarray:
    """The streaming form of `wav.domains.manipulation.continuous_quaternions`: the first frame's largest
    quaternion component is made positive; a later frame takes the sign closer to the previous frame's."""
    out = np.array(state, np.float32, copy=True)
    for sl in slices:
        q = out[sl]
        if prev is None:
            if q[np.argmax(np.abs(q))] < 0:
                out[sl] = -q
        elif float(q @ prev[sl]) < 0:
            out[sl] = -q
    return out


class PlanningActor:
    """The base diffusion policy, optionally with the residual planner. The policy samples a chunk of
    `pred_horizon` actions every `action_horizon` steps (as `wav.robot.policy.ChunkActor`); at step j of a
    chunk, the planner's base is the chunk's actions j..j+H-1 (the last repeated past its end), so the base
    behaviour is the policy's own. With a planner, every observed state is filtered into the world model's
    posterior and the executed action is clip(base[0] + residual)."""

    def __init__(self, policy, policy_gen: torch.Generator, planner: Planner | None = None, plan_gen: torch.Generator | None = None,
                 layout: dict | None = None):
        from wav.domains.manipulation import quaternion_slices

        self.policy, self.policy_gen, self.planner, self.plan_gen = policy, policy_gen, planner, plan_gen
        self.slices = quaternion_slices(layout or {})
        self.plan_seconds: list[float] = []
        self.reset()

    def reset(self, env=None) -> None:
        self.history: list[np.ndarray] = []
        self.chunk: np.ndarray | None = None
        self.j = 0
        self.latent = None
        self.prev_action: np.ndarray | None = None
        self.prev_state: np.ndarray | None = None

    def __call__(self, env, state: np.ndarray) -> np.ndarray:
        cfg = self.policy.cfg
        state = np.asarray(state, np.float32)
        self.history = (self.history or [state] * cfg.obs_horizon)[1:] + [state]
        if self.chunk is None or self.j >= cfg.action_horizon:
            obs = torch.as_tensor(np.stack(self.history))[None]  # (1, O, D)
            self.chunk = self.policy.sample(obs, self.policy_gen)[0].numpy()  # (P, A)
            self.j = 0
        action = self.chunk[self.j]
        if self.planner is not None:
            t = time.perf_counter()
            action = self._plan(state)
            self.plan_seconds.append(time.perf_counter() - t)
        self.j += 1
        self.prev_action = np.asarray(action, np.float32)
        return self.prev_action

    @torch.no_grad()
    def _plan(self, state: np.ndarray) -> np.ndarray:
        rssm, h = self.planner.rssm, self.planner.cfg.horizon
        cont = continue_quaternions(state, self.prev_state, self.slices)
        self.prev_state = cont
        prev = None if self.prev_action is None else torch.as_tensor(self.prev_action)[None]
        self.latent = rssm.filter_step(self.latent, prev, torch.as_tensor(cont)[None])  # (1, M, .) pair
        idx = np.minimum(np.arange(self.j, self.j + h), len(self.chunk) - 1)
        base = torch.as_tensor(self.chunk[idx])  # (H, A)
        residual, _ = self.planner.plan(self.latent, base, self.plan_gen)
        return (base[0] + residual).clamp(-1, 1).numpy()


def run_episodes(env, actor: PlanningActor, seeds: list[int]) -> list[dict]:
    """One episode per env seed (no action noise): return (sum of the env's success reward), success,
    steps, seconds, and the mean planning time per step."""
    from wav.robot.collect import run_episode

    from wav.runtime import Progress

    rows, progress = [], Progress("episodes " + ("planner" if actor.planner else "base policy"))
    for s in seeds:
        progress(lambda: f"{len(rows)}/{len(seeds)} done, success so far {np.mean([r['success'] for r in rows]):.2f}" if rows else f"0/{len(seeds)} done")
        actor.plan_seconds = []
        t = time.perf_counter()
        traj = run_episode(env, actor.reset, actor, s, 0.0, np.random.default_rng(0), "planner" if actor.planner else "base")
        rows.append({"env_seed": int(s), "reward": float(traj.rewards.sum()), "success": bool(traj.success), "steps": len(traj),
                     "seconds": time.perf_counter() - t, "plan_ms": 1000 * float(np.mean(actor.plan_seconds)) if actor.plan_seconds else None})
    return rows
