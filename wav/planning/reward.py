"""The planner's reward model (ROBOT.md §7.1, SAILOR): a discriminator D on world-model features between expert
and learner trajectories, trained by moment matching with a gradient penalty; reward = D(feature), high where
the features look like an expert's.

Loss = mean D(learner) - mean D(expert) + gp_weight * mean (||grad D(x_hat)|| - gp_target)^2 at random
interpolates x_hat of an expert and a learner feature.

An ablation (`kind="success"`, not SAILOR's) swaps the discriminator for a regressor of how near each state is
to the task's success, read off the recorded trajectories' success rewards: target gamma^(steps to the next
state where the success reward was earned), 0 where none follows (`success_targets`). It asks whether the
planner helps when its reward follows the task, since the discriminator's does not (benchmarks/results/
planning_probe.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from wav.models.rssm import mlp
from wav.runtime import Progress


KINDS = ("discriminator", "success")
"""reward models: SAILOR's expert-vs-learner discriminator, or the success-proximity regressor (an ablation)"""


@dataclass(frozen=True)
class RewardConfig:
    """Which reward model, its size and schedule."""

    units: int = 512
    """units of each hidden layer (LayerNorm, SiLU)"""
    layers: int = 2
    """hidden layers"""
    gp_weight: float = 10.0
    """weight of the gradient penalty"""
    gp_target: float = 0.4
    """gradient norm the penalty pulls towards"""
    lr: float = 1e-4
    """Adam learning rate"""
    steps: int = 1000
    """gradient steps"""
    batch_size: int = 256
    """features per half-batch (expert and learner each); per batch for the success regressor"""
    kind: str = "discriminator"
    """discriminator (SAILOR) | success (regress gamma^(steps to the next success state): an ablation)"""
    success_gamma: float = 0.95
    """discount of the success regressor's target"""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"reward kind must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 < self.success_gamma <= 1.0:
            raise ValueError(f"success_gamma must be in (0, 1], got {self.success_gamma}")


class Discriminator(nn.Module):
    """D: features (..., F) -> scalar score (...,); the output layer starts at zero, so every state starts
    with reward 0."""

    def __init__(self, feat: int, cfg: RewardConfig = RewardConfig()):
        super().__init__()
        self.cfg = cfg
        self.net = mlp(1, feat, cfg.units, cfg.layers, 1)
        out = self.net[-1].g
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat)[..., 0]


def gradient_penalty(disc: nn.Module, expert: Tensor, learner: Tensor, target: float, generator: torch.Generator | None = None) -> Tensor:
    """mean (||grad_x D(x)|| - target)^2 at x = u * expert + (1 - u) * learner, u ~ U(0, 1) per row: (B, F) pairs -> ()."""
    u = torch.rand(expert.shape[0], 1, generator=generator)
    x = (u * expert + (1 - u) * learner).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
    return ((grad.norm(dim=-1) - target) ** 2).mean()


def discriminator_loss(disc: nn.Module, expert: Tensor, learner: Tensor, cfg: RewardConfig, generator: torch.Generator | None = None) -> Tensor:
    """Moment matching plus the gradient penalty: expert, learner (B, F) -> ()."""
    return disc(learner).mean() - disc(expert).mean() + cfg.gp_weight * gradient_penalty(disc, expert, learner, cfg.gp_target, generator)


def _train(model: nn.Module, batch_loss, cfg: RewardConfig, label: str) -> list[float]:
    """cfg.steps Adam steps on batch_loss(step) -> (); returns the loss of every 50th step and of the last."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    log, progress = [], Progress(label)
    for step in range(cfg.steps):
        progress(lambda: f"step {step}/{cfg.steps}, loss {log[-1]:.4g}" if log else f"step {step}/{cfg.steps}")
        loss = batch_loss(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log.append(float(loss.detach()))
    return log


def fit_discriminator(expert: Tensor, learner: Tensor, cfg: RewardConfig, seed: int) -> tuple[Discriminator, list[float]]:
    """A discriminator fitted on expert (Ne, F) and learner (Nl, F) features (detached); returns it and the
    loss of every 50th step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        disc = Discriminator(expert.shape[-1], cfg)
    expert, learner = expert.detach().float(), learner.detach().float()

    def batch_loss(step: int) -> Tensor:
        ie = torch.randint(len(expert), (cfg.batch_size,), generator=gen)
        il = torch.randint(len(learner), (cfg.batch_size,), generator=gen)
        return discriminator_loss(disc, expert[ie], learner[il], cfg, gen)

    log = _train(disc, batch_loss, cfg, "fit reward model")
    return disc.eval().requires_grad_(False), log


class SuccessReward(nn.Module):
    """features (..., F) -> predicted success proximity in (0, 1) (...,): a sigmoid over the discriminator's MLP,
    whose zero-initialised output layer starts every state at 0.5."""

    def __init__(self, feat: int, cfg: RewardConfig = RewardConfig(kind="success")):
        super().__init__()
        self.body = Discriminator(feat, cfg)

    def forward(self, feat: Tensor) -> Tensor:
        return torch.sigmoid(self.body(feat))


def success_targets(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Target of every state s_0..s_T of one trajectory from its success rewards r_0..r_{T-1} (r_t is earned on
    reaching s_{t+1}): gamma^(j - t) for the first j >= t with r_{j-1} > 0, else 0. A success state scores 1, a
    state k steps before one gamma^k, a state no success follows 0: (T,) -> (T+1,)."""
    r = np.asarray(rewards, np.float64)
    out = np.zeros(len(r) + 1)
    nxt = None  # index of the next success state at or after t
    for t in range(len(r), -1, -1):
        if t >= 1 and r[t - 1] > 0:
            nxt = t
        if nxt is not None:
            out[t] = gamma ** (nxt - t)
    return out.astype(np.float32)


def fit_success_reward(features: Tensor, targets: Tensor, cfg: RewardConfig, seed: int) -> tuple[SuccessReward, list[float]]:
    """A success regressor fitted on features (N, F) against targets (N,) in [0, 1] by binary cross-entropy with
    soft labels; returns it and the loss of every 50th step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SuccessReward(features.shape[-1], cfg)
    features, targets = features.detach().float(), targets.detach().float()

    def batch_loss(step: int) -> Tensor:
        idx = torch.randint(len(features), (min(cfg.batch_size, len(features)),), generator=gen)
        return nn.functional.binary_cross_entropy_with_logits(model.body(features[idx]), targets[idx])

    log = _train(model, batch_loss, cfg, "fit success reward")
    return model.eval().requires_grad_(False), log


def separation(expert_scores: np.ndarray, learner_scores: np.ndarray, threshold: float) -> dict:
    """How well scores separate expert from learner items: AUC (P(expert score > learner score), ties half) and
    the balanced accuracy of `score > threshold`."""
    e, le = np.asarray(expert_scores, np.float64), np.asarray(learner_scores, np.float64)
    if len(e) == 0 or len(le) == 0:
        return {"auc": None, "accuracy": None}
    diff = e[:, None] - le[None, :]
    auc = float((diff > 0).mean() + 0.5 * (diff == 0).mean())
    acc = 0.5 * float((e > threshold).mean()) + 0.5 * float((le <= threshold).mean())
    return {"auc": auc, "accuracy": acc}
