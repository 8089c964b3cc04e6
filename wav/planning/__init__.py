"""Downstream planning with a learned world model (REFERENCE §6, ROBOT.md §7, the SAILOR protocol): a discriminator
reward on the world model's latents (`reward`), a value ensemble trained in imagination (`critic`), an MPPI
residual planner around a base policy's action chunk (`planner`), and the actor that plans online (`agent`).
Nothing here is specific to a domain beyond an RSSM-style world model and a chunking base policy.
"""

from wav.planning.agent import Demos, PlanningActor, PlanningConfig, prepare, run_episodes
from wav.planning.critic import CriticConfig, CriticEnsemble, fit_critic, lambda_returns
from wav.planning.planner import Planner, PlannerConfig, mppi
from wav.planning.reward import Discriminator, RewardConfig, fit_discriminator, gradient_penalty, separation

__all__ = ["CriticConfig", "CriticEnsemble", "Demos", "Discriminator", "Planner", "PlannerConfig", "PlanningActor", "PlanningConfig",
           "RewardConfig", "fit_critic", "fit_discriminator", "gradient_penalty", "lambda_returns", "mppi", "prepare", "run_episodes", "separation"]
