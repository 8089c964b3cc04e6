"""Domains: how one kind of world (MiniGrid grids, robot manipulation) plugs into the shared verification
core. The loops, strategies and fitting code take a `Domain` and never import a domain themselves."""

from wav.domains.base import Domain

__all__ = ["Domain"]
