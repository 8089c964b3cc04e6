"""The planner's reward model (ROBOT.md §7.1, SAILOR): a discriminator D on world-model features between expert
and learner trajectories, trained by moment matching with a gradient penalty; reward = D(feature), high where
the features look like an expert's.

Loss = mean D(learner) - mean D(expert) + gp_weight * mean (||grad D(x_hat)|| - gp_target)^2 at random
interpolates x_hat of an expert and a learner feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from wav.models.rssm import mlp
from wav.runtime import Progress


@dataclass(frozen=True)
class RewardConfig:
    """Size and schedule of the discriminator."""

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
    """features per half-batch (expert and learner each)"""


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


def fit_discriminator(expert: Tensor, learner: Tensor, cfg: RewardConfig, seed: int) -> tuple[Discriminator, list[float]]:
    """A discriminator fitted on expert (Ne, F) and learner (Nl, F) features (detached); returns it and the
    loss of every 50th step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        disc = Discriminator(expert.shape[-1], cfg)
    opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr)
    expert, learner = expert.detach().float(), learner.detach().float()
    log, progress = [], Progress("fit reward model")
    for step in range(cfg.steps):
        progress(lambda: f"step {step}/{cfg.steps}, loss {log[-1]:.4g}" if log else f"step {step}/{cfg.steps}")
        ie = torch.randint(len(expert), (cfg.batch_size,), generator=gen)
        il = torch.randint(len(learner), (cfg.batch_size,), generator=gen)
        loss = discriminator_loss(disc, expert[ie], learner[il], cfg, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log.append(float(loss.detach()))
    return disc.eval().requires_grad_(False), log


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
