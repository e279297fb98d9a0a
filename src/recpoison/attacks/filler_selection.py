"""Filler selection of the poison-model attack (Huang et al., NDSS 2021, section IV-D, Eq. 7-8):
selection probabilities that keep the fake users' fillers diverse."""

from __future__ import annotations

import numpy as np


class SelectionProbability:
    """The selection-probability vector p of section IV-D over the non-target items.

    ``choose`` applies Eq. 8 (``r_v = ŷ_v ⊙ p``, top-n) and Eq. 7 (``p_i <- δ p_i`` for the
    chosen items), then resets p to ones when every entry is below 1.
    """

    def __init__(self, n_items: int, targets: np.ndarray, delta: float) -> None:
        self.candidates = np.setdiff1d(np.arange(n_items), targets)
        self.p = np.ones(len(self.candidates))
        self.delta = delta
        self.resets = 0

    def choose(self, scores: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` items with the highest adjusted scores (``scores``: ŷ_v over all items)."""
        adjusted = scores[self.candidates] * self.p
        top = np.argsort(-adjusted, kind="stable")[:n]
        self.p[top] *= self.delta
        if np.all(self.p < 1.0):
            self.p[:] = 1.0
            self.resets += 1
        return self.candidates[top]
