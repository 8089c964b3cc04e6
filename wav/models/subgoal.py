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

import numpy as np
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
        flags = 2 if cfg.pointer else 0  # agent and front-of-agent flags per cell
        self.trunk = nets.GridTrunk(nets.N_CELL_LOGITS + nets.N_CARRIED_LOGITS + flags, h, cfg.layers)
        self.prior = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU(), nn.Linear(h, z))
        self.cell_in = nn.Linear(h, hz)
        raw = 2 * nets.N_CARRIED_LOGITS if cfg.pointer else 0  # front object and hand as one-hots
        self.carried_in = nn.Linear(3 * h + raw, hz)
        # near-identical codes at init: under winner-takes-all they then split the data by small leanings;
        # codes that start far apart leave all but one code losing everywhere
        self.cell_code = nn.Parameter(0.01 * torch.randn(z, hz))
        self.carried_code = nn.Parameter(0.01 * torch.randn(z, hz))
        self.cell_out = nn.Linear(hz, nets.N_CELL_LOGITS)
        self.carried_out = nn.Linear(hz, nets.N_CARRIED_LOGITS)
        if cfg.pointer:
            self.cell_gate = nn.Linear(hz, nets.N_SOURCES + 1)
            self.carried_gate = nn.Linear(hz, nets.N_SOURCES + 1)
            with torch.no_grad():  # start as "nothing changes"
                for gate in (self.cell_gate, self.carried_gate):
                    gate.bias.zero_()
                    gate.bias[0] = 3.0
        else:
            self.copy_cell = nn.Parameter(torch.full((nets.N_CELL_LOGITS,), 3.0))
            self.copy_carried = nn.Parameter(torch.full((nets.N_CARRIED_LOGITS,), 3.0))

    def _trunk(self, states: Tensor) -> dict[str, Tensor]:
        """What the decoder reads: cell one-hot (B, 36, 21), carried one-hot (B, 17), per-cell features
        (B, 36, C), global features (B, 3C) (mean- and max-pooled plus those of the cell in front of the
        agent, what a pickup takes), the prior's input, and (pointer) the candidate sources of every value."""
        nets.check_states(states)
        cell, hand = nets.cell_onehot(states), nets.carried_onehot(states)
        agent, front, _ = nets.agent_cells(states)
        parts = [cell, hand[:, None].expand(-1, cell.shape[1], -1)]
        if self.cfg.pointer:
            parts += [agent[..., None], front[..., None]]
        h = self.trunk(nets.grid_image(torch.cat(parts, -1)))  # (B, 36, 1, C)
        g = torch.cat([nets.pooled(h), nets.at_cell(h, front)], -1)[:, 0]  # (B, 3C): pooled, and at the front cell
        out = {"cell": cell, "hand": hand, "feats": h[:, :, 0], "prior_in": g, "carried_in": g}
        if self.cfg.pointer:
            fc = nets.front_as_carried(cell, front)
            out["carried_in"] = torch.cat([g, fc, hand], -1)
            out["cell_src"], out["carried_src"] = nets.cell_sources(states, cell), nets.carried_sources(hand, fc)
        return out

    def _decode(self, t: dict[str, Tensor], codes: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder log-probabilities (per channel) for (relaxed) one-hot codes (B, ..., Z) -> cells (B, ..., 36, 21), carried (B, ..., 17)."""
        extra = codes.ndim - 2  # 1 when decoding all Z codes at once
        view = (slice(None),) + (None,) * extra
        u = torch.relu(self.cell_in(t["feats"])[view] + (codes @ self.cell_code)[..., None, :])  # (B, ..., 36, Hz)
        v = torch.relu(self.carried_in(t["carried_in"])[view] + codes @ self.carried_code)  # (B, ..., Hz)
        if not self.cfg.pointer:
            c = nets.block_log_softmax(self.cell_out(u) + self.copy_cell * t["cell"][view], nets.CELL_SLICES)
            return c, nets.block_log_softmax(self.carried_out(v) + self.copy_carried * t["hand"][view], nets.CARRIED_SLICES)
        c = nets.source_mixture(self.cell_gate(u), t["cell_src"][view], self.cell_out(u), nets.CELL_SLICES)
        k = nets.source_mixture(self.carried_gate(v), t["carried_src"][view], self.carried_out(v), nets.CARRIED_SLICES)
        return c, k

    def forward(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Prior log-probs (B, Z) and every code's decoder logits: cells (B, Z, 36, 21), carried (B, Z, 17)."""
        t = self._trunk(states)
        every = torch.eye(self.cfg.codes).expand(len(states), -1, -1)  # (B, Z, Z)
        c, k = self._decode(t, every)
        return torch.log_softmax(self.prior(t["prior_in"]), -1), c, k

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

    @torch.no_grad()
    def propose(self, states: Tensor, chunk: int = 512) -> tuple[Tensor, Tensor]:
        """The weighted proposals of the verification cycle (`verify(..., k=None)`): every code with prior
        >= `min_prior`, decoded to its most likely next state, with probability p(z | s) renormalised over
        those codes. (B, D) -> subgoals (B, K, D) long and weights (B, K), K = the most codes any state
        keeps; a state with fewer is padded with weight-0 copies of itself."""
        out = [self._propose(states[i : i + chunk]) for i in range(0, len(states), chunk)]
        k = max(o[0].shape[1] for o in out)
        subgoals = torch.cat([torch.cat([sg, st[:, None].expand(-1, k - sg.shape[1], -1)], 1) for (sg, _), st in zip(out, states.split(chunk))])
        weights = torch.cat([torch.cat([w, w.new_zeros(len(w), k - w.shape[1])], 1) for _, w in out])
        return subgoals, weights

    def _propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        t = self._trunk(states)
        prior = torch.softmax(self.prior(t["prior_in"]), -1)  # (B, Z)
        w = prior * (prior >= self.cfg.min_prior)
        w = torch.where(w.sum(-1, keepdim=True) > 0, w, prior)
        w, idx = w.sort(-1, descending=True)
        k = max(int((w > 0).sum(-1).max()), 1)
        w, idx = w[:, :k], idx[:, :k]  # (B, K) the kept codes, most probable first
        c, kk = self._decode(t, torch.eye(self.cfg.codes)[idx])  # (B, K, 36, 21), (B, K, 17)
        sg = torch.where(w[..., None] > 0, nets.decode(c, kk), states[:, None])  # padding: a copy of s
        return sg, w / w.sum(-1, keepdim=True)

    def _sample(self, states: Tensor, k: int, generator: torch.Generator | None, distinct: bool = True) -> Tensor:
        t = self._trunk(states)
        log_prior = torch.log_softmax(self.prior(t["prior_in"]), -1)  # (B, Z)
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
        c, kk = self._decode(t, torch.eye(z)[idx])  # (B, K, 36, 21), (B, K, 17)
        if self.cfg.min_class_prob >= 1:
            return nets.decode(c, kk)  # (B, K, D)
        return nets.sample_decode(c, kk, self.cfg.min_class_prob, generator)  # (B, K, D)


class FrozenSubgoals:
    """The verification cycle's view of a trained (frozen) generator.

    `sample` proposes i.i.d. samples of p(s' | s) (repeats allowed): the cycle scores candidate actions
    by the subgoals mapped to them, and enumerating every code once would propose a rare (often
    implausible) outcome as often as the likely one. `propose` returns the weighted modes and memoises
    them per state, since the generator does not change while the pool's states recur every round.
    """

    def __init__(self, model: MixtureSubgoalGenerator):
        self.model = model
        self._modes: dict[bytes, int] = {}  # state key -> its row in the memo (insertion order)
        self._parts: list[tuple[Tensor, Tensor, Tensor]] = []  # (subgoals (S, D), weights (S,), modes per row) as added
        self._table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        return self.model.sample(states, k, generator, distinct=False)

    def _add(self, keys: list[bytes], subgoals: Tensor, weights: Tensor, counts: Tensor) -> None:
        """Memoise the flat modes of new states: row i owns the next counts[i] entries of subgoals/weights."""
        base = len(self._modes)
        self._modes.update((key, base + i) for i, key in enumerate(keys))
        self._parts.append((subgoals, weights, counts))
        self._table = None

    def _tables(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The memo as flat tensors: subgoals (S, D), weights (S,), first entry and modes of each row."""
        if self._table is None:
            sg, w, counts = (torch.cat(x) for x in zip(*self._parts))
            self._parts = [(sg, w, counts)]
            self._table = (sg, w, torch.cumsum(counts, 0) - counts, counts)
        return self._table

    def _memoise(self, states: Tensor) -> list[bytes]:
        """Ask the generator for the states not memoised yet; returns every state's key."""
        keys = [row.tobytes() for row in states.numpy().astype(np.uint8)]
        new = list({key: i for i, key in enumerate(keys) if key not in self._modes}.values())
        if new:
            subgoals, weights = self.model.propose(states[new])
            kept = weights > 0  # the kept modes come first in each row (most probable first), padding after
            self._add([keys[i] for i in new], subgoals[kept], weights[kept], kept.sum(1))
        return keys

    def propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        keys = self._memoise(states)
        sg, w, starts, counts = self._tables()
        rows = torch.tensor([self._modes[key] for key in keys], dtype=torch.long)
        n = counts[rows]
        j = torch.arange(int(n.max()))
        real = j < n[:, None]  # (B, K); the rest pads with weight-0 copies of s
        at = (starts[rows, None] + j).clamp(max=len(w) - 1)
        return torch.where(real[..., None], sg[at], states[:, None]), torch.where(real, w[at], 0.0)

    def warm(self, states: Tensor, chunk: int = 512) -> None:
        """Memoise the proposals of every state in `states` (e.g. a whole pool, once per experiment)."""
        for i in range(0, len(states), chunk):
            self._memoise(states[i : i + chunk])  # the flat table is joined once, when next read

    def export_modes(self) -> dict[str, np.ndarray]:
        """The memo as arrays: state keys (U, D) uint8, modes per state (U,), subgoals (S, D) uint8, weights (S,)."""
        keys = list(self._modes)
        if not keys:
            return {"keys": np.zeros((0, 0), np.uint8), "counts": np.zeros(0, np.int64), "subgoals": np.zeros((0, 0), np.uint8), "weights": np.zeros(0, np.float32)}
        sg, w, _, counts = self._tables()
        return {
            "keys": np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), -1),
            "counts": counts.numpy().astype(np.int64),
            "subgoals": sg.numpy().astype(np.uint8),
            "weights": w.numpy().astype(np.float32),
        }

    def import_modes(self, table: dict[str, np.ndarray]) -> None:
        """Add the modes of `export_modes` (of the same generator) to the memo; known states keep theirs."""
        keys = [key.tobytes() for key in table["keys"]]
        counts = torch.from_numpy(table["counts"].astype(np.int64))
        fresh = torch.tensor([key not in self._modes for key in keys], dtype=torch.bool)
        entries = fresh.repeat_interleave(counts)
        sg = torch.from_numpy(table["subgoals"].astype(np.int64))[entries]
        w = torch.from_numpy(table["weights"].astype(np.float32))[entries]
        self._add([key for key, f in zip(keys, fresh.tolist()) if f], sg, w, counts[fresh])
