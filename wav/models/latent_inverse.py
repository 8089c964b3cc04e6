"""The robot inverse model (REFERENCE §6, ROBOT.md §5, issue 13 item 2): a CLAM-style continuous inverse model
with a latent action. An encoder reads a 2-frame context (s_{t-1}, s_t) and the next frame s_{t+1} through a
learned binary feature mask and gives a latent action z (L1-penalised); an action decoder MLP maps z to the
action. Encoder, mask and decoder train jointly (the authors' release never stepped its decoder).

The mask is `wav.models.mask.FeatureMask` (straight-through Gumbel-sigmoid in training, threshold at
evaluation), per transition, from a small net over (s_t, s_{t+1}, s_{t+1} - s_t). `dense=True` is the vanilla
model: no mask and no L1 terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.models.mask import FeatureMask


@dataclass(frozen=True)
class LatentInverseConfig:
    """Sizes and loss weights of `LatentInverseModel`; see `LATENT_INVERSE_PRESETS`."""

    state_dim: int = 50
    """D, flat state features"""
    action_dim: int = 7
    """A, continuous action dims"""
    latent_dim: int = 16
    """dimension of the latent action z"""
    encoder: tuple[int, ...] = (256, 256)
    """hidden units of the encoder MLP (context + next frame -> z)"""
    mask_hidden: int = 128
    """hidden units of the mask net"""
    embed: int = 128
    """width of the decoder's first layer (z -> embedding)"""
    decoder: tuple[int, ...] = (256, 256)
    """hidden units of the action decoder MLP after the embedding"""
    dense: bool = False
    """vanilla model: no mask, no L1 on the mask nor on z"""
    latent_l1: float = 0.1
    """weight of the Charbonnier-L1 penalty on z (mean over dims and rows)"""
    mask_l1: float = 0.1
    """weight of the L1 penalty on the mask (mean of P(M = 1) over features and rows)"""
    temperature: float = 0.5
    """temperature of the straight-through Gumbel-sigmoid mask in training"""
    init_logit: float = 2.0
    """initial mask logit bias (positive: every feature starts on)"""
    lr: float = 3e-4
    """learning rate the fitting loop should use"""
    clip_grad: float = 1.0
    """global gradient-norm clip the fitting loop applies (`model.clip_grad`)"""


LATENT_INVERSE_PRESETS = {
    "debug": LatentInverseConfig(encoder=(64,), mask_hidden=32, embed=32, decoder=(64,)),
    "cpu": LatentInverseConfig(),
    "paper": LatentInverseConfig(encoder=(1024, 1024), mask_hidden=512, embed=512, decoder=(1024, 1024, 1024)),
}


def _mlp(dims: list[int], act: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), act]
    return nn.Sequential(*layers, nn.Linear(dims[-2], dims[-1]))


class LatentInverseModel(nn.Module):
    """h((s_{t-1}, s_t), s_{t+1}) -> a_t through z; satisfies `wav.types.InverseModel` with (B, A) float actions.

    `states` is (B, 2, D) = (s_{t-1}, s_t), or (B, D) = s_t alone, read as a context whose earlier frame
    equals s_t (no motion before it, as `wav.data.sequences.inverse_triples` pads an episode's first step).
    """

    def __init__(self, cfg: LatentInverseConfig = LatentInverseConfig()):
        super().__init__()
        self.cfg = cfg
        self.clip_grad = cfg.clip_grad
        d = cfg.state_dim
        self.mask_net = nn.Sequential(nn.Linear(3 * d, cfg.mask_hidden), nn.SiLU(), nn.Linear(cfg.mask_hidden, d))
        nn.init.constant_(self.mask_net[-1].bias, cfg.init_logit)
        self.mask = FeatureMask(cfg.temperature, cfg.dense)
        self.encoder = _mlp([5 * d, *cfg.encoder, cfg.latent_dim], nn.SiLU())
        self.decoder = _mlp([cfg.latent_dim, cfg.embed, *cfg.decoder, cfg.action_dim], nn.LeakyReLU(0.2))
        # input standardisation (set from the training data by `set_stats`): frames by their mean and std, the
        # frame-to-frame differences by the std of the differences. One step moves the end effector by ~1% of
        # its range, so raw differences are far too small for the encoder to read the action off them.
        self.register_buffer("loc", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("delta_scale", torch.ones(d))
        # the action loss is read in units of each action dim's std, so that its size (~1 - R^2) does not
        # depend on how much the actions vary, and the mask's L1 weight means the same as in MiniGrid's
        # cross-entropy; without it the action MSE (~0.02 here) is 5x smaller than keeping every feature
        # costs, and the mask switches everything off
        self.register_buffer("action_scale", torch.ones(cfg.action_dim))

    @torch.no_grad()
    def set_stats(self, states: Tensor, actions: Tensor, next_states: Tensor) -> "LatentInverseModel":
        """Input and loss standardisation from training triples (states (N, 2, D) or (N, D), actions (N, A),
        next_states (N, D)): frames by their mean and std, differences by the std of s_{t+1} - s_t, the
        action loss by each action dim's std (floored at 10% of the mean std, so a dim that never moves is
        not blown up)."""
        _, cur = self.context(states)
        frames = torch.cat([cur, next_states.float()])
        self.loc.copy_(frames.mean(0))
        self.scale.copy_(frames.std(0).clamp_min(1e-6))
        self.delta_scale.copy_((next_states.float() - cur).std(0).clamp_min(1e-6))
        a_std = actions.float().std(0)
        self.action_scale.copy_(a_std.clamp_min(max(0.1 * float(a_std.mean()), 1e-6)))
        return self

    def context(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 2, D) or (B, D) -> (s_{t-1}, s_t), each (B, D) float."""
        s = states.float()
        if s.ndim == 2:
            return s, s
        if s.ndim == 3 and s.shape[1] == 2:
            return s[:, 0], s[:, 1]
        raise ValueError(f"states must be (B, 2, D) or (B, D); got {tuple(states.shape)}")

    def forward(self, states: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Action (B, A), latent z (B, latent), mask (B, D) and mask logits (B, D)."""
        prev, cur = self.context(states)
        nxt = next_states.float()
        step, before = (nxt - cur) / self.delta_scale, (cur - prev) / self.delta_scale
        prev, cur, nxt = ((x - self.loc) / self.scale for x in (prev, cur, nxt))
        logits = self.mask_net(torch.cat([cur, nxt, step], -1))
        m = self.mask(logits, generator)
        z = self.encoder(torch.cat([m * prev, m * cur, m * nxt, m * step, m * before], -1))  # (B, latent)
        return self.decoder(z), z, m, logits

    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        return self(states, next_states)[0]

    def infer_with_mask(self, states: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor]:
        """Inferred actions (B, A) and the deterministic mask (B, D) they were read through."""
        a, _, m, _ = self(states, next_states)
        return a, m

    def losses(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Scalar terms: 'action' MSE (in units of each dim's std), 'latent' Charbonnier-L1 of z, 'mask' L1, weighted 'total'."""
        a, z, _, logits = self(states, next_states, generator)
        out = {"action": (((a - actions.float()) / self.action_scale) ** 2).mean(), "latent": torch.sqrt(z**2 + 1e-12).mean(), "mask": self.mask.penalty(logits)}
        extra = 0.0 if self.cfg.dense else self.cfg.latent_l1 * out["latent"] + self.cfg.mask_l1 * out["mask"]
        out["total"] = out["action"] + extra
        return out

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.losses(states, actions, next_states, generator)["total"]


def preset(name: str, **overrides) -> LatentInverseConfig:
    """A named preset with fields replaced, e.g. `preset("cpu", state_dim=43, dense=True)`."""
    if name not in LATENT_INVERSE_PRESETS:
        raise ValueError(f"unknown latent inverse preset {name!r}; expected one of {sorted(LATENT_INVERSE_PRESETS)}")
    return replace(LATENT_INVERSE_PRESETS[name], **overrides)
