"""The robot's action-free subgoal generator p(s_{t+1..t+H} | s_t) (issue 13 item 3b): trained on states only.

A mixture density network: from the standardised current state, C Gaussian components (diagonal) over the H
future steps' state changes, each step's change in units of the std of one-step changes. Sampling K futures
gives K plausible subgoal sequences for the verification cycle (`wav.cycle.verify`), as rows
[s_t, s~_{t+1}, ..., s~_{t+H}] flattened, the layout of the manipulation domain's trajectory rows, so the
latent inverse model and the RSSM read them like a recorded trajectory. Actions are never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TrajectoryGeneratorConfig:
    """Sizes of `TrajectoryGenerator`; see `TRAJECTORY_GENERATOR_PRESETS`."""

    state_dim: int = 35
    """D, flat state features"""
    horizon: int = 4
    """H future steps per subgoal"""
    components: int = 8
    """mixture components C"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden units of the MLP"""
    min_std: float = 0.02
    """floor of each component's std, in units of the one-step change's std"""
    clip_grad: float = 10.0


TRAJECTORY_GENERATOR_PRESETS = {
    "debug": TrajectoryGeneratorConfig(components=4, hidden=(64,)),
    "cpu": TrajectoryGeneratorConfig(),
    "paper": TrajectoryGeneratorConfig(components=16, hidden=(1024, 1024, 1024)),
}


def future_pairs(trajectories: Sequence, horizon: int) -> tuple[Tensor, Tensor]:
    """Every (s_t, s_{t+1..t+H}) of the trajectories' states ((states, actions) pairs; actions unused) whose
    H future frames all exist: (N, D) and (N, H, D) float32."""
    cur, fut = [], []
    for s, _ in trajectories:
        s = torch.as_tensor(np.asarray(s), dtype=torch.float32)
        n = len(s) - horizon
        if n < 1:
            continue
        cur.append(s[:n])
        fut.append(torch.stack([s[h : h + n] for h in range(1, horizon + 1)], 1))
    if not cur:
        raise ValueError(f"no trajectory has more than {horizon} states")
    return torch.cat(cur), torch.cat(fut)


class TrajectoryGenerator(nn.Module):
    """p(s_{t+1..t+H} | s_t) as a Gaussian mixture over standardised cumulative state changes."""

    def __init__(self, cfg: TrajectoryGeneratorConfig = TrajectoryGeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        self.clip_grad = cfg.clip_grad
        d, h, c = cfg.state_dim, cfg.horizon, cfg.components
        dims = [d, *cfg.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], c * (1 + 2 * h * d))
        self.register_buffer("loc", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("step_scale", torch.ones(d))

    @torch.no_grad()
    def set_stats(self, states: Tensor, futures: Tensor) -> "TrajectoryGenerator":
        """Standardisation from training pairs: states by mean / std, changes by the std of s_{t+1} - s_t."""
        self.loc.copy_(states.mean(0))
        self.scale.copy_(states.std(0).clamp_min(1e-6))
        self.step_scale.copy_((futures[:, 0] - states).std(0).clamp_min(1e-6))
        return self

    def mixture(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log weights (B, C), means (B, C, H*D) and stds (B, C, H*D) of the standardised changes."""
        cfg = self.cfg
        c, hd = cfg.components, cfg.horizon * cfg.state_dim
        out = self.head(self.body((states.float() - self.loc) / self.scale))
        logits, mean, raw = out[:, :c], out[:, c : c + c * hd], out[:, c + c * hd :]
        std = nn.functional.softplus(raw).reshape(-1, c, hd) + cfg.min_std
        return torch.log_softmax(logits, -1), mean.reshape(-1, c, hd), std

    def _changes(self, states: Tensor, futures: Tensor) -> Tensor:
        """(B, D), (B, H, D) -> standardised changes from s_t, (B, H*D)."""
        return ((futures.float() - states.float()[:, None]) / self.step_scale).reshape(len(states), -1)

    def training_loss(self, states: Tensor, futures: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Negative log-likelihood of the futures' changes, per dimension."""
        logw, mean, std = self.mixture(states)
        x = self._changes(states, futures)[:, None]  # (B, 1, H*D)
        logp = (-0.5 * ((x - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B, C)
        return -torch.logsumexp(logw + logp, -1).mean() / x.shape[-1]

    @torch.no_grad()
    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """K sampled subgoal rows per state: (B, D) -> (B, K, (H+1) D) = [s_t, s~_{t+1}, ..., s~_{t+H}]."""
        cfg = self.cfg
        s = states.float()[:, : cfg.state_dim]  # a row with more frames is read from its first frame
        b, d, h = len(s), cfg.state_dim, cfg.horizon
        logw, mean, std = self.mixture(s)
        comp = torch.multinomial(logw.exp(), k, replacement=True, generator=generator)  # (B, K)
        pick = lambda x: torch.gather(x, 1, comp[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
        noise = torch.randn(b, k, h * d, generator=generator)
        change = (pick(mean) + pick(std) * noise).reshape(b, k, h, d) * self.step_scale
        future = s[:, None, None] + change  # (B, K, H, D)
        return torch.cat([s[:, None, None].expand(-1, k, 1, -1), future], 2).reshape(b, k, -1)


def preset(name: str, **overrides) -> TrajectoryGeneratorConfig:
    if name not in TRAJECTORY_GENERATOR_PRESETS:
        raise ValueError(f"unknown trajectory generator preset {name!r}; expected one of {sorted(TRAJECTORY_GENERATOR_PRESETS)}")
    return replace(TRAJECTORY_GENERATOR_PRESETS[name], **overrides)
