"""Network pieces shared by the MiniGrid models: one-hot cell inputs, grouped (ensemble) layers, decoding.

A flat state (B, D=110) is read as 36 cells x (type, colour, state) + carried (colour, type). Cell c is
grid position (x, y) = divmod(c, 6), matching `to_features`. Per-cell logits concatenate the three
channels' classes (11 + 6 + 4 = 21, see CELL_SLICES); carried logits are colour (6) + type (11).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.envs.minigrid.encoding import AGENT, DIR_VEC, EMPTY, EMPTY_CARRIED, GRID_SIZE, N_CELLS, N_CHANNELS, N_COLOURS, N_FEATURES, N_STATES, N_TYPES

CELL_CLASSES = (N_TYPES, N_COLOURS, N_STATES)
N_CELL_LOGITS = sum(CELL_CLASSES)  # 21
CELL_SLICES = (slice(0, N_TYPES), slice(N_TYPES, N_TYPES + N_COLOURS), slice(N_TYPES + N_COLOURS, N_CELL_LOGITS))
CARRIED_CLASSES = (N_COLOURS, N_TYPES)  # (colour, type), the order of the carried features
N_CARRIED_LOGITS = sum(CARRIED_CLASSES)  # 17
CARRIED_SLICES = (slice(0, N_COLOURS), slice(N_COLOURS, N_CARRIED_LOGITS))
N_GRID_FEATURES = N_CELLS * N_CHANNELS  # 108


def check_states(states: Tensor) -> Tensor:
    """Validate a (B, D) long state batch; returns it unchanged."""
    if states.ndim != 2 or states.shape[1] != N_FEATURES:
        raise ValueError(f"states must be (B, {N_FEATURES}) long tensors; got shape {tuple(states.shape)}")
    return states


def cells(states: Tensor) -> Tensor:
    """(B, D) -> (B, 36, 3) cell values."""
    return states[:, :N_GRID_FEATURES].reshape(-1, N_CELLS, N_CHANNELS)


def carried(states: Tensor) -> Tensor:
    """(B, D) -> (B, 2) = (colour, type)."""
    return states[:, N_GRID_FEATURES:]


def agent_cells(states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Agent cell and front cell one-hots, (B, 36) float each, and whether an agent exists (B,) bool."""
    c = cells(states)  # (B, 36, 3)
    is_agent = c[..., 0] == AGENT  # (B, 36)
    has = is_agent.any(1)
    idx = is_agent.float().argmax(1)  # (B,)
    d = c[torch.arange(len(c)), idx, 2].clamp(0, 3)  # (B,)
    vec = torch.as_tensor(DIR_VEC)[d]  # (B, 2) = (dx, dy)
    x, y = idx // GRID_SIZE + vec[:, 0], idx % GRID_SIZE + vec[:, 1]
    inside = has & (x >= 0) & (x < GRID_SIZE) & (y >= 0) & (y < GRID_SIZE)
    front = F.one_hot((x * GRID_SIZE + y).clamp(0, N_CELLS - 1), N_CELLS).float() * inside[:, None]
    return is_agent.float(), front, has


def cell_onehot(states: Tensor) -> Tensor:
    """(B, D) long -> (B, 36, 21) float one-hot of (type, colour, state) per cell."""
    c = cells(states)
    return torch.cat([F.one_hot(c[..., i].clamp(0, n - 1), n) for i, n in enumerate(CELL_CLASSES)], -1).float()


_INPUT_SIZES = torch.tensor(CELL_CLASSES + CARRIED_CLASSES)  # per-cell index blocks: cell (type, colour, state), hand (colour, type)
_INPUT_OFFSETS = torch.cumsum(_INPUT_SIZES, 0) - _INPUT_SIZES


def cell_inputs(states: Tensor, actions: Tensor, n_actions: int) -> Tensor:
    """Per-cell one-hot inputs in ONE scatter, (B, D), (B,) -> (B, 36, 21 + 17 + n_actions): the cell's
    (type, colour, state) as `cell_onehot`, the carried (colour, type) as `carried_onehot` and the action,
    both broadcast to every cell. Same values as concatenating those one-hots, at a fraction of the copies."""
    actions = actions.long()
    if len(actions) and (int(actions.min()) < 0 or int(actions.max()) >= n_actions):
        raise ValueError(f"actions must be ids in [0, {n_actions}); got range [{int(actions.min())}, {int(actions.max())}]")
    b = len(states)
    per_cell = torch.cat([cells(states), carried(states)[:, None].expand(-1, N_CELLS, -1)], -1)  # (B, 36, 5)
    idx = torch.minimum(per_cell, _INPUT_SIZES - 1).clamp_min(0) + _INPUT_OFFSETS
    idx = torch.cat([idx, (actions + N_CELL_LOGITS + N_CARRIED_LOGITS)[:, None, None].expand(-1, N_CELLS, 1)], -1)  # (B, 36, 6)
    return torch.zeros(b, N_CELLS, N_CELL_LOGITS + N_CARRIED_LOGITS + n_actions).scatter_(-1, idx, 1.0)


def carried_onehot(states: Tensor) -> Tensor:
    """(B, D) long -> (B, 17) float one-hot of (colour, type)."""
    c = carried(states)
    return torch.cat([F.one_hot(c[:, i].clamp(0, n - 1), n) for i, n in enumerate(CARRIED_CLASSES)], -1).float()


def _onehot3(type_: Tensor, colour: Tensor, state: Tensor) -> Tensor:
    """One-hot cell values from (...,) type, colour and state ids -> (..., 21)."""
    return torch.cat([F.one_hot(v.clamp(0, n - 1), n) for v, n in zip((type_, colour, state), CELL_CLASSES)], -1).float()


def hand_as_cell(states: Tensor) -> Tensor:
    """The carried object as a grid cell (what a drop or swap puts in front), (B, D) -> (B, 21) one-hot."""
    hand = carried(states)  # (B, 2) = (colour, type)
    return _onehot3(hand[:, 1], hand[:, 0], torch.zeros_like(hand[:, 0]))


def front_as_carried(cell: Tensor, front: Tensor) -> Tensor:
    """The object in front of the agent as a carried value (what a pickup or swap takes):
    cell one-hots (B, 36, 21) and the front one-hot (B, 36) -> (B, 17) in (colour, type) order."""
    f = torch.einsum("bnl,bn->bl", cell, front)  # (B, 21) one-hot of the front cell (0 without a front cell)
    return torch.cat([f[:, CELL_SLICES[1]], f[:, CELL_SLICES[0]]], -1)


def cell_sources(states: Tensor, cell: Tensor) -> Tensor:
    """Fixed candidate values of every next cell, (B, 36, 3, 21): the cell as it is, the carried object,
    an empty cell. A pointer head (`source_mixture`) picks among them or falls back to its free head."""
    b = len(states)
    empty = _onehot3(*(torch.tensor(v).expand(b) for v in (EMPTY, 0, 0)))  # (B, 21)
    other = torch.stack([hand_as_cell(states), empty], 1)[:, None].expand(-1, cell.shape[1], -1, -1)  # (B, 36, 2, 21)
    return torch.cat([cell[:, :, None], other], 2)


def carried_sources(hand: Tensor, front_carried: Tensor) -> Tensor:
    """Fixed candidate values of the next carried object, (B, 3, 17): the hand as it is, the front object,
    an empty hand."""
    empty = torch.zeros_like(hand)
    empty[:, EMPTY_CARRIED[0]] = 1.0
    empty[:, N_COLOURS + EMPTY_CARRIED[1]] = 1.0
    return torch.stack([hand, front_carried, empty], 1)


N_SOURCES = 3  # sources of `cell_sources` / `carried_sources`; a pointer gate has N_SOURCES + 1 logits (+ free)


def source_mixture(gate_logits: Tensor, sources: Tensor, free_logits: Tensor, slices) -> Tensor:
    """Pointer head: log-probabilities of sum_s w_s * source_s + w_free * softmax(free) per channel block.

    gate_logits (..., S + 1), sources (..., S, L) one-hots (each block of every source sums to 1), free
    logits (..., L); leading dims broadcast. Copying the current value, another object or a constant is
    one gate choice away, so a handful of examples teach "a pickup puts the front object in the hand"
    for every object, where a free head has to learn each (colour, type) separately.
    """
    w = torch.softmax(gate_logits, -1)
    free = torch.cat([torch.softmax(free_logits[..., s], -1) for s in slices], -1)
    mix = (w[..., :-1, None] * sources).sum(-2) + w[..., -1:] * free  # (..., L)
    return torch.log(mix + 1e-6)


def grid_image(per_cell: Tensor) -> Tensor:
    """(B, 36, C) -> (B, C, W, H) for 2-d convolution."""
    b, _, ch = per_cell.shape
    return per_cell.reshape(b, GRID_SIZE, GRID_SIZE, ch).permute(0, 3, 1, 2)


def decode(cell_logits: Tensor, carried_logits: Tensor) -> Tensor:
    """Most likely state: (..., 36, 21) and (..., 17) logits -> (..., D) long."""
    grid = torch.stack([cell_logits[..., s].argmax(-1) for s in CELL_SLICES], -1)  # (..., 36, 3)
    hand = torch.stack([carried_logits[..., s].argmax(-1) for s in CARRIED_SLICES], -1)  # (..., 2)
    return torch.cat([grid.flatten(-2), hand], -1)


def _truncated_sample(logits: Tensor, min_prob: float, generator: torch.Generator | None) -> Tensor:
    """Sample a class among those with probability >= min_prob (the argmax is always eligible): (..., n) -> (...)."""
    p = torch.softmax(logits, -1)
    keep = p >= torch.minimum(torch.full_like(p[..., :1], min_prob), p.amax(-1, keepdim=True))
    u = torch.rand(p.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return torch.where(keep, torch.log(p) - torch.log(-torch.log(u)), torch.full_like(p, -torch.inf)).argmax(-1)


def sample_decode(cell_logits: Tensor, carried_logits: Tensor, min_prob: float, generator: torch.Generator | None = None) -> Tensor:
    """Like `decode`, but each channel is SAMPLED among its classes of probability >= min_prob: a channel
    the model is sure of decodes to its argmax; a genuinely split one (turn left or right?) yields each option."""
    grid = torch.stack([_truncated_sample(cell_logits[..., s], min_prob, generator) for s in CELL_SLICES], -1)  # (..., 36, 3)
    hand = torch.stack([_truncated_sample(carried_logits[..., s], min_prob, generator) for s in CARRIED_SLICES], -1)
    return torch.cat([grid.flatten(-2), hand], -1)


_INDICATORS: dict[tuple, Tensor] = {}


def block_indicator(slices, n: int) -> Tensor:
    """(n, len(slices)) float indicator of the block each of n classes belongs to (cached)."""
    key = (n, *((s.start, s.stop) for s in slices))
    if key not in _INDICATORS:
        m = torch.zeros(n, len(slices))
        for j, sl in enumerate(slices):
            m[sl, j] = 1.0
        _INDICATORS[key] = m
    return _INDICATORS[key]


UNDERFLOW = 1e-30  # a block whose exp-sum after the row-max shift falls below this is renormalised on its own


def block_log_softmax(logits: Tensor, slices) -> Tensor:
    """Normalise each channel block of (..., L) logits to log-probabilities (the blocks tile L).

    One shift by the row's max and two products with the block indicator replace a log-softmax per
    strided block (5x faster forward, 2x with backward, on CPU). The shift is constant per row, so it
    does not change any block's result and carries no gradient; where some block lies so far below the
    row's max that its exp-sum underflows, the exact per-block form is used instead."""
    blocks = block_indicator(slices, logits.shape[-1]).to(logits.dtype)
    shifted = logits - logits.detach().amax(-1, keepdim=True)
    sums = shifted.exp() @ blocks  # (..., n_blocks)
    if bool((sums.detach() < UNDERFLOW).any()):
        return torch.cat([torch.log_softmax(logits[..., s], -1) for s in slices], -1)
    return shifted - torch.log(sums) @ blocks.T


def _block_nll(log_probs: Tensor, tgt: Tensor, offsets: Tensor, sizes: Tensor) -> Tensor:
    """-log p of each target class, summed over the blocks: log_probs (..., L), targets (..., n_blocks)."""
    idx = offsets + torch.minimum(tgt, sizes - 1).clamp_min(0)  # (..., n_blocks) positions in L
    return -log_probs.gather(-1, idx.expand(*log_probs.shape[:-1], idx.shape[-1])).sum(-1)


_CELL_OFFSETS = torch.tensor([s.start for s in CELL_SLICES])
_CELL_SIZES = torch.tensor(CELL_CLASSES)
_CARRIED_OFFSETS = torch.tensor([s.start for s in CARRIED_SLICES])
_CARRIED_SIZES = torch.tensor(CARRIED_CLASSES)


def cell_nll(cell_log_probs: Tensor, targets: Tensor) -> Tensor:
    """Sum over the 3 channels of the cross-entropy per cell: log-probabilities (normalised per channel,
    as every model here returns them) (..., 36, 21), targets (..., D) -> (..., 36)."""
    tgt = targets[..., :N_GRID_FEATURES].reshape(*targets.shape[:-1], N_CELLS, N_CHANNELS)
    return _block_nll(cell_log_probs, tgt, _CELL_OFFSETS, _CELL_SIZES)


def carried_nll(carried_log_probs: Tensor, targets: Tensor) -> Tensor:
    """Sum over (colour, type) of the carried cross-entropy: log-probabilities (..., 17), (..., D) -> (...)."""
    return _block_nll(carried_log_probs, targets[..., N_GRID_FEATURES:], _CARRIED_OFFSETS, _CARRIED_SIZES)


def carried_expectation(carried_probs: Tensor) -> Tensor:
    """Carried ids as numbers: expected (colour, type) id under the categorical heads, (..., 17) -> (..., 2)."""
    outs = []
    for s in CARRIED_SLICES:
        p = carried_probs[..., s]
        outs.append((p * torch.arange(p.shape[-1], dtype=p.dtype)).sum(-1))
    return torch.stack(outs, -1)


def carried_softmax(carried_logits: Tensor) -> Tensor:
    """Per-block probabilities of (..., 17) carried logits or log-probabilities."""
    return torch.cat([torch.softmax(carried_logits[..., s], -1) for s in CARRIED_SLICES], -1)


def dropout(x: Tensor, p: float, generator: torch.Generator | None, passes: int = 1, fan_out: bool = False) -> Tensor:
    """Inverted dropout drawn from an explicit generator; identity when `generator` is None or p == 0.

    With `passes` = T > 1 (MC dropout) x holds T*B rows, pass-major (or B rows with `fan_out`: every
    pass drops from the same input, and the result has T*B rows). Each pass draws ONE mask that all its
    rows share: a pass is one sampled network, so the candidates of a pool are compared under the same
    T networks (common random numbers), and the draws cost T masks instead of T*B."""
    if generator is None or p <= 0:
        return x.repeat(passes, *([1] * (x.ndim - 1))) if fan_out else x
    if passes == 1:
        keep = torch.rand(x.shape, generator=generator) >= p
        return x * keep / (1.0 - p)
    keep = torch.rand((passes, 1, *x.shape[1:]), generator=generator) >= p
    rows = x[None] if fan_out else x.reshape(passes, -1, *x.shape[1:])
    return (rows * (keep / (1.0 - p))).reshape(-1, *x.shape[1:])


class GroupedLinear(nn.Module):
    """M independent linear layers applied in one einsum: (..., M, I) -> (..., M, O)."""

    def __init__(self, members: int, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, d_out).uniform_(-bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = torch.einsum("...mi,mio->...mo", x, self.weight)
        return y if self.bias is None else y + self.bias


class GridTrunk(nn.Module):
    """M conv trunks run as one grouped conv: (B, Cin, W, H) -> per-cell features (B, 36, M, hidden).

    The convolutions run in channels-last memory, whose layout IS the per-cell feature table, so no
    transpose is copied (about 2x faster on CPU than NCHW for these 6x6 grids)."""

    def __init__(self, in_channels: int, hidden: int, layers: int, members: int = 1, dropout: float = 0.0):
        super().__init__()
        self.members, self.hidden, self.p = members, hidden, dropout
        dims = [in_channels] + [hidden] * layers
        self.convs = nn.ModuleList(
            nn.Conv2d(members * a, members * b, 3, padding=1, groups=members) for a, b in zip(dims[:-1], dims[1:])
        )

    def forward(self, x: Tensor, generator: torch.Generator | None = None, passes: int = 1) -> Tensor:
        """(B, Cin, W, H) -> (T*B, 36, M, hidden) for T = `passes` stochastic (dropout) passes, rows pass-major.

        Training (one pass) drops each unit of each row independently; with T > 1 passes each pass
        shares one mask per layer across its rows (`dropout`). The first conv is the same in every pass
        (dropout comes after it), so it runs once."""
        b = x.shape[0]
        x = x.repeat(1, self.members, 1, 1) if self.members > 1 else x  # (B, M*Cin, W, H)
        x = x.contiguous(memory_format=torch.channels_last)
        for i, conv in enumerate(self.convs):
            y = torch.relu_(conv(x)).permute(0, 2, 3, 1)  # (N, W, H, M*C), a contiguous view
            if passes == 1:  # per-unit masks, drawn in (N, C, W, H) order as by the NCHW trunk this replaced
                y = dropout(y.permute(0, 3, 1, 2), self.p, generator).permute(0, 2, 3, 1)
            else:
                y = dropout(y, self.p, generator, passes, fan_out=i == 0)  # (T*B, W, H, M*C)
            x = y.permute(0, 3, 1, 2)  # NCHW view of channels-last memory
        return y.reshape(b * passes, N_CELLS, self.members, self.hidden)


def pooled(h: Tensor) -> Tensor:
    """Mean- and max-pool over the grid: per-cell features (B, 36, ..., C) -> (B, ..., 2C)."""
    return torch.cat([h.mean(1), h.amax(1)], -1)


def at_cell(h: Tensor, onehot: Tensor) -> Tensor:
    """Features of one cell per row: (B, 36, M, C) and a cell one-hot (B, 36) -> (B, M, C)."""
    return torch.einsum("bnmc,bn->bmc", h, onehot)
