"""World and inverse models for continuous states and actions (REFERENCE §5 synthetic linear-Gaussian
check, §6 manipulation): the same roles as the MiniGrid models, on float vectors.

`MLPWorldModel` predicts the state change with an ensemble of M MLPs run as one batched einsum (diagonal
Gaussian or mean-only head); `SparseContinuousInverse` regresses the action from (M * s, M * s') with the
same learned binary mask as the MiniGrid inverse model (:mod:`wav.models.mask`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.config import ContinuousInverseConfig, ContinuousWorldModelConfig
from wav.models.mask import FeatureMask
from wav.models.nets import GroupedLinear, dropout


class MLPWorldModel(nn.Module):
    """s' = s + MLP(s, a) with M members; satisfies `wav.types.WorldModel` on (B, Ds) float states."""

    def __init__(self, cfg: ContinuousWorldModelConfig = ContinuousWorldModelConfig()):
        super().__init__()
        self.cfg = cfg
        m, h = cfg.members, cfg.hidden
        dims = [cfg.state_dim + cfg.action_dim] + [h] * cfg.layers
        self.hidden = nn.ModuleList(GroupedLinear(m, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = GroupedLinear(m, dims[-1], cfg.state_dim * (2 if cfg.gaussian else 1))

    def outputs(self, states: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Per-member mean and log-variance, (M, B, Ds) each (log-variance 0 without a Gaussian head)."""
        x = torch.cat([states, actions], -1).float()  # (B, Ds + A)
        x = x[:, None].expand(-1, self.cfg.members, -1)  # (B, M, Ds + A)
        for layer in self.hidden:
            x = dropout(F.silu(layer(x)), self.cfg.dropout, generator)
        y = self.out(x).transpose(0, 1)  # (M, B, Ds or 2 Ds)
        mean, log_var = (y.chunk(2, -1) if self.cfg.gaussian else (y, torch.zeros_like(y)))
        return states.float() + mean, log_var.clamp(-10, 5)

    def member_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-member training loss (M, B): Gaussian NLL (up to a constant) or squared error, mean over dims."""
        mean, log_var = self.outputs(states, actions, generator)
        sq = (mean - next_states.float()) ** 2
        return (0.5 * (log_var + sq * torch.exp(-log_var)) if self.cfg.gaussian else sq).mean(-1)

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Prediction error (B,): squared error of the ensemble-mean prediction, mean over state dims."""
        return ((self.predict(states, actions) - next_states.float()) ** 2).mean(-1)

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """Ensemble-mean next state (B, Ds)."""
        return self.outputs(states, actions)[0].mean(0)

    def disagreement(self, states: Tensor, actions: Tensor) -> Tensor:
        """Variance of the members' means, mean over dims (B,); 0 for a single member."""
        return self.outputs(states, actions)[0].var(0, unbiased=False).mean(-1)

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.member_loss(states, actions, next_states, generator).mean(1).sum()


class SparseContinuousInverse(nn.Module):
    """a = g(M * s, M * s') with M = mask(s, s'); satisfies `wav.types.InverseModel` with (B, A) float actions."""

    def __init__(self, cfg: ContinuousInverseConfig = ContinuousInverseConfig()):
        super().__init__()
        self.cfg = cfg
        d, h = cfg.state_dim, cfg.hidden
        self.mask_net = nn.Sequential(nn.Linear(3 * d, h), nn.SiLU(), nn.Linear(h, d))
        nn.init.constant_(self.mask_net[-1].bias, cfg.init_logit)
        self.mask = FeatureMask(cfg.temperature, cfg.dense)
        dims = [3 * d] + [h] * cfg.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.regressor = nn.Sequential(*layers, nn.Linear(dims[-1], cfg.action_dim))

    def forward(self, states: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Action (B, A), mask (B, Ds) and mask logits (B, Ds)."""
        s, sn = states.float(), next_states.float()
        logits = self.mask_net(torch.cat([s, sn, sn - s], -1))
        m = self.mask(logits, generator)
        return self.regressor(torch.cat([m * s, m * sn, m * (sn - s)], -1)), m, logits

    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        return self(states, next_states)[0]

    def infer_with_mask(self, states: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor]:
        a, m, _ = self(states, next_states)
        return a, m

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        a, _, logits = self(states, next_states, generator)
        return F.mse_loss(a, actions.float()) + self.cfg.l1 * self.mask.penalty(logits)
