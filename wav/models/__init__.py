"""The three models of the verification cycle and a registry of model kinds (name -> class, config class).

MiniGrid: :class:`GridWorldModel` (f), :class:`MixtureSubgoalGenerator` (p(s'|s)), :class:`SparseInverseModel`
(h, `dense=True` for the vanilla ablation). Continuous states/actions: :mod:`wav.models.continuous`; the
robot world model :class:`RSSM` and the latent sparse inverse model :class:`LatentInverseModel`.
"""

from __future__ import annotations

from wav.config import ContinuousInverseConfig, ContinuousWorldModelConfig, InverseConfig, SubgoalConfig, WorldModelConfig
from wav.models.continuous import MLPWorldModel, SparseContinuousInverse
from wav.models.inverse import SparseInverseModel
from wav.models.latent_inverse import LatentInverseConfig, LatentInverseModel
from wav.models.rssm import RSSM, RSSMConfig
from wav.models.subgoal import MixtureSubgoalGenerator
from wav.models.world_model import GridWorldModel

MODEL_KINDS = {
    "world-model": (GridWorldModel, WorldModelConfig),
    "subgoal": (MixtureSubgoalGenerator, SubgoalConfig),
    "inverse": (SparseInverseModel, InverseConfig),
    "continuous-world-model": (MLPWorldModel, ContinuousWorldModelConfig),
    "continuous-inverse": (SparseContinuousInverse, ContinuousInverseConfig),
    "rssm": (RSSM, RSSMConfig),
    "latent-inverse": (LatentInverseModel, LatentInverseConfig),
}

__all__ = ["GridWorldModel", "MixtureSubgoalGenerator", "SparseInverseModel", "MLPWorldModel", "SparseContinuousInverse", "RSSM", "LatentInverseModel", "MODEL_KINDS"]
