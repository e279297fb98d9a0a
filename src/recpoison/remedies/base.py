"""What a remedy returns, and the plain remedy: retrain from scratch without the flagged users.

A remedy runs after detection (seed 000, section 7.1): the flagged users are removed from the
system and the model is brought to a state that does not depend on them. ``retrain`` fits a new
victim on the data with the flagged users' interactions emptied (the rows stay, so user indices
do not move); :class:`recpoison.remedies.sisa.SISA` unlearns them by retraining only the shards
they touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recpoison.data.interactions import Interactions
from recpoison.detectors.protocol import empty_flagged
from recpoison.errors import ConfigError
from recpoison.victims import Recommender


@dataclass(frozen=True)
class RemedyResult:
    """The model serving the cleaned system, the data it now reflects (removed users' rows
    emptied; count only the users not removed), the seconds the remedy took and diagnostics."""

    model: Recommender
    data: Interactions
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def removal_mask(data: Interactions, users: np.ndarray) -> np.ndarray:
    """A boolean mask over the users of ``data`` from user indices or a boolean mask."""
    users = np.asarray(users)
    if users.dtype == bool:
        if users.shape != (data.n_users,):
            raise ConfigError(f"a user mask needs {data.n_users} entries, got {users.shape}")
        return users.copy()
    if users.size and (users.min() < 0 or users.max() >= data.n_users):
        raise ConfigError(f"user indices must lie in [0, {data.n_users})")
    mask = np.zeros(data.n_users, dtype=bool)
    mask[users.astype(np.int64)] = True
    return mask


def retrain(
    model: Recommender, data: Interactions, users: np.ndarray, **fit_params: Any
) -> RemedyResult:
    """Fit an unfitted copy of ``model`` (same parameters and seeds) on ``data`` without
    ``users`` (indices or mask), passing ``fit_params`` to ``fit`` (e.g. ``exclude_items``);
    the seconds are those of the fit."""
    removed = removal_mask(data, users)
    cleaned = empty_flagged(data, removed)
    started = time.perf_counter()
    fitted = model.clone().fit(cleaned, **fit_params)
    seconds = time.perf_counter() - started
    return RemedyResult(fitted, cleaned, seconds, {"users_removed": int(removed.sum())})
