"""The MiniGrid world model f(s, a) -> s' (REFERENCE §1): the model that the verification cycle improves.

A small conv net over one-hot cells (with the carried object and the action broadcast to every cell)
predicts per-cell categorical logits for (type, colour, state) and categorical logits for the carried
(colour, type), read from the pooled features and the features of the cell in front of the agent. Each head adds a learned "copy" bonus to the class the input already has, so predicting
"no change" is the default and training only has to learn where the agent acts.

The carried ids enter the published Prediction Error as numbers: this model's number is the EXPECTED id
under its categorical carried head, c^ = sum_i i * p(i) (per colour and type), so the squared term is
differentiable and is 0 only when the head is certain of the right id.

An ensemble of M members is one grouped-conv network (`members=M`), evaluated in one call; MC-dropout
passes are batched too (`mc_logits`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.config import WorldModelConfig
from wav.envs.minigrid.encoding import N_ACTIONS
from wav.models import nets


class GridWorldModel(nn.Module):
    """Categorical per-cell world model with M ensemble members; satisfies `wav.types.WorldModel`."""

    def __init__(self, cfg: WorldModelConfig = WorldModelConfig()):
        super().__init__()
        self.cfg = cfg
        m, h = cfg.members, cfg.hidden
        self.trunk = nets.GridTrunk(nets.N_CELL_LOGITS + nets.N_CARRIED_LOGITS + N_ACTIONS, h, cfg.layers, m, cfg.dropout)
        self.cell_head = nets.GroupedLinear(m, h, nets.N_CELL_LOGITS)
        self.carried_hidden = nets.GroupedLinear(m, 3 * h, h)
        self.carried_head = nets.GroupedLinear(m, h, nets.N_CARRIED_LOGITS)
        self.copy_cell = nn.Parameter(torch.full((nets.N_CELL_LOGITS,), 3.0))
        self.copy_carried = nn.Parameter(torch.full((nets.N_CARRIED_LOGITS,), 3.0))

    def inputs(self, states: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, D), (B,) -> image (B, 45, W, H), cell one-hot (B, 36, 21), carried one-hot (B, 17)."""
        nets.check_states(states)
        cell = nets.cell_onehot(states)
        hand = nets.carried_onehot(states)
        act = F.one_hot(actions.long(), N_ACTIONS).float()  # (B, A)
        n = cell.shape[1]
        x = torch.cat([cell, hand[:, None].expand(-1, n, -1), act[:, None].expand(-1, n, -1)], -1)  # (B, 36, 45)
        return nets.grid_image(x), cell, hand

    def logits(self, states: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Per-member logits: cells (M, B, 36, 21), carried (M, B, 17). Dropout is on iff `generator` is given."""
        x, cell, hand = self.inputs(states, actions)
        h = self.trunk(x, generator)  # (B, M, C, W, H)
        c = self.cell_head(nets.per_cell(h).transpose(1, 2))  # (B, 36, M, 21)
        c = c.permute(2, 0, 1, 3) + self.copy_cell * cell  # (M, B, 36, 21)
        front = torch.einsum("bmcn,bn->bmc", h.flatten(-2), nets.agent_cells(states)[1])  # (B, M, C) at the agent's front cell
        p = torch.relu(self.carried_hidden(torch.cat([nets.pooled(h), front], -1)))  # (B, M, C)
        p = nets.dropout(p, self.cfg.dropout, generator)
        k = self.carried_head(p).transpose(0, 1) + self.copy_carried * hand  # (M, B, 17)
        return c, k

    def mc_logits(self, states: Tensor, actions: Tensor, passes: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """MC-dropout logits of `passes` stochastic passes in one call: (T, M, B, 36, 21), (T, M, B, 17)."""
        b = states.shape[0]
        c, k = self.logits(states.repeat(passes, 1), actions.repeat(passes), generator)  # (M, T*B, ...)
        m = c.shape[0]
        return c.reshape(m, passes, b, *c.shape[2:]).transpose(0, 1), k.reshape(m, passes, b, -1).transpose(0, 1)

    def member_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Prediction Error of each member, (M, B)."""
        c, k = self.logits(states, actions, generator)
        return prediction_error(c, nets.carried_softmax(k), next_states, self.cfg.carried_weight)

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Published Prediction Error (B,) of the ensemble's mixture prediction (REFERENCE §3)."""
        c, k = self.logits(states, actions)
        return prediction_error(mixture_log_probs(c), nets.carried_softmax(k).mean(0), next_states, self.cfg.carried_weight)

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """Most likely next state under the mixture, (B, D) long."""
        c, k = self.logits(states, actions)
        return nets.decode(mixture_log_probs(c), nets.carried_softmax(k).mean(0))

    def predict_and_loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor]:
        """`predict` and `loss` from one forward pass (the verification cycle needs both)."""
        c, k = self.logits(states, actions)
        logp, probs = mixture_log_probs(c), nets.carried_softmax(k).mean(0)
        return nets.decode(logp, probs), prediction_error(logp, probs, next_states, self.cfg.carried_weight)

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scalar objective: cross-entropy summed over the cells' channels and the carried (colour, type),
        summed over members, mean over the batch. The published error averages the cells, which scales the
        gradient of the one or two cells that change by 1/36; summing trains much faster, and a sharp
        categorical carried head also minimises the squared carried-id term."""
        c, k = self.logits(states, actions, generator)
        return (nets.cell_nll(c, next_states).sum(-1) + nets.carried_nll(k, next_states)).mean(1).sum()


def mixture_log_probs(cell_logits: Tensor) -> Tensor:
    """Per-channel log-probabilities of the uniform mixture over members: (M, ..., 21) -> (..., 21)."""
    m = cell_logits.shape[0]
    return torch.cat([torch.logsumexp(torch.log_softmax(cell_logits[..., s], -1), 0) - math.log(m) for s in nets.CELL_SLICES], -1)


def prediction_error(cell_logits: Tensor, carried_probs: Tensor, next_states: Tensor, carried_weight: float = 10.0) -> Tensor:
    """mean over 36 cells of (CE_type + CE_colour + CE_state) + w * sum((E[c^] - c)^2): (..., 36, 21), (..., 17), (B, D) -> (...)."""
    grid = nets.cell_nll(cell_logits, next_states).mean(-1)
    err = nets.carried_expectation(carried_probs) - nets.carried(next_states).to(carried_probs.dtype)
    return grid + carried_weight * (err**2).sum(-1)
