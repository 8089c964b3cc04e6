"""The action-free subgoal generator p(s' | s) of the verification cycle (REFERENCE §1): proposes the
K plausible next states that the inverse model labels and the world model must reproduce.

Model: Z discrete codes, a learned prior p(z | s) and a per-cell categorical decoder p(s' | s, z) that
adds a "copy" bonus to each cell's current value (most cells do not change). Training reads (s, s')
pairs only -- actions are never seen -- and is winner-takes-all (hard EM / multiple-choice learning):
each s' trains only the code that already explains it best, and the prior learns how often each code
wins at s. Soft alternatives fail here: a turn left and a turn right differ in one variable, so under
marginal likelihood one code with a 50/50 direction fits them as well as two sharp codes (and a
learned prior in the responsibilities collapses all data onto one code); under winner-takes-all a
50/50 code costs log 2 nats that a sharp code saves, so codes specialise.
`sample` draws codes without replacement (Gumbel-top-k) so K samples cover the distinct modes, and
decodes each code to its most likely next state (or, with min_class_prob < 1, samples each channel among
its likely classes, so a code left split between two outcomes that differ in one channel yields both).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wav.config import SubgoalConfig
from wav.models import nets


class MixtureSubgoalGenerator(nn.Module):
    """Discrete-latent subgoal generator; satisfies `wav.types.SubgoalGenerator`."""

    def __init__(self, cfg: SubgoalConfig = SubgoalConfig()):
        super().__init__()
        self.cfg = cfg
        h, hz, z = cfg.hidden, cfg.code_hidden, cfg.codes
        self.trunk = nets.GridTrunk(nets.N_CELL_LOGITS + nets.N_CARRIED_LOGITS, h, cfg.layers)
        self.prior = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU(), nn.Linear(h, z))
        self.cell_in = nn.Linear(h, hz)
        self.carried_in = nn.Linear(3 * h, hz)
        # near-identical codes at init: under winner-takes-all they then split the data by small leanings;
        # codes that start far apart leave all but one code losing everywhere
        self.cell_code = nn.Parameter(0.01 * torch.randn(z, hz))
        self.carried_code = nn.Parameter(0.01 * torch.randn(z, hz))
        self.cell_out = nn.Linear(hz, nets.N_CELL_LOGITS)
        self.carried_out = nn.Linear(hz, nets.N_CARRIED_LOGITS)
        self.copy_cell = nn.Parameter(torch.full((nets.N_CELL_LOGITS,), 3.0))
        self.copy_carried = nn.Parameter(torch.full((nets.N_CARRIED_LOGITS,), 3.0))

    def _trunk(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Cell one-hot (B, 36, 21), carried one-hot (B, 17), per-cell features (B, 36, C), and global
        features (B, 3C): mean- and max-pooled plus those of the cell in front of the agent (what a pickup takes)."""
        nets.check_states(states)
        cell, hand = nets.cell_onehot(states), nets.carried_onehot(states)
        x = torch.cat([cell, hand[:, None].expand(-1, cell.shape[1], -1)], -1)  # (B, 36, 38)
        h = self.trunk(nets.grid_image(x))  # (B, 1, C, W, H)
        front = torch.einsum("bcn,bn->bc", h[:, 0].flatten(-2), nets.agent_cells(states)[1])  # (B, C) at the front cell
        return cell, hand, nets.per_cell(h)[:, 0], torch.cat([nets.pooled(h)[:, 0], front], -1)

    def _decode(self, cell: Tensor, hand: Tensor, feats: Tensor, g: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder logits for (relaxed) one-hot codes (B, ..., Z) -> cells (B, ..., 36, 21), carried (B, ..., 17)."""
        extra = codes.ndim - 2  # 1 when decoding all Z codes at once
        view = (slice(None),) + (None,) * extra
        u = torch.relu(self.cell_in(feats)[view] + (codes @ self.cell_code)[..., None, :])  # (B, ..., 36, Hz)
        v = torch.relu(self.carried_in(g)[view] + codes @ self.carried_code)  # (B, ..., Hz)
        return self.cell_out(u) + self.copy_cell * cell[view], self.carried_out(v) + self.copy_carried * hand[view]

    def forward(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Prior log-probs (B, Z) and every code's decoder logits: cells (B, Z, 36, 21), carried (B, Z, 17)."""
        cell, hand, feats, g = self._trunk(states)
        every = torch.eye(self.cfg.codes).expand(len(states), -1, -1)  # (B, Z, Z)
        c, k = self._decode(cell, hand, feats, g, every)
        return torch.log_softmax(self.prior(g), -1), c, k

    def training_loss(self, states: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scalar, per state feature; uses no action labels. Relaxed winner-takes-all: the code whose
        decoder explains s' best is trained on it with weight 1 - relax, every code with weight relax / Z,
        and the prior p(z | s) is fitted to the winner by cross-entropy."""
        log_prior, c, k = self(states)
        tgt = next_states[:, None]  # (B, 1, D)
        log_lik = -nets.cell_nll(c, tgt).sum(-1) - nets.carried_nll(k, tgt)  # (B, Z)
        best, winner = log_lik.max(-1)
        # relaxed: every code also gets a small share, so a code that never wins is not dead
        decoder = -(1 - self.cfg.relax) * best - self.cfg.relax * log_lik.mean(-1)
        return (decoder - log_prior.gather(1, winner[:, None]).squeeze(1)).mean() / states.shape[1]

    @torch.no_grad()
    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None, chunk: int = 4096, distinct: bool = True) -> Tensor:
        """K subgoals per state, (B, D) -> (B, K, D) long. With `distinct`, codes are drawn without
        replacement by Gumbel-top-k over p(z | s), so the first min(K, Z) samples are distinct codes (best
        coverage); otherwise i.i.d. from p(z | s), so each outcome appears as often as it is plausible.
        Codes with prior below `min_prior` are replaced by draws from the prior restricted to the codes
        above it."""
        return torch.cat([self._sample(states[i : i + chunk], k, generator, distinct) for i in range(0, len(states), chunk)], 0)

    def _sample(self, states: Tensor, k: int, generator: torch.Generator | None, distinct: bool = True) -> Tensor:
        cell, hand, feats, g = self._trunk(states)
        log_prior = torch.log_softmax(self.prior(g), -1)  # (B, Z)
        z = log_prior.shape[1]
        u = torch.rand(log_prior.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
        order = torch.argsort(log_prior - torch.log(-torch.log(u)), -1, descending=True)  # (B, Z)
        prior = log_prior.exp()
        allowed = prior * (prior >= self.cfg.min_prior)
        allowed = torch.where(allowed.sum(-1, keepdim=True) > 0, allowed, prior)  # (B, Z)
        iid = torch.multinomial(allowed, k, replacement=True, generator=generator)  # (B, K)
        if not distinct:
            idx = iid
        else:
            idx = order[:, :k] if k <= z else torch.cat([order, iid[:, z:]], 1)
        idx = torch.where(prior.gather(1, idx) >= self.cfg.min_prior, idx, iid)  # (B, K)
        c, kk = self._decode(cell, hand, feats, g, torch.eye(z)[idx])  # (B, K, 36, 21), (B, K, 17)
        if self.cfg.min_class_prob >= 1:
            return nets.decode(c, kk)  # (B, K, D)
        return nets.sample_decode(c, kk, self.cfg.min_class_prob, generator)  # (B, K, D)


class IIDSubgoals:
    """`SubgoalGenerator` view of a generator that proposes i.i.d. samples of p(s' | s) (repeats allowed).

    The verification cycle scores candidate actions by the subgoals mapped to them; enumerating every
    code once would propose a rare (often implausible) outcome as often as the likely one.
    """

    def __init__(self, model: MixtureSubgoalGenerator):
        self.model = model

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        return self.model.sample(states, k, generator, distinct=False)
