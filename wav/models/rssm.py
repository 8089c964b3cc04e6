"""The robot world model (REFERENCE §6, ROBOT.md §4): a DreamerV3-style RSSM over flat float states, with an
ensemble of M members run as grouped (einsum) weights. Satisfies `wav.types.SequenceWorldModel`: observe a
context (posterior), roll the prior open-loop under given actions, decode to states.

Pieces: LayerNorm GRU deterministic state h; categorical stochastic state z (S variables x K classes,
straight-through one-hot samples, 1% unimix); prior p(z | h) and posterior q(z | h, embed); a learned
initial state; symlog MLP encoder; state decoder trained with symlog squared error; continue head; with
`image_channels`, a stride-2 conv encoder and transposed-conv decoder for 64x64 images (a batch then
carries `images` (B, T, C, 64, 64) in [0, 1]; rollouts still decode states only); KL
balancing 0.5 dyn / 0.1 rep with free nats. Step t is conditioned on a_{t-1} (zero at episode starts), and
`is_first` resets (h, z) to the initial state. Every window starts from the initial state.

Sampling follows the project's convention: with a `torch.Generator` (training) z is sampled; without one
(evaluation) z is the mode, so `observe`, `imagine` and `open_loop_error` are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wav.models.nets import GroupedLinear
from wav.types import SequenceBatch


@dataclass(frozen=True)
class RSSMConfig:
    """Sizes and loss weights of `RSSM`; see `RSSM_PRESETS`."""

    state_dim: int = 50
    """D, flat state features"""
    action_dim: int = 7
    """A, continuous action dims (in [-1, 1])"""
    deter: int = 128
    """GRU deterministic state size"""
    hidden: int = 128
    """units of the prior/posterior/GRU-input layers and of the continue head"""
    stoch: int = 16
    """S, categorical latent variables"""
    classes: int = 8
    """K, classes per categorical variable"""
    units: int = 128
    """units of the encoder and decoder MLP layers"""
    layers: int = 2
    """hidden layers of the encoder and of the decoder MLP"""
    cont_layers: int = 1
    """hidden layers of the continue head"""
    members: int = 1
    """M ensemble members (grouped weights; the uncertainty baseline uses M > 1)"""
    unimix: float = 0.01
    """uniform mixture weight on every categorical (prior, posterior)"""
    free_nats: float = 1.0
    """KL terms below this many nats are not minimised further"""
    dyn_scale: float = 0.5
    """weight of KL(sg(posterior) || prior), trains the prior"""
    rep_scale: float = 0.1
    """weight of KL(posterior || sg(prior)), regularises the representation"""
    cont_scale: float = 1.0
    """weight of the continue head's binary cross-entropy"""
    openloop_scale: float = 0.0
    """weight of the open-loop loss (0: DreamerV3's objective): the prior rolled from the posterior at each
    window's first frame under the recorded actions, decoded, symlog squared error against the recorded states
    (summed over D, mean over the steps before the window's next episode start). The other terms train the
    prior one step at a time through the KL; this one trains the multi-step rollout the evaluation measures"""
    image_channels: int = 0
    """channels of a 64x64 image input in [0, 1] (0: states only; 6 = two RGB cameras stacked, as the authors)"""
    cnn_depth: int = 32
    """channels of the first conv layer (x1, 2, 4, 8 over the four stride-2 layers)"""
    lr: float = 1e-4
    """Adam learning rate the fitting loop should use"""
    clip_grad: float = 1000.0
    """global gradient-norm clip the fitting loop applies (`model.clip_grad`)"""

    @property
    def image_feat(self) -> int:
        """Size of the conv encoder's output (4 x 4 x 8 depth), 0 without images."""
        return 16 * 8 * self.cnn_depth if self.image_channels else 0

    @property
    def feat(self) -> int:
        """Size of the decoder input: flattened one-hot z plus h."""
        return self.stoch * self.classes + self.deter


RSSM_PRESETS = {
    "debug": RSSMConfig(deter=64, hidden=64, stoch=8, classes=8, units=64, layers=1, cnn_depth=8),
    "cpu": RSSMConfig(),
    "paper": RSSMConfig(deter=512, hidden=512, stoch=32, classes=32, units=1024, layers=5, cont_layers=2),
}


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class Linear(nn.Module):
    """M linear layers (..., M, I) -> (..., M, O); one plain matmul when M = 1 (einsum costs ~2x there), one
    batched matmul on the members-first view when M > 1 (the grouped layer's einsum copies its input first; the
    same numbers bit for bit at the presets' sizes, tests/test_rssm.py)."""

    def __init__(self, members: int, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.g = GroupedLinear(members, d_in, d_out, bias)

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.g.weight, self.g.bias
        m = w.shape[0]
        if m > 1:
            y = torch.bmm(x.reshape(-1, m, x.shape[-1]).transpose(0, 1), w)  # (M, N, O)
            y = y.transpose(0, 1).reshape(*x.shape[:-1], w.shape[-1])  # (..., M, O), a view
            return y if b is None else y + b
        y = x @ w.squeeze(0)  # (..., 1, O); a view, whose backward is another view (w[0]'s fills a zero tensor)
        return y if b is None else y + b.squeeze(0)


class Norm(nn.Module):
    """LayerNorm with a separate affine per member: (..., M, O)."""

    def __init__(self, members: int, d: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(members, d)), nn.Parameter(torch.zeros(members, d))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=1e-3) * self.weight + self.bias


class Dense(nn.Module):
    """Linear (no bias) + per-member LayerNorm + SiLU, the block every MLP here is made of."""

    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.lin, self.norm = Linear(members, d_in, d_out, bias=False), Norm(members, d_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.norm(self.lin(x)))


def mlp(members: int, d_in: int, units: int, layers: int, d_out: int) -> nn.Sequential:
    dims = [d_in] + [units] * layers
    return nn.Sequential(*(Dense(members, a, b) for a, b in zip(dims[:-1], dims[1:])), Linear(members, dims[-1], d_out))


IMAGE_SIZE = 64  # four stride-2 convs: 64 -> 32 -> 16 -> 8 -> 4


class ChannelNorm(nn.Module):
    """LayerNorm over each member's channels at every pixel, per-member affine: (N, M*C, H, W)."""

    def __init__(self, members: int, channels: int):
        super().__init__()
        self.m, self.c = members, channels
        self.weight, self.bias = nn.Parameter(torch.ones(members, channels)), nn.Parameter(torch.zeros(members, channels))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        y = x.view(n, self.m, self.c, h, w).permute(0, 1, 3, 4, 2)  # (N, M, H, W, C)
        y = F.layer_norm(y, (self.c,), eps=1e-3) * self.weight[:, None, None] + self.bias[:, None, None]
        return y.permute(0, 1, 4, 2, 3).reshape(n, self.m * self.c, h, w)


class ImageEncoder(nn.Module):
    """M conv encoders as grouped convs (4x4, stride 2, ChannelNorm, SiLU): (N, C, 64, 64) -> (N, M, 128 depth)."""

    def __init__(self, members: int, channels: int, depth: int):
        super().__init__()
        self.m = members
        dims = [channels] + [depth * 2**i for i in range(4)]
        self.convs = nn.ModuleList(nn.Conv2d(members * a, members * b, 4, 2, 1, groups=members, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(ChannelNorm(members, b) for b in dims[1:])

    def forward(self, images: Tensor) -> Tensor:
        n = images.shape[0]
        x = (images.float() - 0.5).repeat(1, self.m, 1, 1)  # (N, M*C, 64, 64)
        for conv, norm in zip(self.convs, self.norms):
            x = F.silu(norm(conv(x)))
        return x.reshape(n, self.m, -1)  # (N, M, 8 depth * 4 * 4)


class ImageDecoder(nn.Module):
    """M transposed-conv decoders: features (N, M, feat) -> images (N, M, C, 64, 64), centred on 0.5."""

    def __init__(self, members: int, feat: int, channels: int, depth: int):
        super().__init__()
        self.m, self.c, self.top = members, channels, 8 * depth
        self.inp = Linear(members, feat, 16 * 8 * depth)
        dims = [depth * 2**i for i in range(3, -1, -1)] + [channels]
        self.convs = nn.ModuleList(nn.ConvTranspose2d(members * a, members * b, 4, 2, 1, groups=members) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(ChannelNorm(members, b) for b in dims[1:-1])

    def forward(self, feat: Tensor) -> Tensor:
        n = feat.shape[0]
        x = self.inp(feat).reshape(n, self.m * self.top, 4, 4)  # (N, M, 8d*16) -> (N, M*8d, 4, 4)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.norms):
                x = F.silu(self.norms[i](x))
        return x.reshape(n, self.m, self.c, IMAGE_SIZE, IMAGE_SIZE) + 0.5


class RSSM(nn.Module):
    """DreamerV3-style RSSM with M members. Latent = (h (B, M, deter), z (B, M, S*K) one-hot)."""

    def __init__(self, cfg: RSSMConfig = RSSMConfig()):
        super().__init__()
        self.cfg = cfg
        self.clip_grad = cfg.clip_grad
        m, c = cfg.members, cfg
        z = c.stoch * c.classes
        self.init_deter = nn.Parameter(torch.zeros(m, c.deter))  # h_0 = tanh(init_deter)
        self.encoder = nn.Sequential(*(Dense(m, a, c.units) for a in [c.state_dim] + [c.units] * (c.layers - 1)))
        # prior step: [z, a] -> Dense -> LayerNorm GRU -> Dense -> prior logits; the action part and the
        # posterior's embed part are linear in inputs known for the whole window, so they run batched.
        self.img_z, self.img_a, self.img_norm = Linear(m, z, c.hidden, bias=False), Linear(m, c.action_dim, c.hidden, bias=False), Norm(m, c.hidden)
        self.gru_x, self.gru_h, self.gru_norm = Linear(m, c.hidden, 3 * c.deter, bias=False), Linear(m, c.deter, 3 * c.deter, bias=False), Norm(m, 3 * c.deter)
        self.prior = nn.Sequential(Dense(m, c.deter, c.hidden), Linear(m, c.hidden, z))
        self.obs_h, self.obs_e, self.obs_norm = Linear(m, c.deter, c.hidden, bias=False), Linear(m, c.units + c.image_feat, c.hidden, bias=False), Norm(m, c.hidden)
        self.post_out = Linear(m, c.hidden, z)
        self.decoder = mlp(m, c.feat, c.units, c.layers, c.state_dim)
        self.cont = mlp(m, c.feat, c.hidden, c.cont_layers, 1)
        if c.image_channels:
            self.image_encoder = ImageEncoder(m, c.image_channels, c.cnn_depth)
            self.image_decoder = ImageDecoder(m, c.feat, c.image_channels, c.cnn_depth)

    # ---- pieces ---------------------------------------------------------------------------------------
    def dist(self, logits: Tensor) -> Tensor:
        """Unimix log-probabilities: (..., S*K) logits -> (..., S, K)."""
        c = self.cfg
        p = torch.softmax(logits.unflatten(-1, (c.stoch, c.classes)), -1)
        return torch.log((1 - c.unimix) * p + c.unimix / c.classes)

    def sample(self, logits: Tensor, generator: torch.Generator | None, noise: Tensor | None = None) -> Tensor:
        """Straight-through one-hot sample (the mode without a generator): (..., S*K) logits -> (..., S*K).

        `noise` (..., S, K) is pre-drawn Gumbel noise (`gumbel`), used instead of drawing from `generator`."""
        logp = self.dist(logits)
        if noise is None and generator is not None:
            noise = self.gumbel(logp.shape, generator)
        idx = logp.argmax(-1, keepdim=True) if noise is None else (logp + noise).argmax(-1, keepdim=True)
        hard = torch.zeros_like(logp).scatter_(-1, idx, 1.0)  # F.one_hot's values, without its range check and copy
        p = logp.exp()
        return (hard + p - p.detach()).flatten(-2)  # (..., S*K)

    @staticmethod
    def gumbel(shape, generator: torch.Generator) -> Tensor:
        u = torch.rand(shape, generator=generator).clamp(1e-9, 1 - 1e-9)
        return -torch.log(-torch.log(u))

    def initial(self, batch: int) -> tuple[Tensor, Tensor]:
        """Learned initial latent, (B, M, deter) and (B, M, S*K): h_0 = tanh(w), z_0 = mode of the prior."""
        h = torch.tanh(self.init_deter)  # (M, deter)
        z = self.sample(self.prior(h), None)
        return h.expand(batch, -1, -1), z.expand(batch, -1, -1)

    def gru(self, x: Tensor, h: Tensor) -> Tensor:
        """LayerNorm GRU (update bias -1): x (B, M, hidden), h (B, M, deter) -> h'."""
        parts = self.gru_norm(self.gru_x(x) + self.gru_h(h))
        reset, cand, update = parts.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * h

    def img_step(self, h: Tensor, z: Tensor, a_term: Tensor) -> Tensor:
        """Next h from (h, z) and the projected previous action a_term (B, M, hidden)."""
        return self.gru(F.silu(self.img_norm(self.img_z(z) + a_term)), h)

    def features(self, h: Tensor, z: Tensor) -> Tensor:
        return torch.cat([z, h], -1)

    def decode(self, feat: Tensor) -> Tensor:
        """Decoded states in state units, (..., M, feat) -> (..., M, D)."""
        return symexp(self.decoder(feat))

    def _members(self, x: Tensor) -> Tensor:
        """(..., X) -> (..., M, X) view shared by every member."""
        return x.unsqueeze(-2).expand(*x.shape[:-1], self.cfg.members, x.shape[-1])

    # ---- posterior over a window -------------------------------------------------------------------------
    def posterior(self, batch: SequenceBatch, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Filter a window: h (B, T, M, deter), z (B, T, M, S*K), posterior logits (B, T, M, S*K)."""
        b, t = batch.states.shape[:2]
        reset = batch.is_first.clone()
        reset[:, 0] = True  # every window starts from the initial state
        prev_a = torch.cat([torch.zeros_like(batch.actions[:, :1]), batch.actions[:, :-1]], 1).float()  # (B, T, A): a_{t-1}
        prev_a = prev_a * (~reset)[..., None]
        a_term = self.img_a(self._members(prev_a))  # (B, T, M, hidden)
        embed = self.encoder(self._members(symlog(batch.states.float())))  # (B, T, M, units)
        if self.cfg.image_channels:
            embed = torch.cat([embed, self.image_encoder(self.images(batch).flatten(0, 1)).unflatten(0, (b, t))], -1)
        e_term = self.obs_e(embed)  # (B, T, M, hidden)
        c = self.cfg
        noise = None if generator is None else self.gumbel((b, t, c.members, c.stoch, c.classes), generator)  # one draw per window
        h0, z0 = self.initial(b)
        h, z = h0, z0
        hs, zs, logits = [], [], []
        # per-step slices by unbind: its backward stacks the steps' gradients once, where indexing [:, i] would
        # write each step's into a zero tensor of the whole window (the same sums, O(T) instead of O(T^2) memory)
        a_steps, e_steps = a_term.unbind(1), e_term.unbind(1)
        noise_steps = [None] * t if noise is None else noise.unbind(1)
        for i in range(t):
            if i and bool(reset[:, i].any()):
                r = reset[:, i, None, None]  # (B, 1, 1)
                h, z = torch.where(r, h0, h), torch.where(r, z0, z)
            h = self.img_step(h, z, a_steps[i])
            lg = self.post_out(F.silu(self.obs_norm(self.obs_h(h) + e_steps[i])))
            z = self.sample(lg, None, noise_steps[i])
            hs.append(h), zs.append(z), logits.append(lg)
        return torch.stack(hs, 1), torch.stack(zs, 1), torch.stack(logits, 1)

    def images(self, batch: SequenceBatch) -> Tensor:
        """The batch's `images` (B, T, C, 64, 64) in [0, 1]; required when the config has image channels."""
        images = getattr(batch, "images", None)
        c = self.cfg
        if images is None or tuple(images.shape[2:]) != (c.image_channels, IMAGE_SIZE, IMAGE_SIZE):
            got = None if images is None else tuple(images.shape)
            raise ValueError(f"this RSSM reads images (B, T, {c.image_channels}, {IMAGE_SIZE}, {IMAGE_SIZE}); the batch has {got}")
        return images

    def kl(self, post_logits: Tensor, prior_logits: Tensor) -> tuple[Tensor, Tensor]:
        """(dyn, rep) KL per row, summed over the S variables: KL(sg(q) || p) and KL(q || sg(p)), (...,)."""
        lq, lp = self.dist(post_logits), self.dist(prior_logits)
        dyn = (lq.detach().exp() * (lq.detach() - lp)).sum((-2, -1))
        rep = (lq.exp() * (lq - lp.detach())).sum((-2, -1))
        return dyn, rep

    def kl_loss(self, post_logits: Tensor, prior_logits: Tensor) -> Tensor:
        """dyn_scale * max(free, dyn) + rep_scale * max(free, rep), per row (...,)."""
        c = self.cfg
        dyn, rep = self.kl(post_logits, prior_logits)
        return c.dyn_scale * dyn.clamp_min(c.free_nats) + c.rep_scale * rep.clamp_min(c.free_nats)

    def member_losses(self, batch: SequenceBatch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Loss terms per member, each (M,) (mean over windows and steps): 'state', 'cont', 'kl', ('image'), 'total'."""
        h, z, post = self.posterior(batch, generator)
        feat = self.features(h, z)  # (B, T, M, feat)
        target = symlog(batch.states.float())[:, :, None]  # (B, T, 1, D)
        state = ((self.decoder(feat) - target) ** 2).sum(-1)  # (B, T, M): symlog squared error, summed over D
        # SequenceBatch carries no terminal flag; a batch may add `is_terminal` (B, T) and the head learns it
        term = getattr(batch, "is_terminal", None)
        cont_target = torch.ones_like(state) if term is None else (1.0 - term.float())[..., None].expand_as(state)
        cont = F.binary_cross_entropy_with_logits(self.cont(feat)[..., 0], cont_target, reduction="none")
        kl = self.kl_loss(post, self.prior(h))
        out = {"state": state, "cont": cont, "kl": kl}
        if self.cfg.openloop_scale:
            openloop = self.openloop_loss(batch, h[:, 0], z[:, 0])  # (M,)
        if self.cfg.image_channels:  # squared error summed over pixels and channels, as the authors
            recon = self.image_decoder(feat.flatten(0, 1)).unflatten(0, feat.shape[:2])  # (B, T, M, C, 64, 64)
            out["image"] = ((recon - self.images(batch)[:, :, None].float()) ** 2).sum((-3, -2, -1))
        out = {k: v.mean((0, 1)) for k, v in out.items()}
        out["total"] = out["state"] + self.cfg.cont_scale * out["cont"] + out["kl"] + out.get("image", 0.0)
        if self.cfg.openloop_scale:
            out["openloop"] = openloop
            out["total"] = out["total"] + self.cfg.openloop_scale * openloop
        return out

    def openloop_loss(self, batch: SequenceBatch, h0: Tensor, z0: Tensor) -> Tensor:
        """Per member (M,): symlog squared error (summed over D) of the prior rolled open-loop from the latent
        (h0, z0) (B, M, .) at each window's first frame under the window's recorded actions (mode of each prior,
        straight-through), mean over the steps before the window's next episode start."""
        t = batch.states.shape[1]
        if t < 2:
            return h0.new_zeros(self.cfg.members)
        feats = self.imagine_features((h0, z0), batch.actions[:, :-1])  # (B, T-1, M, feat)
        err = ((self.decoder(feats) - symlog(batch.states[:, 1:].float())[:, :, None]) ** 2).sum(-1)  # (B, T-1, M)
        keep = torch.cumprod((~batch.is_first[:, 1:]).float(), 1)  # 1 until the window enters the next episode
        return (err * keep[..., None]).sum((0, 1)) / keep.sum().clamp_min(1.0)

    def training_loss(self, batch: SequenceBatch, generator: torch.Generator | None = None) -> Tensor:
        """Scalar: the members' losses summed (each member's mean over windows and steps)."""
        return self.member_losses(batch, generator)["total"].sum()

    # ---- the SequenceWorldModel protocol ----------------------------------------------------------------------
    def observe(self, context: SequenceBatch, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Posterior latent after the last step of each window: (h (B, M, deter), z (B, M, S*K))."""
        h, z, _ = self.posterior(context, generator)
        return h[:, -1], z[:, -1]

    def imagine_members(self, latent: tuple[Tensor, Tensor], actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Each member's open-loop prior rollout: actions (B, H, A) -> decoded states (B, H, M, D).

        actions[:, k] is taken at the k-th state of the rollout (k = 0: the last observed state), so step k
        predicts the state after it."""
        h, z = latent
        a_term = self.img_a(self._members(actions.float()))  # (B, H, M, hidden)
        hs, zs = [], []
        for a_k in a_term.unbind(1):
            h = self.img_step(h, z, a_k)
            z = self.sample(self.prior(h), generator)
            hs.append(h), zs.append(z)
        return self.decode(self.features(torch.stack(hs, 1), torch.stack(zs, 1)))

    def imagine(self, latent: tuple[Tensor, Tensor], actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Open-loop prior rollout under actions (B, H, A): the members' mean decoded states (B, H, D)."""
        return self.imagine_members(latent, actions, generator).mean(-2)

    def open_loop_error(self, batch: SequenceBatch, context: int = 1) -> Tensor:
        """Per-step squared error (B, T - context), mean over D, in state units: posterior on the first
        `context` frames, prior rolled with the recorded actions over the rest (the window should hold one
        episode; `eval_windows` cuts them so)."""
        if not 1 <= context < batch.states.shape[1]:
            raise ValueError(f"context must lie in [1, T); got {context} for T = {batch.states.shape[1]}")
        ctx = SequenceBatch(batch.states[:, :context], batch.actions[:, :context], batch.is_first[:, :context])
        pred = self.imagine(self.observe(ctx), batch.actions[:, context - 1 : -1])  # (B, T - context, D)
        return ((pred - batch.states[:, context:].float()) ** 2).mean(-1)

    # ---- for planning (wav.planning): online filtering and imagined features ------------------------------
    def filter_step(self, latent: tuple[Tensor, Tensor] | None, prev_action: Tensor | None, state: Tensor) -> tuple[Tensor, Tensor]:
        """One posterior step for online use: latent (h, z) each (B, M, .) after the previous frame (None at an
        episode start: the initial state and a zero action, as `posterior` resets), the action taken since
        (B, A), and the new frame's state (B, D) -> the posterior latent at that frame (mode, deterministic).
        Filtering an episode frame by frame gives `posterior`'s latents for the whole episode."""
        b = state.shape[0]
        if latent is None:
            latent, prev_action = self.initial(b), torch.zeros(b, self.cfg.action_dim)
        h, z = latent
        h = self.img_step(h, z, self.img_a(self._members(prev_action.float())))
        embed = self.encoder(self._members(symlog(state.float())))  # (B, M, units)
        z = self.sample(self.post_out(F.silu(self.obs_norm(self.obs_h(h) + self.obs_e(embed)))), None)
        return h, z

    def imagine_features(self, latent: tuple[Tensor, Tensor], actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """`imagine_members`' prior rollout, returning the features of the visited latents instead of decoded
        states: actions (B, H, A) -> features (B, H, M, feat); step k is the latent after actions[:, k]."""
        h, z = latent
        a_term = self.img_a(self._members(actions.float()))  # (B, H, M, hidden)
        feats = []
        for a_k in a_term.unbind(1):
            h = self.img_step(h, z, a_k)
            z = self.sample(self.prior(h), generator)
            feats.append(self.features(h, z))
        return torch.stack(feats, 1)

    def continue_prob(self, feat: Tensor) -> Tensor:
        """Probability that the episode continues after a latent: features (..., M, feat) -> (..., M)."""
        return torch.sigmoid(self.cont(feat)[..., 0])

    def disagreement(self, context: SequenceBatch, actions: Tensor) -> Tensor:
        """Variance across members of the open-loop rollouts after `context` under actions (B, H, A), mean
        over steps and state dims, (B,); 0 for one member."""
        pred = self.imagine_members(self.observe(context), actions)  # (B, H, M, D)
        return pred.var(-2, unbiased=False).mean((-2, -1))


def preset(name: str, **overrides) -> RSSMConfig:
    """A named preset with fields replaced, e.g. `preset("cpu", state_dim=43, members=5)`."""
    if name not in RSSM_PRESETS:
        raise ValueError(f"unknown RSSM preset {name!r}; expected one of {sorted(RSSM_PRESETS)}")
    return replace(RSSM_PRESETS[name], **overrides)


def count_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
