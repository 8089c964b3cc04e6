"""Numerical checks of the paper's propositions (§3): the linear-Gaussian sample-efficiency asymmetry
(Proposition 3.2, :mod:`wav.theory.prop32`) and its learned-model counterpart (:mod:`wav.theory.learned`).
"""
