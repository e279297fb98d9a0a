"""Filler-rating generation and fake-profile assembly shared by every profile attack.

Huang et al. (NDSS 2021) generate the ratings of filler items "according to their previous
fitted normal distributions" (section IV-D): the random attack fits one normal distribution to
all ratings, the average attack and the poison-model attack one per item (section V-A); the
continuous draws are "projected to discrete integer numbers" (section IV-B), i.e. rounded to the
scale's step and clipped to the scale. Implicit data has a single value, 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.transforms import item_popularity, item_rating_stats
from recpoison.errors import ConfigError

#: Steps tried, largest first, when inferring the granularity of a rating scale.
_STEPS = (1.0, 0.5)

#: Lowest filler rating on a continuous scale starting at 0 (0 cannot be stored).
_SMALLEST_RATING = 1e-3


def rating_step(data: Interactions) -> float | None:
    """The granularity of ``data``'s ratings: 1.0 (whole stars), 0.5 (half stars) or ``None``.

    A step ``s`` fits when every rating minus the scale's minimum is a multiple of ``s``;
    ``None`` means continuous ratings (no rounding). Implicit data has step ``None``.
    """
    if data.is_implicit or data.n_ratings == 0:
        return None
    low = data.rating_scale[0]
    values = np.unique(data.matrix.data.astype(np.float64))
    for step in _STEPS:
        units = (values - low) / step
        if np.allclose(units, np.round(units), atol=1e-6):
            return step
    return None


def max_rating(data: Interactions) -> float:
    """The rating a fake user gives its target: the top of the scale, or 1.0 on implicit data."""
    return 1.0 if data.is_implicit else float(data.rating_scale[1])


@dataclass(frozen=True)
class RatingSampler:
    """Normal distributions fitted to the real users' ratings of a dataset, for filler items.

    ``mean`` / ``std`` hold one value per item: the item's own statistics (``per_item=True``,
    from :func:`~recpoison.data.transforms.item_rating_stats`, which falls back to the global
    values for unrated and single-rating items) or the global ones broadcast.
    """

    mean: np.ndarray
    std: np.ndarray
    scale: tuple[float, float] | None
    step: float | None

    @classmethod
    def fit(cls, data: Interactions, per_item: bool) -> RatingSampler:
        """Fit N(μ, σ) globally (random attack) or per item (average / poison-model attack)."""
        if data.is_implicit:
            return cls(np.ones(data.n_items), np.zeros(data.n_items), None, None)
        if per_item:
            mean, std = item_rating_stats(data)
        else:
            values = data.matrix[~data.is_fake].data.astype(np.float64)
            center = float(values.mean()) if len(values) else float(np.mean(data.rating_scale))
            spread = float(values.std()) if len(values) else 0.0
            mean, std = np.full(data.n_items, center), np.full(data.n_items, spread)
        return cls(
            np.asarray(mean, dtype=np.float64),
            np.asarray(std, dtype=np.float64),
            data.rating_scale,
            rating_step(data),
        )

    def sample(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Ratings for ``items`` (any shape): normal draws, rounded to the step, clipped to the
        scale (never to 0, which would mean "not rated")."""
        items = np.asarray(items, dtype=np.int64)
        if self.scale is None:
            return np.ones(items.shape, dtype=np.float32)
        draws = rng.normal(self.mean[items], self.std[items])
        low, high = self.scale
        if self.step is not None:
            draws = low + np.round((draws - low) / self.step) * self.step
        floor = low if low > 0 else (self.step or _SMALLEST_RATING)
        return np.clip(draws, floor, high).astype(np.float32)


def assemble_profiles(
    data: Interactions,
    targets: np.ndarray,
    fillers: np.ndarray,
    filler_ratings: np.ndarray,
    *,
    rate_target: bool,
    info: dict | None = None,
) -> FakeProfiles:
    """Fake rows: each user rates its ``fillers[v]`` with ``filler_ratings[v]`` and, when
    ``rate_target``, every target with :func:`max_rating`.

    ``fillers`` is ``[n_fake, n]`` item indices (distinct per row, never a target).
    """
    n_fake = fillers.shape[0]
    columns = [fillers]
    values = [filler_ratings.astype(np.float32)]
    if rate_target:
        columns.append(np.broadcast_to(targets, (n_fake, len(targets))))
        values.append(np.full((n_fake, len(targets)), max_rating(data), dtype=np.float32))
    cols = np.concatenate(columns, axis=1)
    vals = np.concatenate(values, axis=1)
    rows = np.repeat(np.arange(n_fake), cols.shape[1])
    matrix = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n_fake, data.n_items))
    return FakeProfiles(matrix, np.asarray(targets, dtype=np.int64), dict(info or {}))


def n_rated_items(
    name: str, data: Interactions, n_fillers: int, n_targets: int, rate_target: bool
) -> int:
    """How many non-target items each fake user rates; :class:`ConfigError` when the data has
    fewer non-target items than that.

    With ``rate_target=False`` (the variant at the end of section V-B) a fake user rates
    ``n + 1`` non-target items instead of the target plus ``n`` fillers, so the profile keeps its
    size; with several targets, ``n + len(targets)``.
    """
    n_rated = n_fillers if rate_target else n_fillers + n_targets
    available = data.n_items - n_targets
    if n_rated > available:
        raise ConfigError(
            f"{name}: each fake user needs {n_rated} non-target items but the data "
            f"has only {available}; lower n_fillers"
        )
    return n_rated


def filler_popularity(data: Interactions, profiles: FakeProfiles) -> float:
    """Mean number of ratings (by the real users of ``data``) of the non-target items the fake
    users rate: which part of the catalogue an attack ties its targets to (NaN without any)."""
    items = profiles.matrix.tocsr().indices
    items = items[~np.isin(items, profiles.targets)]
    return float(item_popularity(data)[items].mean()) if len(items) else float("nan")
