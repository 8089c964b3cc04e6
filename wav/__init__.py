"""World Action Verifier (WAV): choose the action whose outcome the world model cannot verify.

The verification cycle (subgoal -> inverse -> forward -> score) lives in :mod:`wav.cycle`;
environments, models and experiments plug into it through the protocols in :mod:`wav.types`.
"""

__version__ = "0.1.0"
