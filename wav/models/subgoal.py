"""The action-free subgoal generator p(s' | s) of the verification cycle (REFERENCE §1): proposes the
K plausible next states that the inverse model labels and the world model must reproduce.

Model: Z discrete codes, a learned prior p(z | s) and a categorical decoder p(s' | s, z) that adds a "copy"
bonus to each value's current one (most cells do not change). Two decoders: the conv decoder over the
whole grid (`local=False`), and the agent-centred one of the presets (`local=True`): an MLP reads the
3x3 window around the agent, turned to face ahead with the agent's direction taken relative to its own,
and the hand; a code rewrites only the window and the hand (an action changes at most the agent cell,
the cell in front and the hand) and copies every other cell. With `edit` (and no `context`) a code is a
fixed linear edit of the window's current values (a slot's own value, the hand into the front cell, the
front cell into the hand), so a change learnt in one context -- a turn, a pickup of a red key -- decodes
the same way in contexts the corpus rarely shows. Training reads (s, s')
pairs only -- actions are never seen -- and is winner-takes-all (hard EM / multiple-choice learning):
each s' trains only the code that already explains it best, and the prior learns how often each code
wins at s. Soft alternatives fail here: a turn left and a turn right differ in one variable, so under
marginal likelihood one code with a 50/50 direction fits them as well as two sharp codes (and a
learned prior in the responsibilities collapses all data onto one code); under winner-takes-all a
50/50 code costs log 2 nats that a sharp code saves, so codes specialise.
`seen_changes` proposes a code wherever the change it decodes (in the agent's frame) occurs in the training
pairs, and nowhere else, instead of thresholding the prior: the prior is a frequency, and a change the
corpus shows somewhere is possible wherever its preconditions (the slots it changes) hold.
`sample` draws codes without replacement (Gumbel-top-k) so K samples cover the distinct modes, and
decodes each code to its most likely next state (or, with min_class_prob < 1, samples each channel among
its likely classes, so a code left split between two outcomes that differ in one channel yields both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.config import SubgoalConfig
from wav.envs.minigrid.encoding import AGENT, DIR_VEC, GRID_SIZE, N_CELLS
from wav.models import nets


class MixtureSubgoalGenerator(nn.Module):
    """Discrete-latent subgoal generator; satisfies `wav.types.SubgoalGenerator`."""

    def __init__(self, cfg: SubgoalConfig = SubgoalConfig()):
        super().__init__()
        self.cfg = cfg
        h, hz, z = cfg.hidden, cfg.code_hidden, cfg.codes
        if cfg.seen_changes and not cfg.local:
            raise ValueError("SubgoalConfig.seen_changes needs the agent-centred decoder (local=True)")
        if cfg.local:
            self._init_local(cfg)
            return
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

    def _init_local(self, cfg: SubgoalConfig) -> None:
        """The agent-centred decoder: an MLP over the egocentric window (cells within `window` steps of the
        agent, rotated so that slot (1, 0) is always the cell in front) and the hand; each code rewrites the
        window's cells and the hand, every other cell is copied from s."""
        h, hz, z, r = cfg.hidden, cfg.code_hidden, cfg.codes, cfg.window
        f, rt = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        self._offsets = torch.stack([f.flatten(), rt.flatten()], 1)  # (S, 2) (forward, right) steps
        slots = len(self._offsets)
        n_in = slots * (nets.N_CELL_LOGITS + 1) + nets.N_CARRIED_LOGITS
        layers = [nn.Linear(n_in, h), nn.ReLU()]
        for _ in range(cfg.layers - 1):
            layers += [nn.Linear(h, h), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        self.prior = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, z))
        self.code_in = nn.Linear(h, hz)
        self.code = nn.Parameter(0.01 * torch.randn(z, hz))  # near-identical codes at init (see below)
        self.code_hidden = nn.Sequential(nn.Linear(hz, hz), nn.ReLU())
        self.window_out = nn.Linear(hz, slots * nets.N_CELL_LOGITS)
        self.carried_out = nn.Linear(hz, nets.N_CARRIED_LOGITS)
        self.copy_cell = nn.Parameter(torch.full((nets.N_CELL_LOGITS,), 3.0))
        self.copy_carried = nn.Parameter(torch.full((nets.N_CARRIED_LOGITS,), 3.0))
        if cfg.edit:  # per-code linear maps of the current values (see `_decode_local`), near zero at init
            c, k = nets.N_CELL_LOGITS, nets.N_CARRIED_LOGITS
            self.edit_cell = nn.Parameter(0.01 * torch.randn(z, slots, c, c))  # slot's own value -> slot
            self.edit_hand_cell = nn.Parameter(0.01 * torch.randn(z, c, c))  # the hand (as a cell) -> the front cell
            self.edit_bias = nn.Parameter(0.01 * torch.randn(z, slots, c))
            self.edit_hand = nn.Parameter(0.01 * torch.randn(z, k, k))  # hand -> hand
            self.edit_front = nn.Parameter(0.01 * torch.randn(z, c, k))  # the front cell -> hand
            self.edit_hand_bias = nn.Parameter(0.01 * torch.randn(z, k))
        self._front_slot = int(((self._offsets[:, 0] == 1) & (self._offsets[:, 1] == 0)).float().argmax())
        if cfg.seen_changes:  # hashes of the changes seen in the training pairs, filled by `remember_changes`
            self.register_buffer("seen", torch.zeros(0, dtype=torch.long))

    def _change_keys(self, t: dict[str, Tensor], nexts: Tensor) -> Tensor:
        """One int64 hash per proposal, (B, K), of the change from s (`t = self._local(s)`) to each of
        `nexts` (B, K, D): every window slot's and the hand's old and new value where it changes (-1 where
        not), in the agent's frame, and where the hand changes the cell in front (what it interacts with)."""
        b, kk = nexts.shape[:2]
        where = t["where"][:, None].expand(-1, kk, -1).reshape(b * kk, -1)
        d = t["dir"][:, None].expand(-1, kk).reshape(-1)
        on = t["valid"][:, None, :, None]
        old = t["win_values"][:, None].expand(-1, kk, -1, -1) * on  # (B, K, S, 3)
        flat = nexts.reshape(b * kk, -1)
        new = self._turn(nets.cells(flat).gather(1, where[..., None].expand(-1, -1, 3)), d, -1).reshape(b, kk, -1, 3) * on
        hand, new_hand = t["states"][:, None, -2:].expand(-1, kk, -1), nexts[..., -2:]
        cell_changed = (old != new).any(-1, keepdim=True)
        hand_changed = (hand != new_hand).any(-1, keepdim=True)
        front = old[:, :, self._front_slot]
        parts = [torch.where(cell_changed, old, -1).flatten(2), torch.where(cell_changed, new, -1).flatten(2),
                 torch.where(hand_changed, hand, -1), torch.where(hand_changed, new_hand, -1),
                 torch.where(hand_changed, front, -1)]
        sig = torch.cat(parts, -1) + 2  # (B, K, L), small non-negative integers
        weights = _hash_weights(sig.shape[-1])
        return (sig * weights).sum(-1)  # int64 arithmetic wraps: a fixed, deterministic hash

    @torch.no_grad()
    def remember_changes(self, states: Tensor, next_states: Tensor, chunk: int = 4096) -> None:
        """Store the changes of the training pairs (s, s') for `seen_changes` (reads no actions)."""
        if not (self.cfg.local and self.cfg.seen_changes):
            raise ValueError("remember_changes needs SubgoalConfig(local=True, seen_changes=True)")
        keys = [self._change_keys(self._local(states[i : i + chunk]), next_states[i : i + chunk, None])[:, 0] for i in range(0, len(states), chunk)]
        self.seen = torch.unique(torch.cat(keys))

    def _project(self, t: dict[str, Tensor], decoded: Tensor) -> Tensor:
        """Each decoded state (B, K, D) whose change from s was never seen, replaced by its largest seen part:
        the decode with one part (a window slot or the hand) put back to s, or s with one part of the
        decode, whichever seen candidate changes the most features (the first on ties); unchanged where
        no candidate is seen. A code's edit is learnt where the corpus uses it; where it meets a context
        the corpus never shows (a turn while holding one object and facing another), a part of its
        output can be an artefact while the rest is the true change."""
        b, kk, dim = decoded.shape
        states = t["states"][:, None].expand(-1, kk, -1)
        slots = 3 * t["where"][..., None] + torch.arange(3)  # (B, S, 3) features of each window slot
        hand = torch.arange(dim - 2, dim).expand(b, 1, 2)
        cands = [decoded]
        for j in range(slots.shape[1] + 1):
            idx = (slots[:, j] if j < slots.shape[1] else hand[:, 0])[:, None].expand(-1, kk, -1)  # (B, K, n)
            on = (t["valid"][:, j] if j < slots.shape[1] else torch.ones(b, dtype=torch.bool))[:, None, None]
            back = decoded.scatter(2, idx, states.gather(2, idx))  # this part as in s
            only = states.scatter(2, idx, decoded.gather(2, idx))  # only this part changed
            cands += [torch.where(on, back, decoded), torch.where(on, only, decoded)]
        c = torch.stack(cands, 2)  # (B, K, C, D)
        seen = torch.isin(self._change_keys(t, c.flatten(1, 2)), self.seen).view(b, kk, -1)
        size = torch.where(seen, (c != states[:, :, None]).sum(-1), -1)
        size[:, :, 0] = torch.where(seen[:, :, 0], dim + 1, -1)  # a seen decode stays as it is
        best = size.argmax(-1)  # (B, K), the first of the largest
        return c.gather(2, best[:, :, None, None].expand(-1, -1, 1, dim))[:, :, 0]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "seen" in state_dict:  # the number of seen changes is a property of the data
            self.seen = torch.zeros_like(state_dict[prefix + "seen"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _window(self, states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Grid cell of every window slot, (B, S) long, whether it lies on the grid (and an agent
        exists), (B, S) bool, and the agent's direction (B,). Slot (f, r) is f steps ahead of the agent
        and r to its right."""
        c = nets.cells(states)
        is_agent = c[..., 0] == AGENT
        idx = is_agent.float().argmax(1)  # (B,)
        d = c[torch.arange(len(c)), idx, 2].clamp(0, 3)
        vec = torch.as_tensor(DIR_VEC)
        ahead, right = vec[d], vec[(d + 1) % 4]  # (B, 2) each, (dx, dy)
        off = self._offsets
        x = (idx // GRID_SIZE)[:, None] + off[:, 0] * ahead[:, :1] + off[:, 1] * right[:, :1]  # (B, S)
        y = (idx % GRID_SIZE)[:, None] + off[:, 0] * ahead[:, 1:] + off[:, 1] * right[:, 1:]
        valid = is_agent.any(1)[:, None] & (x >= 0) & (x < GRID_SIZE) & (y >= 0) & (y < GRID_SIZE)
        return (x * GRID_SIZE + y).clamp(0, N_CELLS - 1), valid, d

    @staticmethod
    def _turn(values: Tensor, d: Tensor, sign: int) -> Tensor:
        """Window cell values (B, ..., S, 3) with each agent cell's direction taken relative to the current
        agent direction d (B,) (sign -1) or back to absolute (sign +1): a turn is then the same change
        whichever way the agent faces, as the window is already turned to face ahead."""
        view = (slice(None),) + (None,) * (values.ndim - 2)
        rel = (values[..., 2] + sign * d[view]) % 4
        return torch.cat([values[..., :2], torch.where(values[..., 0] == AGENT, rel, values[..., 2])[..., None]], -1)

    def _local(self, states: Tensor) -> dict[str, Tensor]:
        """Window one-hots (B, S, 21) (agent direction relative to the agent's, zero off the grid), hand
        one-hot (B, 17), window cells, their validity, the agent's direction and the encoder's features (B, H)."""
        nets.check_states(states)
        where, valid, d = self._window(states)
        vals = self._turn(nets.cells(states).gather(1, where[..., None].expand(-1, -1, 3)), d, -1)  # (B, S, 3)
        win = nets._onehot3(vals[..., 0], vals[..., 1], vals[..., 2]) * valid[..., None]  # (B, S, 21)
        hand = nets.carried_onehot(states)
        x = torch.cat([win.flatten(1), valid.float(), hand], -1)
        return {"win": win, "win_values": vals, "hand": hand, "hand_cell": nets.hand_as_cell(states), "where": where, "valid": valid, "dir": d,
                "feats": self.encoder(x), "states": states}

    def _decode_local(self, t: dict[str, Tensor], codes: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities of the window cells (B, ..., S, 21) and the hand (B, ..., 17) under (one-hot) codes (B, ..., Z)."""
        extra = codes.ndim - 2
        view = (slice(None),) + (None,) * extra
        w, k = self.copy_cell * t["win"][view], self.copy_carried * t["hand"][view]
        if self.cfg.context or not self.cfg.edit:  # a term that depends on the whole window and hand
            u = self.code_hidden(torch.relu(self.code_in(t["feats"])[view] + codes @ self.code))  # (B, ..., Hz)
            w = w + self.window_out(u).unflatten(-1, (-1, nets.N_CELL_LOGITS))
            k = k + self.carried_out(u)
        if self.cfg.edit:
            # an edit: each code maps the current values linearly (every slot's own value, the hand as a cell,
            # the front cell into the hand), the same whatever else the window holds, so a change seen in
            # one context (a turn, a pickup of a red key) is proposed in every other
            e_cell = torch.einsum("bsi,zsio->bzso", t["win"], self.edit_cell)
            put = torch.einsum("bi,zio->bzo", t["hand_cell"], self.edit_hand_cell)  # (B, Z, 21): what the hand puts in front
            e_cell = e_cell + put[:, :, None] * F.one_hot(torch.tensor(self._front_slot), len(self._offsets)).float()[:, None]
            e_hand = torch.einsum("bi,zio->bzo", t["hand"], self.edit_hand) + torch.einsum("bi,zio->bzo", t["win"][:, self._front_slot], self.edit_front)
            flat = codes.reshape(len(codes), -1, codes.shape[-1])  # (B, N, Z) one-hot (or relaxed) codes
            w = w + torch.einsum("bnz,bzso->bnso", flat, e_cell + self.edit_bias).reshape(*codes.shape[:-1], *w.shape[-2:])
            k = k + torch.einsum("bnz,bzo->bno", flat, e_hand + self.edit_hand_bias).reshape(*codes.shape[:-1], k.shape[-1])
        return nets.block_log_softmax(w, nets.CELL_SLICES), nets.block_log_softmax(k, nets.CARRIED_SLICES)

    def _local_loglik(self, t: dict[str, Tensor], w: Tensor, k: Tensor, next_states: Tensor) -> Tensor:
        """log p(s' | s, z) for every code, (B, Z): the window's cells and the hand (cells outside the
        window are copied, so every code gives them the same likelihood and they do not enter)."""
        tgt = self._turn(nets.cells(next_states).gather(1, t["where"][..., None].expand(-1, -1, 3)), t["dir"], -1)  # (B, S, 3)
        nll = nets._block_nll(w, tgt[:, None], nets._CELL_OFFSETS, nets._CELL_SIZES)  # (B, Z, S)
        return -(nll * t["valid"][:, None]).sum(-1) - nets.carried_nll(k, next_states[:, None])

    def _fill(self, t: dict[str, Tensor], w: Tensor, k: Tensor) -> Tensor:
        """States from decoded windows: (B, K, S, 21), (B, K, 17) log-probs -> (B, K, D) long; cells
        outside the window (and window slots off the grid) are those of s."""
        b, kk = w.shape[:2]
        win = self._turn(torch.stack([w[..., sl].argmax(-1) for sl in nets.CELL_SLICES], -1), t["dir"], 1)  # (B, K, S, 3)
        hand = torch.stack([k[..., sl].argmax(-1) for sl in nets.CARRIED_SLICES], -1)  # (B, K, 2)
        grid = torch.cat([nets.cells(t["states"]), torch.zeros(b, 1, 3, dtype=torch.long)], 1)  # (B, 37, 3): a dummy cell last
        grid = grid[:, None].expand(-1, kk, -1, -1).clone()
        where = torch.where(t["valid"], t["where"], N_CELLS)[:, None, :, None].expand(-1, kk, -1, 3)
        grid.scatter_(2, where, win)
        return torch.cat([grid[:, :, :N_CELLS].flatten(-2), hand], -1)

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
        every = torch.eye(self.cfg.codes).expand(len(states), -1, -1)  # (B, Z, Z)
        if self.cfg.local:  # (window log-probs (B, Z, S, 21) instead of the grid's)
            t = self._local(states)
            return torch.log_softmax(self.prior(t["feats"]), -1), *self._decode_local(t, every)
        t = self._trunk(states)
        c, k = self._decode(t, every)
        return torch.log_softmax(self.prior(t["prior_in"]), -1), c, k

    def training_loss(self, states: Tensor, next_states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scalar, per state feature; uses no action labels. Relaxed winner-takes-all: the code whose
        decoder explains s' best is trained on it with weight 1 - relax, every code with weight relax / Z,
        and the prior p(z | s) is fitted to the winner by cross-entropy."""
        if self.cfg.local:
            t = self._local(states)
            log_prior = torch.log_softmax(self.prior(t["feats"]), -1)
            log_lik = self._local_loglik(t, *self._decode_local(t, torch.eye(self.cfg.codes).expand(len(states), -1, -1)), next_states)
        else:
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
        Codes with prior below `min_prior` (and outside the `min_codes` most probable; with `seen_changes`:
        codes whose decoded change was never seen in training) are replaced by draws from the prior
        restricted to the allowed codes."""
        return torch.cat([self._sample(states[i : i + chunk], k, generator, distinct) for i in range(0, len(states), chunk)], 0)

    @torch.no_grad()
    def propose(self, states: Tensor, chunk: int = 512) -> tuple[Tensor, Tensor]:
        """The weighted proposals of the verification cycle (`verify(..., k=None)`): every code with prior
        >= `min_prior` or among the `min_codes` most probable (with `seen_changes`: every code whose change
        was seen, codes that decode the same state merged into one proposal), decoded to its most likely
        next state, with probability p(z | s) renormalised over those codes. (B, D) -> subgoals (B, K, D)
        long and weights (B, K), K = the most codes any state keeps; a state with fewer is padded with
        weight-0 copies of itself. A state where no code is allowed gets every code."""
        out = [self._propose(states[i : i + chunk]) for i in range(0, len(states), chunk)]
        k = max(o[0].shape[1] for o in out)
        subgoals = torch.cat([torch.cat([sg, st[:, None].expand(-1, k - sg.shape[1], -1)], 1) for (sg, _), st in zip(out, states.split(chunk))])
        weights = torch.cat([torch.cat([w, w.new_zeros(len(w), k - w.shape[1])], 1) for _, w in out])
        return subgoals, weights

    def _prior_and_decoder(self, states: Tensor):
        """log p(z | s) (B, Z) and a function decoding one-hot codes (B, K, Z) to states (B, K, D) (argmax)
        or, with min_class_prob < 1 (grid decoder only), to sampled states."""
        if self.cfg.local:
            t = self._local(states)

            log_prior = torch.log_softmax(self.prior(t["feats"]), -1)
            if self.cfg.seen_changes:  # `_allowed` needs every code's decode: decode (and project) them once
                every = self._project(t, self._fill(t, *self._decode_local(t, torch.eye(self.cfg.codes).expand(len(states), -1, -1))))

                def dec_seen(codes: Tensor, sampled: bool = False, generator: torch.Generator | None = None) -> Tensor:
                    return every.gather(1, codes.argmax(-1)[..., None].expand(-1, -1, every.shape[-1]))  # one-hot codes

                dec_seen.local, dec_seen.every = t, every  # what `_allowed` reads
                return log_prior, dec_seen
            return log_prior, lambda codes, sampled=False, generator=None: self._fill(t, *self._decode_local(t, codes))
        t = self._trunk(states)

        def dec(codes: Tensor, sampled: bool = False, generator: torch.Generator | None = None) -> Tensor:
            c, kk = self._decode(t, codes)
            if not sampled or self.cfg.min_class_prob >= 1:
                return nets.decode(c, kk)
            return nets.sample_decode(c, kk, self.cfg.min_class_prob, generator)

        return torch.log_softmax(self.prior(t["prior_in"]), -1), dec

    def _allowed(self, prior: Tensor, dec=None) -> Tensor:
        """(B, Z) bool: the codes `sample` and `propose` may use: with `seen_changes`, those whose decoded
        change (`dec.every`, from `_prior_and_decoder`) was seen in training; otherwise prior >= min_prior, or
        among the min_codes codes of highest prior."""
        if self.cfg.seen_changes:
            if not len(self.seen):
                raise ValueError("seen_changes is on but the generator holds no seen changes (remember_changes was not run)")
            return torch.isin(self._change_keys(dec.local, dec.every), self.seen)
        ok = prior >= self.cfg.min_prior
        if self.cfg.min_codes > 0:
            rank = torch.argsort(torch.argsort(prior, dim=-1, descending=True, stable=True), dim=-1)  # 0 = most probable
            ok = ok | (rank < self.cfg.min_codes)
        return ok

    def _propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        log_prior, dec = self._prior_and_decoder(states)
        prior = log_prior.exp()  # (B, Z)
        w = prior * self._allowed(prior, dec)
        w = torch.where(w.sum(-1, keepdim=True) > 0, w, prior)
        w, idx = w.sort(-1, descending=True)
        k = max(int((w > 0).sum(-1).max()), 1)
        w, idx = w[:, :k], idx[:, :k]  # (B, K) the kept codes, most probable first
        sg = torch.where(w[..., None] > 0, dec(torch.eye(self.cfg.codes)[idx]), states[:, None])  # padding: a copy of s
        if self.cfg.seen_changes:  # most kept codes decode to a change another code gives too: one proposal each, weights summed
            same = (sg[:, :, None] == sg[:, None, :]).all(-1)  # (B, K, K)
            first = ~torch.tril(same, -1).any(-1)
            w = (same.to(w.dtype) @ w[..., None]).squeeze(-1) * first
            w, order = w.sort(dim=-1, descending=True, stable=True)
            k = max(int((w > 0).sum(-1).max()), 1)
            w, order = w[:, :k], order[:, :k]
            sg = torch.where(w[..., None] > 0, sg.gather(1, order[..., None].expand(-1, -1, sg.shape[-1])), states[:, None])
        return sg, w / w.sum(-1, keepdim=True)

    def _sample(self, states: Tensor, k: int, generator: torch.Generator | None, distinct: bool = True) -> Tensor:
        log_prior, dec = self._prior_and_decoder(states)  # (B, Z)
        z = log_prior.shape[1]
        u = torch.rand(log_prior.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
        order = torch.argsort(log_prior - torch.log(-torch.log(u)), -1, descending=True)  # (B, Z)
        prior = log_prior.exp()
        ok = self._allowed(prior, dec)  # (B, Z) bool
        allowed = prior * ok
        allowed = torch.where(allowed.sum(-1, keepdim=True) > 0, allowed, prior)  # (B, Z)
        iid = torch.multinomial(allowed, k, replacement=True, generator=generator)  # (B, K)
        if not distinct:
            idx = iid
        else:
            idx = order[:, :k] if k <= z else torch.cat([order, iid[:, z:]], 1)
        idx = torch.where(ok.gather(1, idx), idx, iid)  # (B, K)
        return dec(torch.eye(z)[idx], True, generator)  # (B, K, D)


_HASH_WEIGHTS: dict[int, Tensor] = {}


def _hash_weights(n: int) -> Tensor:
    """n fixed odd int64 multipliers (powers of a large prime, wrapped) for `_change_keys`."""
    if n not in _HASH_WEIGHTS:
        w, out = 1, []
        for _ in range(n):
            out.append(w - (1 << 64) if w >= (1 << 63) else w)
            w = (w * 1_000_003) % (1 << 64)
        _HASH_WEIGHTS[n] = torch.tensor(out, dtype=torch.long)
    return _HASH_WEIGHTS[n]
