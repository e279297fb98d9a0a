"""Algorithm-agnostic baseline attacks: random, average and bandwagon.

As used by Huang et al. (NDSS 2021, section V-A "Baseline Attacks"; Lam & Riedl 2004, Mobasher et
al. 2007): every fake user rates the target item(s) with the scale maximum (1.0 on implicit data)
and ``n_fillers`` filler items chosen by the attack's rule; filler ratings are normal draws
(:mod:`recpoison.attacks.ratings`). With ``rate_target=False`` (end of section V-B) the target is
not rated and ``n_fillers + len(targets)`` fillers are drawn by the same rule instead.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from typing import ClassVar, Literal

import numpy as np

from recpoison.attacks.base import Attack
from recpoison.attacks.ratings import (
    RatingSampler,
    assemble_profiles,
    max_rating,
    n_rated_items,
)
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.transforms import item_popularity
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)

Popularity = Literal["count", "mean_rating"]


def sample_distinct(
    candidates: np.ndarray, n_rows: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``[n_rows, n]`` items, each row ``n`` distinct ones drawn uniformly from ``candidates``.

    Vectorized: the ``n`` smallest of i.i.d. uniform keys form a uniform sample without
    replacement.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if n == 0:
        return np.empty((n_rows, 0), dtype=np.int64)
    keys = rng.random((n_rows, len(candidates)))
    picked = np.argpartition(keys, n - 1, axis=1)[:, :n]
    return candidates[picked]


class ProfileAttack(Attack):
    """Shared machinery of the heuristic attacks: choose fillers, rate them, assemble rows."""

    def __init__(self, *, n_fillers: int = 30, rate_target: bool = True) -> None:
        super().__init__(n_fillers=n_fillers)
        self.rate_target = rate_target

    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> FakeProfiles:
        """``n_fake`` profiles promoting every item of ``targets`` (item indices of ``train``)."""
        start = time.perf_counter()
        targets = self.check_inputs(train, targets, n_fake, surrogate)
        n_rated = n_rated_items(self.name, train, self.n_fillers, len(targets), self.rate_target)
        rng = check_random_state(random_state)
        non_targets = np.setdiff1d(np.arange(train.n_items), targets)
        fillers, ratings, info = self._fillers(train, non_targets, n_fake, n_rated, rng)
        info.update({"attack": self.name, "seconds": time.perf_counter() - start})
        return assemble_profiles(
            train, targets, fillers, ratings, rate_target=self.rate_target, info=info
        )

    @abstractmethod
    def _fillers(
        self,
        train: Interactions,
        candidates: np.ndarray,
        n_fake: int,
        n: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Fillers ``[n_fake, n]`` drawn from ``candidates``, their ratings, and diagnostics."""


class RandomAttack(ProfileAttack):
    """Random attack: fillers uniform at random, ratings from N(global mean, global std)."""

    name: ClassVar[str] = "random"
    #: Fit the filler-rating normal per item (average attack) or once for all items (random).
    per_item_ratings: ClassVar[bool] = False

    def _fillers(
        self,
        train: Interactions,
        candidates: np.ndarray,
        n_fake: int,
        n: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        fillers = sample_distinct(candidates, n_fake, n, rng)
        sampler = RatingSampler.fit(train, per_item=self.per_item_ratings)
        return fillers, sampler.sample(fillers, rng), {}


class AverageAttack(RandomAttack):
    """Average attack: fillers uniform at random, ratings from N(item mean, item std) per item."""

    name: ClassVar[str] = "average"
    per_item_ratings: ClassVar[bool] = True


class BandwagonAttack(ProfileAttack):
    """Bandwagon attack: a share of the fillers from the most popular items, the rest at random.

    Section V-A of Huang et al.: popularity is the frequency of an item on implicit data and its
    average rating on explicit data (``popularity=None`` picks that per data kind; ``"count"`` or
    ``"mean_rating"`` force one); ``popular_share`` of the fillers are drawn uniformly from the
    ``popular_fraction`` most popular non-target items and the others uniformly "among the left
    unselected items" (the non-popular ones). The paper rates all fillers "with the same method
    in random attacks" (``popular_rating="sampled"``, the default); the classic bandwagon attack
    of Lam & Riedl / Mobasher et al. rates the popular ones at the scale maximum
    (``popular_rating="max"``). Both are the same on implicit data.
    """

    name: ClassVar[str] = "bandwagon"

    def __init__(
        self,
        *,
        n_fillers: int = 30,
        rate_target: bool = True,
        popular_share: float = 0.1,
        popular_fraction: float = 0.1,
        popularity: Popularity | None = None,
        popular_rating: Literal["sampled", "max"] = "sampled",
    ) -> None:
        super().__init__(n_fillers=n_fillers, rate_target=rate_target)
        self.popular_share = popular_share
        self.popular_fraction = popular_fraction
        self.popularity = popularity
        self.popular_rating = popular_rating

    def _check_params(self) -> None:
        if not 0.0 <= self.popular_share <= 1.0:
            raise ConfigError(
                f"bandwagon: popular_share must be in [0, 1], got {self.popular_share}"
            )
        if not 0.0 < self.popular_fraction <= 1.0:
            raise ConfigError(
                f"bandwagon: popular_fraction must be in (0, 1], got {self.popular_fraction}"
            )
        if self.popularity not in (None, "count", "mean_rating"):
            raise ConfigError(
                f"bandwagon: popularity must be 'count' or 'mean_rating', got {self.popularity!r}"
            )
        if self.popular_rating not in ("sampled", "max"):
            raise ConfigError(
                f"bandwagon: popular_rating must be 'sampled' or 'max', got {self.popular_rating!r}"
            )

    def popular_items(self, train: Interactions, candidates: np.ndarray) -> np.ndarray:
        """The ``popular_fraction`` most popular of ``candidates`` (ties broken by item index)."""
        self._check_params()
        kind = self.popularity or ("count" if train.is_implicit else "mean_rating")
        if kind == "mean_rating" and train.is_implicit:
            raise ConfigError(
                "bandwagon: popularity='mean_rating' needs explicit ratings; "
                "use popularity='count' on implicit data"
            )
        if kind == "count":
            score = np.asarray(item_popularity(train), dtype=np.float64)
        else:
            csc = train.matrix.tocsc()
            counts = np.diff(csc.indptr)
            sums = np.asarray(csc.sum(axis=0)).ravel()
            score = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
        n_popular = max(1, math.ceil(self.popular_fraction * train.n_items))
        order = candidates[np.argsort(-score[candidates], kind="stable")]
        return np.sort(order[:n_popular])

    def _fillers(
        self,
        train: Interactions,
        candidates: np.ndarray,
        n_fake: int,
        n: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        popular = self.popular_items(train, candidates)
        rest = np.setdiff1d(candidates, popular)
        n_popular = min(round(self.popular_share * n), len(popular))
        n_rest = n - n_popular
        if n_rest > len(rest):  # too few unpopular items: take the missing ones from the pool
            n_popular, n_rest = n - len(rest), len(rest)
        fillers = np.concatenate(
            [
                sample_distinct(popular, n_fake, n_popular, rng),
                sample_distinct(rest, n_fake, n_rest, rng),
            ],
            axis=1,
        )
        ratings = RatingSampler.fit(train, per_item=False).sample(fillers, rng)
        if self.popular_rating == "max":
            ratings[:, :n_popular] = max_rating(train)
        return fillers, ratings, {"n_popular_fillers": n_popular, "popular_pool": len(popular)}
