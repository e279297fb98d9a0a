"""Victim quality: leave-one-out HR@10 / NDCG@10 against sampled negatives (NCF protocol).

The latest interaction of each user is held out, the victim is trained on the rest (the
held-out item is never sampled as a training negative when the victim supports it) and ranks
it against :data:`QUALITY_NEGATIVES` items the user has not interacted with (fewer where some
user has not that many). No model selection on test data: the epochs are fixed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from recpoison.data.interactions import Interactions
from recpoison.metrics import leave_one_out_hr_ndcg
from recpoison.victims.base import Recommender

#: List length and number of sampled negatives of the victim-quality metric (NCF protocol).
QUALITY_K, QUALITY_NEGATIVES = 10, 99


def fit_without_held_out(
    model: Recommender, train: Interactions | Sequence[Interactions], test_items: np.ndarray
) -> None:
    """Fit ``model`` on ``train`` (one dataset, or one per replica), never sampling a user's
    held-out item as a negative."""
    if "exclude_items" in inspect.signature(model.fit).parameters:
        model.fit(train, exclude_items=test_items)
    else:
        model.fit(train)


def quality_negatives(train: Interactions) -> int:
    """99 negatives, fewer where some user has not that many unrated items."""
    most_rated = int(np.diff(train.matrix.indptr).max(initial=0))
    return max(1, min(QUALITY_NEGATIVES, train.n_items - most_rated - 1))


def quality_rows(
    model: Recommender, train: Interactions, test_items: np.ndarray, seed: int
) -> list[dict[str, Any]]:
    """One row per replica: ``retrain``, ``k``, ``hr``, ``ndcg``, ``users``, ``negatives``."""
    negatives = quality_negatives(train)
    scores = leave_one_out_hr_ndcg(
        model, train, test_items, QUALITY_K, negatives, random_state=seed
    )
    return [
        {
            "retrain": r,
            "k": QUALITY_K,
            "hr": float(scores["hr"][r]),
            "ndcg": float(scores["ndcg"][r]),
            "users": int(scores["users"]),
            "negatives": negatives,
        }
        for r in range(model.n_replicas)
    ]
