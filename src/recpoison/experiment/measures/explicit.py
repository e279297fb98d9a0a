"""Explicit victims (Li et al. 2016, §5): hold-out RMSE, integrity and availability shifts, t-test.

An explicit cell trains the poisoned victim and the clean victim (same seeds as the ``none``
cell) and records, per target and retrain: ``rmse_clean`` / ``rmse_poisoned`` (RMSE on the
held-out ratings, which no model saw), ``integrity_shift`` (poisoned minus clean mean predicted
rating of the target over the normal users, Li's integrity utility as a difference),
``prediction_shift`` (root mean squared difference of the poisoned and clean predictions on
:data:`PROBE_ENTRIES` entries drawn uniformly from those the normal users did not rate: Li's
availability utility, §5 footnote 4, estimated on a sample) and, per poisoned dataset,
``ttest_p`` (p-value of ``ttest_detectability``: popularity of the rated items, fake vs normal
users). Without targets the arrays have one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.experiment.measures.base import Fit
from recpoison.utilities import pair_predictions, unseen_entries
from recpoison.utilities import rmse as holdout_rmse
from recpoison.victims.base import Recommender

#: Unrated (user, item) entries on which explicit cells compare clean and poisoned predictions.
PROBE_ENTRIES = 20_000


def probe_entries(train: Interactions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The unrated entries both victims are compared on (the same for every cell of a seed)."""
    return unseen_entries(train, PROBE_ENTRIES, np.random.default_rng(seed))


class ExplicitUtilities:
    """What one (clean or poisoned) training gives: RMSE ``[max(T, 1), R]`` on ``test``, the
    targets' mean predicted rating over the normal users ``[T, R]`` and the predictions on the
    ``probe`` entries ``[max(T, 1), R, n]``."""

    def __init__(
        self,
        test: Interactions,
        targets: np.ndarray,
        probe: tuple[np.ndarray, np.ndarray],
        retrains: int,
    ) -> None:
        self.test, self.targets, self.probe = test, targets, probe
        rows = max(len(targets), 1)
        self.rmse = np.full((rows, retrains), np.nan)
        self.target_scores = np.full((len(targets), retrains), np.nan)
        self.probe_scores = np.full((rows, retrains, len(probe[0])), np.nan)

    def observe(self, fit: Fit) -> None:
        model, n_targets = fit.model, len(self.targets)
        if fit.shared:
            self.rmse[:] = holdout_rmse(model, self.test)[None, :]
            if n_targets:
                self.target_scores[:] = mean_normal_scores(model, fit.datasets[0], self.targets).T
            self.probe_scores[:] = pair_predictions(model, *self.probe)[None]
            return
        members = fit.members
        for j, t in enumerate(members):
            means = mean_normal_scores(model, fit.datasets[t], self.targets[t : t + 1])[:, 0]
            self.target_scores[t] = means[fit.block(j)]
        self.rmse[members] = holdout_rmse(model, self.test).reshape(len(members), fit.retrains)
        predictions = pair_predictions(model, *self.probe)
        self.probe_scores[members] = predictions.reshape(len(members), fit.retrains, -1)

    def columns(self, t: int, r: int, j: int) -> dict[str, Any]:
        """The ``rmse`` result column of target ``t`` (-1: none) and retrain ``r``."""
        return {"rmse": float(self.rmse[max(t, 0), r])}


def explicit_info(
    clean: ExplicitUtilities, poisoned: ExplicitUtilities, ttest_p: Sequence[float] = ()
) -> dict[str, Any]:
    """The Li et al. 2016 measurements of a cell (see the module doc), ``[T, R]`` lists."""
    shift = np.sqrt(np.mean((poisoned.probe_scores - clean.probe_scores) ** 2, axis=-1))
    return {
        "rmse_clean": clean.rmse.tolist(),
        "rmse_poisoned": poisoned.rmse.tolist(),
        "prediction_shift": shift.tolist(),
        "integrity_shift": (poisoned.target_scores - clean.target_scores).tolist(),
        "ttest_p": list(ttest_p),
    }


def ttest_p(data: Interactions) -> float:
    """p-value of the fake-vs-normal t-test on the popularity of the rated items."""
    from recpoison.utilities import ttest_detectability

    return float(ttest_detectability(data)["p_value"])


def mean_normal_scores(model: Recommender, data: Interactions, items: np.ndarray) -> np.ndarray:
    """Mean predicted score of ``items`` over the normal users of ``data``, ``[replicas, items]``
    (normal users are the first rows of every per-replica dataset)."""
    users = np.flatnonzero(~data.is_fake)
    total = np.zeros((model.n_replicas, len(items)))
    index = torch.as_tensor(items, dtype=torch.long)
    for start in range(0, len(users), 1024):
        scores = model.score_replicas(users[start : start + 1024])
        total += scores[:, :, index.to(scores.device)].double().sum(1).cpu().numpy()
    return total / max(len(users), 1)
