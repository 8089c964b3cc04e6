"""The sparse inverse dynamics model h(M * s, M * s') -> a of the verification cycle (REFERENCE §1, §2).

Each of the 36 cells and the carried object becomes one token that holds its (type, colour, state)
one-hots in s and in s' plus five flags computed from s and s' (changed, agent in s, cell in front of
the agent in s, agent in s', is-carried). A shared mask net reads each token's flags and which of its
channels changed -- not the object identities, so the mask transfers to unseen objects and layouts --
and emits one mask logit per channel, i.e. one per state feature (108 grid + 2 carried). The classifier
sums a shared bias-free per-token encoder over the masked tokens (position-invariant; a fully masked
token contributes 0) and maps the sum to action logits. `dense=True` is the vanilla inverse model:
the same classifier with the mask fixed to all ones. Evaluation is deterministic (mask = logits > 0).

Three options of InverseConfig, on by default (benchmarks/inverse_seed_stability.py): `fill_flags` adds two
identity-free flags per token (its object empties, fills); `visible_flags` lets the flags bypass the mask;
`changed_only` closes every slot whose value is the same in s and s', so the mask chooses among what the
action changed and the classifier never reads the identity of what it left alone. Together they let the
model trained on the 200 seed transitions read compositions those lack (a box that recolours, a box
dropped where only keys and balls were); with all three off it is the token model of the earlier results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.config import InverseConfig
from wav.envs.minigrid.encoding import EMPTY, N_ACTIONS, N_CELLS
from wav.models import nets
from wav.models.nets import agent_cells
from wav.models.mask import FeatureMask

N_TOKENS = N_CELLS + 1  # 36 cells + carried
N_SLOTS = 3  # (type, colour, state) per token
N_FLAGS = 5  # changed, agent in s, front of agent in s, agent in s', is-carried
N_FILL_FLAGS = 2  # emptied, filled (`fill_flags`)
CLOSED_LOGIT = -1e4  # `changed_only`: the logit of a slot the mask may not keep (sigmoid is exactly 0 in float32)


def slot_values(states: Tensor) -> Tensor:
    """(B, D) -> (B, 37, 3): cell (type, colour, state); carried token as (type, colour, 0)."""
    hand = nets.carried(states)  # (B, 2) = (colour, type)
    hand = torch.stack([hand[:, 1], hand[:, 0], torch.zeros_like(hand[:, 0])], -1)  # (B, 3)
    return torch.cat([nets.cells(states), hand[:, None]], 1)


def slot_onehot(values: Tensor) -> list[Tensor]:
    """(B, 37, 3) -> one (B, 37, n) one-hot per slot."""
    return [F.one_hot(values[..., i].clamp(0, n - 1), n).float() for i, n in enumerate(nets.CELL_CLASSES)]


def tokens(states: Tensor, next_states: Tensor, fill_flags: bool = False) -> tuple[list[Tensor], Tensor]:
    """Per-slot token blocks [(B, 37, 2*n_slot)] x 3 and flags (B, 37, 5), or (B, 37, 7) with `fill_flags`
    (two more: the token's object type becomes empty, becomes non-empty; for the carried token: the hand
    empties, fills). The flags say how a token changed without saying which object it holds."""
    v, vn = slot_values(states), slot_values(next_states)
    blocks = [torch.cat([a, b], -1) for a, b in zip(slot_onehot(v), slot_onehot(vn))]
    agent, front, _ = agent_cells(states)
    agent_next, _, _ = agent_cells(next_states)
    zero = agent.new_zeros(len(agent), 1)
    flags = [
        (v != vn).any(-1).float(),
        torch.cat([agent, zero], 1),
        torch.cat([front, zero], 1),
        torch.cat([agent_next, zero], 1),
        torch.cat([torch.zeros_like(agent), zero + 1], 1),
    ]
    if fill_flags:
        empty, empty_next = v[..., 0] == EMPTY, vn[..., 0] == EMPTY  # (B, 37) each; an empty hand has type EMPTY too
        flags += [(~empty & empty_next).float(), (empty & ~empty_next).float()]
    return blocks, torch.stack(flags, -1)  # (B, 37, 5 or 7)


def token_mask_to_features(mask: Tensor) -> Tensor:
    """(B, 37, 3) per-slot mask -> (B, D) per state feature (carried colour = slot 1, type = slot 0)."""
    b = mask.shape[0]
    grid = mask[:, :N_CELLS].reshape(b, -1)  # (B, 108)
    return torch.cat([grid, mask[:, N_CELLS, 1:2], mask[:, N_CELLS, 0:1]], 1)


class SparseInverseModel(nn.Module):
    """Token-set classifier with a learned per-feature mask; satisfies `wav.types.InverseModel`."""

    def __init__(self, cfg: InverseConfig = InverseConfig()):
        super().__init__()
        self.cfg = cfg
        self.fill_flags, self.visible_flags = cfg.fill_flags, cfg.visible_flags and not cfg.dense
        self.changed_only = cfg.changed_only and not cfg.dense
        h = cfg.hidden
        n_flags = N_FLAGS + N_FILL_FLAGS * cfg.fill_flags
        self.mask_net = nn.Sequential(nn.Linear(n_flags + N_SLOTS, h), nn.ReLU(), nn.Linear(h, N_SLOTS))
        nn.init.constant_(self.mask_net[-1].bias, cfg.init_logit)
        self.mask = FeatureMask(cfg.temperature, cfg.dense)
        # bias-free per-token encoder: a fully masked (all-zero) token maps to 0 and drops out of the sum
        self.phi = nn.Sequential(nn.Linear(2 * nets.N_CELL_LOGITS + n_flags, h, bias=False), nn.ReLU(), nn.Linear(h, h, bias=False), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, N_ACTIONS))

    def forward(self, states: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Action logits (B, A), per-slot mask (B, 37, 3) and mask logits (B, 37, 3)."""
        nets.check_states(states), nets.check_states(next_states)
        blocks, flags = tokens(states, next_states, self.fill_flags)
        slot_changed = (slot_values(states) != slot_values(next_states)).float()  # (B, 37, 3)
        logits = self.mask_net(torch.cat([flags, slot_changed], -1))  # (B, 37, 3)
        if self.changed_only:  # an unchanged slot is closed: never sampled, no penalty, no gradient
            logits = logits.masked_fill(slot_changed == 0, CLOSED_LOGIT)
        m = self.mask(logits, generator)
        gate = 1.0 if self.visible_flags else m.amax(-1, keepdim=True)  # visible: the mask hides what a token holds, never how it changed
        masked = torch.cat([blk * m[..., i : i + 1] for i, blk in enumerate(blocks)] + [flags * gate], -1)
        if torch.is_grad_enabled() or self.cfg.dense:
            pooled = self.phi(masked).sum(1)  # (B, H)
        else:  # inference: phi(0) = 0, so encode only the few tokens the mask keeps (~10x fewer)
            keep = m.amax(-1) > 0  # (B, 37)
            if self.visible_flags:
                keep |= flags.amax(-1) > 0
            rows = torch.arange(len(m))[:, None].expand_as(keep)[keep]  # (T,) owner of each kept token
            pooled = masked.new_zeros(len(m), self.cfg.hidden).index_add_(0, rows, self.phi(masked[keep]))
        return self.rho(pooled), m, logits

    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        """Most likely action (B,) long, deterministic."""
        return self(states, next_states)[0].argmax(-1)

    def infer_with_mask(self, states: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor]:
        """Most likely action (B,) and the feature mask it was computed through, (B, D) float in {0, 1}."""
        logits, m, _ = self(states, next_states)
        return logits.argmax(-1), token_mask_to_features(m)

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Cross-entropy of the true action + l1 * mean mask probability (scalar)."""
        logits, _, mask_logits = self(states, next_states, generator)
        return F.cross_entropy(logits, actions) + self.cfg.l1 * self.mask.penalty(mask_logits)


