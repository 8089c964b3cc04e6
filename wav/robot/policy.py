"""A state-based diffusion policy (REFERENCE §6): DDPM training, DDIM sampling, small MLP denoiser.

The policy models p(a | s) for one 7-D action; 10 checkpoints saved along training grade from poor to
near-expert and generate the trajectory pool. Pure torch, no diffusers: the schedule is a few lines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from wav.data.io import atomic_write


@dataclass(frozen=True)
class PolicyConfig:
    hidden: int = 256
    """width of the denoiser MLP"""
    layers: int = 3
    """hidden layers of the denoiser MLP"""
    diffusion_steps: int = 100
    """DDPM training timesteps (squared-cosine schedule)"""
    sample_steps: int = 10
    """DDIM steps at sampling time (eta = 0)"""
    lr: float = 1e-3
    """Adam learning rate"""
    batch_size: int = 256
    """transitions per gradient step"""
    train_steps: int = 4000
    """gradient steps in total"""
    checkpoints: int = 10
    """checkpoints saved along training, at quadratically spaced steps so early ones are poor"""
    time_embed: int = 32
    """sinusoidal timestep embedding size"""

    def checkpoint_steps(self) -> list[int]:
        k = np.arange(1, self.checkpoints + 1)
        return sorted({max(1, int(round(self.train_steps * (i / self.checkpoints) ** 2))) for i in k})


def alphas_cumprod(steps: int) -> Tensor:
    """Squared-cosine schedule (Nichol & Dhariwal), betas capped at 0.999."""
    t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()  # (S,)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    ang = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([ang.sin(), ang.cos()], dim=1)  # (B, dim)


class Denoiser(nn.Module):
    """eps_theta(a_k, k, s): predicts the noise added to an action, conditioned on the state."""

    def __init__(self, state_dim: int, action_dim: int, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        dims = [action_dim + state_dim + cfg.time_embed] + [cfg.hidden] * cfg.layers
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Mish()]
        self.net = nn.Sequential(*layers, nn.Linear(cfg.hidden, action_dim))

    def forward(self, noisy: Tensor, k: Tensor, state: Tensor) -> Tensor:
        return self.net(torch.cat([noisy, state, timestep_embedding(k, self.cfg.time_embed)], dim=1))


class DiffusionPolicy:
    """Denoiser + state normaliser + schedule; `act(state)` samples one action with DDIM."""

    def __init__(self, state_dim: int, action_dim: int, cfg: PolicyConfig, state_mean=None, state_std=None):
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        self.model = Denoiser(state_dim, action_dim, cfg)
        self.abar = alphas_cumprod(cfg.diffusion_steps)
        self.state_mean = torch.zeros(state_dim) if state_mean is None else torch.as_tensor(state_mean, dtype=torch.float32)
        self.state_std = torch.ones(state_dim) if state_std is None else torch.as_tensor(state_std, dtype=torch.float32)

    def normalise(self, states: Tensor) -> Tensor:
        return (states - self.state_mean) / self.state_std

    def loss(self, states: Tensor, actions: Tensor, gen: torch.Generator) -> Tensor:
        b = actions.shape[0]
        k = torch.randint(0, self.cfg.diffusion_steps, (b,), generator=gen)
        eps = torch.randn(actions.shape, generator=gen)
        ab = self.abar[k][:, None]  # (B, 1)
        noisy = ab.sqrt() * actions + (1 - ab).sqrt() * eps
        return ((self.model(noisy, k, self.normalise(states)) - eps) ** 2).mean()

    @torch.no_grad()
    def sample(self, states: Tensor, gen: torch.Generator) -> Tensor:
        """DDIM (eta = 0) from pure noise over `sample_steps` evenly spaced timesteps; (B, A) in [-1, 1]."""
        s = self.normalise(states)
        a = torch.randn((states.shape[0], self.action_dim), generator=gen)
        ks = torch.linspace(self.cfg.diffusion_steps - 1, 0, self.cfg.sample_steps).round().long().tolist()
        for i, k in enumerate(ks):
            ab = self.abar[k]
            ab_prev = self.abar[ks[i + 1]] if i + 1 < len(ks) else torch.tensor(1.0)
            eps = self.model(a, torch.full((a.shape[0],), k), s)
            a0 = ((a - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            eps = (a - ab.sqrt() * a0) / (1 - ab).sqrt()
            a = ab_prev.sqrt() * a0 + (1 - ab_prev).sqrt() * eps
        return a.clamp(-1, 1)

    def act(self, state: np.ndarray, gen: torch.Generator) -> np.ndarray:
        return self.sample(torch.as_tensor(state, dtype=torch.float32)[None], gen)[0].numpy()

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "state_mean": self.state_mean,
            "state_std": self.state_std,
            "model": self.model.state_dict(),
        }

    def save(self, path, **meta) -> None:
        blob = self.state_dict() | {"meta": meta}
        atomic_write(path, lambda tmp: torch.save(blob, tmp))

    @staticmethod
    def load(path) -> "DiffusionPolicy":
        blob = torch.load(path, map_location="cpu", weights_only=False)
        pol = DiffusionPolicy(blob["state_dim"], blob["action_dim"], PolicyConfig(**blob["config"]), blob["state_mean"], blob["state_std"])
        pol.model.load_state_dict(blob["model"])
        pol.model.eval()
        pol.meta = blob.get("meta", {})
        return pol


def train_policy(states: np.ndarray, actions: np.ndarray, cfg: PolicyConfig, seed: int, save=None, progress: bool = True) -> list[dict]:
    """Fit a DiffusionPolicy on (N, D) states and (N, A) actions; `save(policy, step, index)` is called at
    each checkpoint step. Returns the loss log [{step, loss}] (mean over each checkpoint interval)."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # parameter initialisation
    s = torch.as_tensor(states, dtype=torch.float32)
    a = torch.as_tensor(actions, dtype=torch.float32).clamp(-1, 1)
    pol = DiffusionPolicy(s.shape[1], a.shape[1], cfg, s.mean(0), s.std(0).clamp(min=1e-3))
    opt = torch.optim.Adam(pol.model.parameters(), lr=cfg.lr)
    ckpts = cfg.checkpoint_steps()
    log, running = [], []
    bar = tqdm(range(1, cfg.train_steps + 1), desc="train-policy", disable=not progress, mininterval=2)
    for step in bar:
        idx = torch.randint(0, s.shape[0], (min(cfg.batch_size, s.shape[0]),), generator=gen)
        loss = pol.loss(s[idx], a[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(loss.item())
        if step in ckpts:
            log.append({"step": step, "loss": float(np.mean(running))})
            running = []
            bar.set_postfix(loss=log[-1]["loss"])
            if save is not None:
                pol.model.eval()
                save(pol, step, ckpts.index(step))
                pol.model.train()
    return log
