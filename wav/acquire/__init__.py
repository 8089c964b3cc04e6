"""Acquisition strategies (one file each) behind one registry: which candidate transitions to label next."""

from wav.acquire.base import REGISTRY, Candidates, Models, Strategy, make_strategy, select
from wav.acquire import baselines, verifier  # noqa: F401  (fill the registry)

__all__ = ["REGISTRY", "Candidates", "Models", "Strategy", "make_strategy", "select"]
