"""The target hit ratio HR_t@K of each target over the normal users (Huang et al. 2021, §III-B).

See :func:`recpoison.metrics.target_hit_ratio`: fake users never count, neither in the hits nor
in the denominator, and items a user has seen are not ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recpoison.data.interactions import Interactions
from recpoison.experiment.measures.base import Fit
from recpoison.metrics import target_hit_ratio
from recpoison.victims.base import Recommender

#: Budget (elements) of one ``[replicas, users, items]`` score block when measuring HR_t.
SCORE_BLOCK_ELEMENTS = 2**25


class TargetHits:
    """Hits ``[T, R, K]`` and eligible users ``[T]`` of every target.

    ``eval_data`` (default: the trained datasets) says which users count and what they have
    seen, e.g. the poisoned data with the users a detector flagged marked as gone. ``suffix``
    names the result columns (``hits``, ``eligible``, ``hr`` plus the suffix).
    """

    def __init__(
        self,
        targets: np.ndarray,
        ks: Sequence[int],
        retrains: int,
        eval_data: Sequence[Interactions] | None = None,
        suffix: str = "",
    ) -> None:
        self.targets, self.ks, self.eval_data, self.suffix = targets, list(ks), eval_data, suffix
        self.hits = np.zeros((len(targets), retrains, len(ks)), dtype=np.int64)
        self.eligible = np.zeros(len(targets), dtype=np.int64)

    def observe(self, fit: Fit) -> None:
        if len(self.targets) == 0:
            return
        eval_data = self.eval_data or fit.datasets
        if fit.shared:
            thr = target_hit_ratio(
                fit.model,
                eval_data[0],
                self.targets,
                self.ks,
                batch_size=score_batch(fit.model, fit.datasets[0]),
            )
            self.hits[:] = thr.hits.transpose(1, 0, 2)
            self.eligible[:] = thr.eligible
            return
        for j, t in enumerate(fit.members):
            thr = target_hit_ratio(
                fit.model,
                eval_data[t],
                self.targets[t : t + 1],
                self.ks,
                batch_size=score_batch(fit.model, fit.datasets[t]),
            )
            self.hits[t] = thr.hits[fit.block(j), 0]
            self.eligible[t] = thr.eligible[0]

    def columns(self, t: int, r: int, j: int) -> dict[str, Any]:
        """The result columns of target ``t`` (-1: none), retrain ``r`` and K index ``j``."""
        s = self.suffix
        if t < 0:
            return {f"eligible{s}": 0, f"hits{s}": 0, f"hr{s}": None}
        eligible, hits = int(self.eligible[t]), int(self.hits[t, r, j])
        return {
            f"eligible{s}": eligible,
            f"hits{s}": hits,
            f"hr{s}": float(hits) / float(eligible) if eligible > 0 else None,
        }


def score_batch(model: Recommender, data: Interactions) -> int:
    """Users per scoring block so that ``[replicas, users, items]`` stays within budget."""
    return int(np.clip(SCORE_BLOCK_ELEMENTS // (model.n_replicas * data.n_items), 1, 1024))
