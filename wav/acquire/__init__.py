"""Acquisition strategies (one file each) behind one registry: which candidate transitions to label next."""

from wav.acquire.base import REGISTRY, Models, Strategy, make_strategy, select
from wav.acquire import baselines, verifier  # noqa: F401  (fill the registry)

__all__ = ["REGISTRY", "Models", "Strategy", "make_strategy", "select"]
