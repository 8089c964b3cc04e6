"""The residual planner (ROBOT.md §7.3, SAILOR's MPPI/CEM): around the base policy's H-step action chunk, sample
residual sequences, imagine each in the world model, score it by the discounted discriminator reward minus a
penalty on the critics' spread plus the terminal value, refit a Gaussian to the softmax-weighted elites, and
return the best sample's first residual. All N samples of an iteration are one batched rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class PlannerConfig:
    """MPPI budget and objective (published: 6 x 256, std 0.05, clamp 0.2, 32 elites, temperature 0.5)."""

    iterations: int = 6
    """refits of the sampling distribution per planning step"""
    samples: int = 256
    """residual sequences imagined per iteration"""
    horizon: int = 8
    """imagined steps (the base policy's chunk length)"""
    init_std: float = 0.05
    """initial std of the residuals"""
    min_std: float = 0.01
    """lower clamp of the refitted std"""
    max_std: float = 0.1
    """upper clamp of the refitted std"""
    clamp: float = 0.2
    """residuals are clipped to [-clamp, clamp]"""
    elites: int = 32
    """best samples the distribution is refitted on"""
    temperature: float = 0.5
    """elite weights exp(temperature (v - v_max)), normalised"""
    gamma: float = 0.99
    """discount of the imagined rewards"""
    uncertainty: float = 1.0
    """weight of the critics' std subtracted from every reward and from the terminal value"""
    use_value: bool = True
    """add the critics' terminal value (an ablation switches it off, keeping the penalty)"""


def mppi(objective: Callable[[Tensor], Tensor], horizon: int, action_dim: int, cfg: PlannerConfig,
         generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """Maximise objective(residuals (N, H, A)) -> (N,) over residual sequences; returns the best sequence seen
    (H, A) and {'value': its objective, 'base_value': the zero residual's, 'values': best per iteration}.

    Sample 0 of each iteration is the current mean (zero at first), so the plan never scores below the base
    chunk under the model."""
    mean = torch.zeros(horizon, action_dim)
    std = torch.full((horizon, action_dim), cfg.init_std)
    best, best_v, base_v, history = mean.clone(), -float("inf"), None, []
    k = min(cfg.elites, cfg.samples)
    for _ in range(cfg.iterations):
        eps = torch.randn(cfg.samples, horizon, action_dim, generator=generator)
        eps[0] = 0.0
        res = (mean + std * eps).clamp(-cfg.clamp, cfg.clamp)  # (N, H, A)
        v = objective(res)  # (N,)
        if base_v is None:
            base_v = float(v[0])
        top = v.topk(k)
        elites = res[top.indices]  # (K, H, A)
        if float(top.values[0]) > best_v:
            best_v, best = float(top.values[0]), elites[0].clone()
        w = torch.softmax(cfg.temperature * (top.values - top.values[0]), 0)[:, None, None]  # (K, 1, 1)
        mean = (w * elites).sum(0)
        std = (w * (elites - mean) ** 2).sum(0).sqrt().clamp(cfg.min_std, cfg.max_std)
        history.append(best_v)
    return best, {"value": best_v, "base_value": base_v, "values": history}


class Planner:
    """Binds a world model (`wav.models.rssm.RSSM`), the reward (features (..., F) -> (...,)) and the critic
    ensemble (features (..., F) -> (..., C)); `plan(latent, base)` returns the residual to add to base[0]."""

    def __init__(self, rssm, reward, critic, cfg: PlannerConfig):
        self.rssm, self.reward, self.critic, self.cfg = rssm, reward, critic, cfg

    def returns(self, latent: tuple[Tensor, Tensor], actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Objective of N action sequences (N, H, A) from one latent ((1, M, .) pair): (N,)."""
        n = actions.shape[0]
        start = tuple(x.expand(n, *x.shape[1:]) for x in latent)  # (N, M, .)
        return self.objective(self.rssm.imagine_features(start, actions, generator))

    def weights(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per step of N latent paths (N, H, M, F): the continue probability, the chance the episode is still
        running when the step arrives, and the weight of the step's reward (that chance times gamma^t): (N, H) each."""
        n, h = feat.shape[:2]
        cont = self.rssm.continue_prob(feat).mean(-1)  # (N, H)
        alive = torch.cat([torch.ones(n, 1), torch.cumprod(cont[:, :-1], 1)], 1)  # (N, H)
        return cont, alive, alive * self.cfg.gamma ** torch.arange(h, dtype=torch.float32)

    def objective(self, feat: Tensor) -> Tensor:
        """The planner's objective of N latent paths, features (N, H, M, F) of the H latents after each action ->
        (N,). Imagined paths are what `returns` scores; the posterior features of states reached in the real
        simulator give the same objective under the true dynamics (`wav.planning.probe`)."""
        c = self.cfg
        h = feat.shape[1]
        cont, alive, disc = self.weights(feat)
        feat = feat.mean(-2)  # (N, H, F)
        reward = self.reward(feat)  # (N, H)
        values = self.critic(feat)  # (N, H, C)
        spread = values.std(-1) if values.shape[-1] > 1 else torch.zeros_like(reward)
        total = (disc * (reward - c.uncertainty * spread)).sum(1)
        terminal = (values[:, -1].mean(-1) if c.use_value else 0.0) - c.uncertainty * spread[:, -1]
        return total + alive[:, -1] * cont[:, -1] * c.gamma**h * terminal

    @torch.no_grad()
    def plan(self, latent: tuple[Tensor, Tensor], base: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """The residual (A,) for the first action of the base chunk (H, A) and the MPPI info; `generator` draws
        the residuals, the imagination follows the prior's mode (samples are compared on equal footing)."""
        h, a = base.shape
        best, info = mppi(lambda res: self.returns(latent, (base + res).clamp(-1, 1)), h, a, self.cfg, generator)
        return best[0], info
