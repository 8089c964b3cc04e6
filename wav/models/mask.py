"""The learned binary feature mask M of the sparse inverse models (REFERENCE §1), shared by the MiniGrid
and the continuous inverse models.

Training draws a straight-through Gumbel-sigmoid sample (hard 0/1 forward, relaxed gradient); evaluation
thresholds the logits at 0, so the mask and every prediction made through it are deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def binary_mask(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """Hard {0, 1} mask of `logits`' shape: a straight-through Gumbel-sigmoid sample when `generator` is
    given (training), else the deterministic threshold `logits > 0`."""
    if generator is None:
        return (logits > 0).to(logits.dtype)
    u = torch.rand(logits.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + soft - soft.detach()


def mask_penalty(logits: Tensor) -> Tensor:
    """L1 penalty on the mask: mean over features and batch of P(M = 1) = sigmoid(logits), a scalar."""
    return torch.sigmoid(logits).mean()


class FeatureMask(nn.Module):
    """Holds the mask settings; `dense=True` gives the all-ones mask of the vanilla (unmasked) ablation."""

    def __init__(self, temperature: float = 0.5, dense: bool = False):
        super().__init__()
        self.temperature, self.dense = temperature, dense

    def forward(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.dense:
            return torch.ones_like(logits)
        return binary_mask(logits, self.temperature, generator)

    def penalty(self, logits: Tensor) -> Tensor:
        return logits.new_zeros(()) if self.dense else mask_penalty(logits)
