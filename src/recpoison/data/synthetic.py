"""Synthetic rating data with planted latent structure, for tests and examples."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state


def planted(
    n_users: int = 300,
    n_items: int = 200,
    n_factors: int = 4,
    ratings_per_user: int = 20,
    *,
    rating_scale: tuple[float, float] | None = (1.0, 5.0),
    popularity_skew: float = 1.0,
    noise: float = 0.3,
    random_state: RandomState = None,
) -> Interactions:
    """Users and items in ``n_factors`` planted clusters; users rate items of their own cluster.

    Each user rates ``ratings_per_user`` items, drawn with probability proportional to
    ``exp(affinity) * popularity`` where affinity is high inside the user's cluster and
    popularity follows a Zipf-like law of exponent ``popularity_skew`` (so there are popular and
    unpopular items, as in real data). Explicit ratings are ``affinity + noise`` mapped to the
    scale and rounded to whole stars; ``rating_scale=None`` gives implicit data. Timestamps are the
    order in which each user's items were drawn.
    """
    if ratings_per_user >= n_items or min(n_users, n_items, n_factors, ratings_per_user) < 1:
        raise ConfigError("planted(): need 1 <= ratings_per_user < n_items and positive sizes")
    rng = check_random_state(random_state)
    user_cluster = rng.integers(0, n_factors, size=n_users)
    item_cluster = rng.integers(0, n_factors, size=n_items)
    affinity = np.where(user_cluster[:, None] == item_cluster[None, :], 2.0, -1.0)
    affinity += rng.normal(0.0, 0.5, size=affinity.shape)
    popularity = 1.0 / np.arange(1, n_items + 1) ** popularity_skew
    popularity = popularity[rng.permutation(n_items)]
    weights = np.exp(affinity) * popularity[None, :]

    rows, cols, stamps = [], [], []
    for u in range(n_users):
        p = weights[u] / weights[u].sum()
        items = rng.choice(n_items, size=ratings_per_user, replace=False, p=p)
        rows.append(np.full(ratings_per_user, u))
        cols.append(items)
        stamps.append(np.arange(ratings_per_user) + 1_000 * u)
    users, items, times = map(np.concatenate, (rows, cols, stamps))
    if rating_scale is None:
        values = np.ones(len(users), dtype=np.float32)
    else:
        low, high = rating_scale
        raw = affinity[users, items] + rng.normal(0.0, noise, size=len(users))
        scaled = low + (high - low) * (raw + 1.5) / 4.0
        values = np.clip(np.round(scaled), low, high).astype(np.float32)
    order = np.lexsort((items, users))
    matrix = sp.csr_matrix((values[order], (users[order], items[order])), shape=(n_users, n_items))
    return Interactions(matrix, rating_scale, times[order].astype(np.int64), name="planted")
