"""The MiniGrid world model f(s, a) -> s' (REFERENCE §1): the model that the verification cycle improves.

A small conv net over one-hot cells (with the carried object and the action broadcast to every cell)
predicts per-cell categorical logits for (type, colour, state) and categorical logits for the carried
(colour, type), read from the pooled features and the features of the cell in front of the agent.
Predicting "no change" is the default, so training only has to learn where the agent acts.

The carried ids enter the published Prediction Error as numbers: this model's number is the EXPECTED id
under its categorical carried head, c^ = sum_i i * p(i) (per colour and type), so the squared term is
differentiable and is 0 only when the head is certain of the right id.

With `pointer` (the default) every cell and the carried object come from a pointer head: a gate chooses
between copying the current value, copying another object (the carried one into the front cell, the
front one into the hand), an empty value, or a free categorical head. The dynamics of pickup, drop and
swap are then one gate choice each, learnt for every object from a few examples; `pointer=False` is the
generic conv model with a fixed copy bonus (closer to the published network, and what the asymmetry
sweeps use).

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
        flags = 2 if cfg.pointer else 0  # agent and front-of-agent flags per cell
        self.trunk = nets.GridTrunk(nets.N_CELL_LOGITS + nets.N_CARRIED_LOGITS + N_ACTIONS + flags, h, cfg.layers, m, cfg.dropout)
        self.cell_head = nets.GroupedLinear(m, h, nets.N_CELL_LOGITS)
        raw = 2 * nets.N_CARRIED_LOGITS + N_ACTIONS if cfg.pointer else 0  # front object, hand, action as one-hots
        self.carried_hidden = nets.GroupedLinear(m, 3 * h + raw, h)
        self.carried_head = nets.GroupedLinear(m, h, nets.N_CARRIED_LOGITS)
        if cfg.pointer:
            self.cell_gate = nets.GroupedLinear(m, h, nets.N_SOURCES + 1)
            self.carried_gate = nets.GroupedLinear(m, h, nets.N_SOURCES + 1)
            with torch.no_grad():  # start as "nothing changes": the gates favour copying the current value
                for gate in (self.cell_gate, self.carried_gate):
                    gate.bias.zero_()
                    gate.bias[:, 0] = 3.0
        else:
            self.copy_cell = nn.Parameter(torch.full((nets.N_CELL_LOGITS,), 3.0))
            self.copy_carried = nn.Parameter(torch.full((nets.N_CARRIED_LOGITS,), 3.0))

    def inputs(self, states: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, D), (B,) -> image (B, 45 [+2 flags], W, H), cell one-hot (B, 36, 21), carried one-hot (B, 17)."""
        nets.check_states(states)
        x = nets.cell_inputs(states, actions, N_ACTIONS)  # (B, 36, 21 + 17 + A)
        cell = x[..., : nets.N_CELL_LOGITS].contiguous()
        hand = x[:, 0, nets.N_CELL_LOGITS : nets.N_CELL_LOGITS + nets.N_CARRIED_LOGITS].contiguous()
        if self.cfg.pointer:
            agent, front, _ = nets.agent_cells(states)
            x = torch.cat([x, agent[..., None], front[..., None]], -1)
        return nets.grid_image(x), cell, hand  # image (B, C_in, W, H)

    def logits(self, states: Tensor, actions: Tensor, generator: torch.Generator | None = None, passes: int = 1) -> tuple[Tensor, Tensor]:
        """Per-member log-probabilities, normalised per channel: cells (M, B, 36, 21), carried (M, B, 17).
        Dropout is on iff `generator` is given; `passes` = T stochastic passes at once, rows pass-major
        (M, T*B, ...)."""
        x, cell, hand = self.inputs(states, actions)
        per = self.trunk(x, generator, passes)  # (T*B, 36, M, C)
        rep = (lambda t: t.repeat(passes, *([1] * (t.ndim - 1)))) if passes > 1 else (lambda t: t)  # inputs of every pass
        c = self.cell_head(per).permute(2, 0, 1, 3).contiguous()  # (M, T*B, 36, 21); per-channel ops on a strided view are ~10x slower
        front = nets.agent_cells(states)[1]  # (B, 36)
        g = [nets.pooled(per), nets.at_cell(per, rep(front))]  # (T*B, M, 2C), (T*B, M, C) at the agent's front cell
        if self.cfg.pointer:
            fc = nets.front_as_carried(cell, front)  # (B, 17)
            act = F.one_hot(actions.long(), N_ACTIONS).float()
            g.append(rep(torch.cat([fc, hand, act], -1))[:, None].expand(-1, per.shape[2], -1))  # (T*B, M, 41)
        p = torch.relu(self.carried_hidden(torch.cat(g, -1)))  # (T*B, M, C)
        p = nets.dropout(p, self.cfg.dropout, generator, passes)
        k = self.carried_head(p)  # (T*B, M, 17)
        if not self.cfg.pointer:
            c = nets.block_log_softmax(c + self.copy_cell * rep(cell), nets.CELL_SLICES)
            return c, nets.block_log_softmax(k + self.copy_carried * rep(hand)[:, None], nets.CARRIED_SLICES).transpose(0, 1)  # (M, T*B, 17)
        c = nets.source_mixture(self.cell_gate(per).permute(2, 0, 1, 3).contiguous(), rep(nets.cell_sources(states, cell)), c, nets.CELL_SLICES)
        k = nets.source_mixture(self.carried_gate(p), rep(nets.carried_sources(hand, fc))[:, None], k, nets.CARRIED_SLICES)
        return c, k.transpose(0, 1)

    def mc_logits(self, states: Tensor, actions: Tensor, passes: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """MC-dropout logits of `passes` stochastic passes in one call: (T, M, B, 36, 21), (T, M, B, 17)."""
        b = states.shape[0]
        c, k = self.logits(states, actions, generator, passes)  # (M, T*B, ...)
        m = c.shape[0]
        return c.reshape(m, passes, b, *c.shape[2:]).transpose(0, 1), k.reshape(m, passes, b, -1).transpose(0, 1)

    @property
    def members(self) -> int:
        return self.cfg.members

    def uncertainty(self, states: Tensor, actions: Tensor, passes: int, generator: torch.Generator) -> Tensor:
        """MC-dropout BALD (B,) over `passes` stochastic passes (and the members), as in the authors' release."""
        if self.cfg.dropout <= 0:
            raise ValueError("MC-dropout uncertainty needs a world model trained with dropout > 0 (WorldModelConfig.dropout)")
        c, k = self.mc_logits(states, actions, passes, generator)  # (T, M, B, 36, L), (T, M, B, Lc)
        return categorical_bald(c.flatten(0, 1), k.flatten(0, 1), nets.CELL_SLICES, nets.CARRIED_SLICES, self.cfg.carried_weight)

    def disagreement(self, states: Tensor, actions: Tensor) -> Tensor:
        """BALD across the ensemble's members (B,); 0 for a single member."""
        c, k = self.logits(states, actions)  # (M, B, 36, L), (M, B, Lc)
        return categorical_bald(c, k, nets.CELL_SLICES, nets.CARRIED_SLICES, self.cfg.carried_weight)

    def member_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Prediction Error of each member, (M, B)."""
        c, k = self.logits(states, actions, generator)
        return prediction_error(c, k.exp(), next_states, self.cfg.carried_weight)

    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Published Prediction Error (B,) of the ensemble's mixture prediction (REFERENCE §3)."""
        c, k = self.logits(states, actions)
        return prediction_error(mixture_log_probs(c), k.exp().mean(0), next_states, self.cfg.carried_weight)

    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """Most likely next state under the mixture, (B, D) long."""
        c, k = self.logits(states, actions)
        return nets.decode(mixture_log_probs(c), k.exp().mean(0))

    def predict_and_loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor]:
        """`predict` and `loss` from one forward pass (the verification cycle needs both)."""
        return self.predict_and_losses(states, actions, next_states)

    def predict_and_losses(self, states: Tensor, actions: Tensor, targets: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predictions (U, D) of U (state, action) rows, and the Prediction Error (N,) of each of N
        targets under the prediction of its row `rows[i]` (None: target i belongs to row i): one forward
        pass for many targets."""
        c, k = self.logits(states, actions)
        logp, probs = mixture_log_probs(c), k.exp().mean(0)
        at = (lambda t: t) if rows is None else (lambda t: t[rows])
        return nets.decode(logp, probs), prediction_error(at(logp), at(probs), targets, self.cfg.carried_weight)

    def training_loss(self, states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scalar objective: cross-entropy summed over the cells' channels and the carried (colour, type),
        summed over members, mean over the batch. The published error averages the cells, which scales the
        gradient of the one or two cells that change by 1/36; summing trains much faster, and a sharp
        categorical carried head also minimises the squared carried-id term."""
        c, k = self.logits(states, actions, generator)
        return (nets.cell_nll(c, next_states).sum(-1) + nets.carried_nll(k, next_states)).mean(1).sum()

    def distill_loss(self, teacher: "GridWorldModel", states: Tensor, actions: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """KL(teacher || self) of the next-state distributions at `states` under one other action per row,
        drawn uniformly among the N_ACTIONS - 1 actions that are not the row's label: summed over the cells'
        channels and the carried (colour, type), over members (each against the teacher's mixture), mean
        over the batch. `next_states` is not read (the labelled pair itself is the training loss's)."""
        other = (actions.long() + torch.randint(1, N_ACTIONS, actions.shape, generator=generator)) % N_ACTIONS
        with torch.no_grad():
            tc, tk = teacher.logits(states, other)
            tc, tk = mixture_log_probs(tc), torch.logsumexp(tk, 0) - math.log(tk.shape[0])  # (B, 36, 21), (B, 17)
        c, k = self.logits(states, other, generator)  # (M, B, 36, 21), (M, B, 17): log-probabilities per channel
        kl_cells = (tc.exp() * (tc - c)).sum((-1, -2))  # (M, B): the sum over the channels' KLs (each block normalised)
        kl_hand = (tk.exp() * (tk - k)).sum(-1)
        return (kl_cells + kl_hand).mean(1).sum()


def mixture_log_probs(cell_log_probs: Tensor) -> Tensor:
    """Per-channel log-probabilities of the uniform mixture over members: (M, ..., 21) -> (..., 21)."""
    m = cell_log_probs.shape[0]
    return cell_log_probs[0] if m == 1 else torch.logsumexp(cell_log_probs, 0) - math.log(m)


def prediction_error(cell_log_probs: Tensor, carried_probs: Tensor, next_states: Tensor, carried_weight: float = 10.0) -> Tensor:
    """mean over 36 cells of (CE_type + CE_colour + CE_state) + w * sum((E[c^] - c)^2): (..., 36, 21), (..., 17), (B, D) -> (...)."""
    grid = nets.cell_nll(cell_log_probs, next_states).mean(-1)
    err = nets.carried_expectation(carried_probs) - nets.carried(next_states).to(carried_probs.dtype)
    return grid + carried_weight * (err**2).sum(-1)


def categorical_bald(cell_log_probs: Tensor, carried_log_probs: Tensor, slices, carried_slices, carried_weight: float = 10.0) -> Tensor:
    """BALD over T stochastic predictions: cells (T, B, 36, L), carried (T, B, Lc) -> (B,).

    Inputs are log-probabilities normalised per block (`slices`), as the grid models return them.
    Per head (type, colour, state) and cell, H[mean p] - mean H[p]; max over cells; summed over heads;
    plus `carried_weight` x the variance over passes of the expected carried ids (as published).
    The per-block sums are one matrix product with the block indicator, not one op per head.
    """
    blocks = nets.block_indicator(slices, cell_log_probs.shape[-1])  # (L, heads)
    p = cell_log_probs.exp()
    each = -(p * cell_log_probs) @ blocks  # (T, B, 36, heads) entropies (the log-probabilities are finite)
    mean = p.mean(0)
    mi = -(mean * torch.log(mean.clamp_min(1e-12))) @ blocks - each.mean(0)  # (B, 36, heads)
    ids = torch.zeros(carried_log_probs.shape[-1], len(carried_slices))
    for j, sl in enumerate(carried_slices):
        ids[sl, j] = torch.arange(sl.stop - sl.start, dtype=ids.dtype)
    expected = carried_log_probs.exp() @ ids  # (T, B, 2) expected (colour, type) ids
    return mi.amax(1).sum(-1) + carried_weight * expected.var(0, unbiased=False).sum(-1)
