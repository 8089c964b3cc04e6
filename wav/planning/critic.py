"""The planner's critic (ROBOT.md §7.2, SAILOR): an ensemble of value MLPs on world-model features, trained on
imagined rollouts that follow the base policy's action chunks, towards lambda-returns of the discriminator's
reward computed with a slow target copy. Its mean is the planner's terminal value, its spread the planner's
uncertainty penalty.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wav.models.rssm import mlp
from wav.runtime import Progress


@dataclass(frozen=True)
class CriticConfig:
    """Size and schedule of the value ensemble."""

    members: int = 5
    """value MLPs in the ensemble"""
    units: int = 512
    """units of each hidden layer (LayerNorm, SiLU)"""
    layers: int = 2
    """hidden layers"""
    horizon: int = 7
    """imagined steps per training rollout"""
    gamma: float = 0.99
    """discount"""
    lam: float = 0.95
    """lambda of the lambda-return"""
    slow: float = 0.02
    """the target copy moves this share towards the critic after every update"""
    lr: float = 3e-5
    """Adam learning rate"""
    clip_grad: float = 100.0
    """global gradient-norm clip"""
    steps: int = 1000
    """gradient steps"""
    batch_size: int = 256
    """imagined rollouts (start states) per step"""


class CriticEnsemble(nn.Module):
    """M value MLPs as grouped weights: features (..., F) -> values (..., M); outputs start at zero."""

    def __init__(self, feat: int, cfg: CriticConfig = CriticConfig()):
        super().__init__()
        self.cfg = cfg
        self.net = mlp(cfg.members, feat, cfg.units, cfg.layers, 1)
        out = self.net[-1].g
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)

    def forward(self, feat: Tensor) -> Tensor:
        """Member-major: every layer is one batched matmul of (M, N, .) rows, and its norm and activation run in that
        layout, with no copies between layers (`self.net` on the (..., M, F) expanded input, the same weights,
        copies at every norm and is ~15% slower forward and backward at `cpu`); at the presets' sizes the numbers
        equal the grouped einsum's bit for bit, values and gradients alike (tests/test_planning.py)."""
        lead, m = feat.shape[:-1], self.cfg.members
        x = feat.reshape(1, -1, feat.shape[-1]).expand(m, -1, -1)  # (M, N, F)
        for layer in self.net[:-1]:
            y = torch.matmul(x, layer.lin.g.weight)  # (M, N, units)
            x = F.silu(F.layer_norm(y, y.shape[-1:], eps=1e-3) * layer.norm.weight[:, None] + layer.norm.bias[:, None])
        out = self.net[-1].g
        # the bias is added to the (N, M, 1) view, as the grouped layer does, so its gradient sums in the same order
        return (torch.matmul(x, out.weight).transpose(0, 1) + out.bias)[..., 0].reshape(*lead, m)


def lambda_returns(rewards: Tensor, values: Tensor, discounts: Tensor, lam: float) -> Tensor:
    """R_t = r_t + d_t ((1 - lam) V_{t+1} + lam R_{t+1}), R_H = V_H, for t = 0..H-1.

    rewards (B, H): r_t, the reward of the state reached by step t; values (B, H): V(s_1..s_H) (V(s_0) is
    never used); discounts (B, H): d_t = gamma * P(continue after s_{t+1}). Returns (B, H)."""
    h = rewards.shape[1]
    out = [values[:, h - 1]]
    for t in reversed(range(h)):
        out.append(rewards[:, t] + discounts[:, t] * ((1 - lam) * values[:, t] + lam * out[-1]))
    return torch.stack(out[1:][::-1], 1)


def imagined_returns(rssm, reward, value, latent: tuple[Tensor, Tensor], actions: Tensor, cfg: CriticConfig,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Roll the world model's prior from `latent` ((B, M, .) pair) under `actions` (B, H, A); returns the
    features of s_0..s_{H-1} (B, H, F) and their lambda-returns (B, H) under `reward` and the value `value`
    (features (..., F) -> (...,)), world-model members averaged."""
    with torch.no_grad():
        f0 = rssm.features(*latent).mean(-2)  # (B, F)
        fi = rssm.imagine_features(latent, actions, generator)  # (B, H, M, F)
        cont = rssm.continue_prob(fi).mean(-1)  # (B, H)
        fi = fi.mean(-2)  # (B, H, F)
        feats = torch.cat([f0[:, None], fi], 1)  # (B, H + 1, F)
        returns = lambda_returns(reward(fi), value(fi), cfg.gamma * cont, cfg.lam)
    return feats[:, :-1], returns


def fit_critic(rssm, reward, starts: tuple[Tensor, Tensor], chunks: Tensor, cfg: CriticConfig, seed: int) -> tuple[CriticEnsemble, list[float]]:
    """Fit the ensemble on rollouts from posterior latents `starts` ((N, M, .) pair) under the base policy's
    chunks (N, >= horizon, A); every member regresses the lambda-return of the slow target's mean value.
    Returns the critic and the loss of every 50th step."""
    gen = torch.Generator().manual_seed(seed)
    feat = rssm.cfg.feat
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = CriticEnsemble(feat, cfg)
    target = copy.deepcopy(critic).requires_grad_(False)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    h, z = starts
    log, progress = [], Progress("fit critic")
    for step in range(cfg.steps):
        progress(lambda: f"step {step}/{cfg.steps}, loss {log[-1]:.4g}" if log else f"step {step}/{cfg.steps}")
        idx = torch.randint(len(h), (min(cfg.batch_size, len(h)),), generator=gen)
        feats, returns = imagined_returns(rssm, reward, lambda f: target(f).mean(-1), (h[idx], z[idx]), chunks[idx, : cfg.horizon], cfg, gen)
        loss = ((critic(feats) - returns[..., None]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(critic.parameters(), cfg.clip_grad)
        opt.step()
        with torch.no_grad():
            for pt, p in zip(target.parameters(), critic.parameters()):
                pt.lerp_(p, cfg.slow)
        if step % 50 == 0 or step == cfg.steps - 1:
            log.append(float(loss.detach()))
    return critic.eval().requires_grad_(False), log
