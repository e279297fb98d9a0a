"""Transforms of `Interactions`: binarization, k-core, splits, subsampling, item statistics.

Every function returns new objects and never mutates its input. Timestamps, original-id maps and
the ``is_fake`` mask follow the ratings they belong to. Random choices come from ``random_state``
through :func:`recpoison.utils.check_random_state`.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state

# "Unpopular" target items in Huang et al. (NDSS 2021, section V-A): items with fewer than this
# many ratings. Looked up by `Interactions.name` (the loaders name ML-100K / ML-1M / Last.fm data
# "ml-100k" / "ml-1m" / "lastfm"); other data fall back to the rule of
# `default_unpopular_threshold`.
PAPER_UNPOPULAR_THRESHOLDS: dict[str, int] = {"ml-100k": 6, "ml-1m": 10, "lastfm": 12}

# Fallback: the threshold makes at least this fraction of the rated items unpopular.
UNPOPULAR_QUANTILE = 0.1


def binarize(data: Interactions) -> Interactions:
    """Every rating becomes 1.0 and the data implicit, as Huang et al. do for NeuMF (V-A)."""
    matrix = data.matrix.copy()
    matrix.data[:] = 1.0
    return data.replace(matrix=matrix, rating_scale=None)


def k_core(data: Interactions, k: int, k_items: int | None = None) -> Interactions:
    """Iteratively drop users with fewer than ``k`` ratings and items with fewer than
    ``k_items`` (default ``k``) until none is left.

    Huang et al. use the 10-core of Last.fm (V-A); Aravind's thesis (§4.7) keeps users with 30
    and items with 50 ratings on Anime. Emptied users and items are removed; the remaining ones
    keep their original ids, timestamps and ``is_fake`` flags.
    """
    k_items = k if k_items is None else k_items
    for name, value in (("k", k), ("k_items", k_items)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"k_core(): {name} must be a positive integer, not {value!r}")
    rows, cols = _rating_rows(data), data.matrix.indices
    keep = np.ones(data.n_ratings, dtype=bool)
    while True:
        user_count = np.bincount(rows[keep], minlength=data.n_users)
        item_count = np.bincount(cols[keep], minlength=data.n_items)
        still = keep & (user_count[rows] >= k) & (item_count[cols] >= k_items)
        if still.sum() == keep.sum():
            break
        keep = still
    return _subset(data, keep, users=user_count >= k, items=item_count >= k_items)


def min_rating(data: Interactions, threshold: float) -> Interactions:
    """Keep only the ratings of at least ``threshold`` (users and items stay, possibly empty).

    Aravind's thesis (§4.7) keeps the 4- and 5-star Netflix ratings as positive edges:
    ``min_rating(data, 4)`` then ``binarize``.
    """
    if data.is_implicit:
        raise ConfigError("min_rating(): the data is implicit; apply it before binarize")
    if not isinstance(threshold, numbers.Real):
        raise ConfigError(f"min_rating(): threshold must be a number, not {threshold!r}")
    return _subset(data, data.matrix.data >= threshold)


def leave_one_out(
    data: Interactions, random_state: RandomState = None
) -> tuple[Interactions, np.ndarray]:
    """Hold out each real user's latest interaction (the NCF leave-one-out protocol).

    Users with at least 2 ratings lose their latest-timestamp rating to the test set; ties, and
    data without timestamps, are broken at random (seeded). Fake users keep all their ratings.
    Returns the train data (same users and items) and ``test_items``: one item index per user,
    -1 where nothing was held out.
    """
    rng = check_random_state(random_state)
    rows = _rating_rows(data)
    stamps = data.timestamps if data.timestamps is not None else np.zeros(data.n_ratings)
    order = np.lexsort((rng.random(data.n_ratings), stamps, rows))
    indptr = data.matrix.indptr
    eligible = (np.diff(indptr) >= 2) & ~data.is_fake
    held = order[indptr[1:][eligible] - 1]
    test_items = np.full(data.n_users, -1, dtype=np.int64)
    test_items[eligible] = data.matrix.indices[held]
    keep = np.ones(data.n_ratings, dtype=bool)
    keep[held] = False
    return _subset(data, keep), test_items


def holdout_split(
    data: Interactions, test_fraction: float = 0.1, random_state: RandomState = None
) -> tuple[Interactions, Interactions]:
    """Split the real users' ratings at random into train and test (same shape both), for RMSE.

    ``round(test_fraction * n)`` of the ``n`` ratings of real users go to test; fake users'
    ratings always stay in train.
    """
    fraction = _check_fraction(test_fraction, "test_fraction")
    if fraction == 1:
        raise ConfigError("holdout_split(): test_fraction must be below 1 to leave a train set")
    rng = check_random_state(random_state)
    candidates = np.flatnonzero(~data.is_fake[_rating_rows(data)])
    test = np.zeros(data.n_ratings, dtype=bool)
    test[rng.choice(candidates, size=round(fraction * len(candidates)), replace=False)] = True
    return _subset(data, ~test), _subset(data, test)


def subsample_ratings(
    data: Interactions, fraction: float, random_state: RandomState = None
) -> Interactions:
    """Keep ``round(fraction * n_ratings)`` random ratings; users and items are all kept.

    The attacker's partial knowledge of the rating matrix (Huang et al., section V-C).
    """
    fraction = _check_fraction(fraction, "fraction")
    rng = check_random_state(random_state)
    keep = np.zeros(data.n_ratings, dtype=bool)
    keep[rng.choice(data.n_ratings, size=round(fraction * data.n_ratings), replace=False)] = True
    return _subset(data, keep)


def subsample_users(
    data: Interactions, fraction: float, random_state: RandomState = None
) -> Interactions:
    """Keep ``round(fraction * n_users)`` random users (at least one) with all their rows.

    The item space is unchanged. The attacker's partial knowledge of the users (section V-C).
    """
    fraction = _check_fraction(fraction, "fraction")
    rng = check_random_state(random_state)
    chosen = rng.choice(data.n_users, size=max(1, round(fraction * data.n_users)), replace=False)
    mask = np.zeros(data.n_users, dtype=bool)
    mask[chosen] = True
    return data.select_users(mask)


def subsample_hops(
    data: Interactions,
    fraction: float,
    sources: np.ndarray,
    random_state: RandomState = None,
) -> Interactions:
    """Keep ``round(fraction * n_ratings)`` ratings nearest to the ``sources`` items in the
    user-item bipartite graph; users and items are all kept.

    The attacker's partial knowledge of Fang et al. 2020 (§5.3): nodes (users and items) are
    taken by increasing hop distance from the target item(s) (the items themselves, then the
    users who rated them, then those users' items, ...), in random order within a distance and
    nodes unreachable from the targets last; a rating is observed once both its ends are taken,
    and taking stops when the fraction of ratings is reached (the last node's ratings in random
    order). Breadth-first search over the sparse matrix, ``O(n_ratings)``.
    """
    fraction = _check_fraction(fraction, "fraction")
    rng = check_random_state(random_state)
    sources = np.unique(np.asarray(sources, dtype=np.int64))
    if len(sources) == 0:
        raise ConfigError("hop-distance knowledge needs target items to measure distances from")
    by_item = data.matrix.tocsc()
    user_hops = np.full(data.n_users, np.inf)
    item_hops = np.full(data.n_items, np.inf)
    item_hops[sources] = 0
    frontier_items, hops = sources, 0
    while len(frontier_items):
        users = np.unique(by_item[:, frontier_items].indices)
        users = users[np.isinf(user_hops[users])]
        user_hops[users] = hops + 1
        items = np.unique(data.matrix[users].indices)
        frontier_items = items[np.isinf(item_hops[items])]
        item_hops[frontier_items] = hops + 2
        hops += 2
    # rank of every node in the order of taking: distance, then a random key
    node_hops = np.concatenate([user_hops, item_hops])
    order = np.lexsort((rng.random(len(node_hops)), node_hops))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    rows = _rating_rows(data)
    arrival = np.maximum(rank[rows], rank[data.n_users + data.matrix.indices])
    observed = np.lexsort((rng.random(data.n_ratings), arrival))[: round(fraction * data.n_ratings)]
    keep = np.zeros(data.n_ratings, dtype=bool)
    keep[observed] = True
    return _subset(data, keep)


def item_popularity(data: Interactions) -> np.ndarray:
    """Number of ratings of each item by real (non-fake) users, int64 of length n_items."""
    real = data.matrix[~data.is_fake] if data.n_fake else data.matrix
    return np.bincount(real.indices, minlength=data.n_items).astype(np.int64)


def item_rating_stats(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Per-item mean and (population) standard deviation of the real users' ratings.

    Items without ratings get the global mean and std; items with a single rating, whose std is
    undefined, get the global std. These drive the filler ratings of the average / random
    attacks (normal distributions fitted on the data, Huang et al. section V-A).
    """
    real = data.matrix[~data.is_fake] if data.n_fake else data.matrix
    values = real.data.astype(np.float64)
    mean_all = float(values.mean()) if values.size else 0.0
    std_all = float(values.std()) if values.size else 0.0
    count = np.bincount(real.indices, minlength=data.n_items)
    total = np.bincount(real.indices, weights=values, minlength=data.n_items)
    squares = np.bincount(real.indices, weights=values**2, minlength=data.n_items)
    rated = count > 0
    mean = np.full(data.n_items, mean_all)
    mean[rated] = total[rated] / count[rated]
    std = np.full(data.n_items, std_all)
    several = count > 1
    variance = squares[several] / count[several] - mean[several] ** 2
    std[several] = np.sqrt(np.maximum(variance, 0.0))
    return mean, std


def unpopular_items(data: Interactions, max_ratings: int) -> np.ndarray:
    """Indices of items with at least 1 and fewer than ``max_ratings`` real-user ratings."""
    if not isinstance(max_ratings, numbers.Integral) or max_ratings < 2:
        raise ConfigError(
            f"unpopular_items(): max_ratings must be an integer >= 2, not {max_ratings!r}"
        )
    popularity = item_popularity(data)
    return np.flatnonzero((popularity >= 1) & (popularity < max_ratings)).astype(np.int64)


def default_unpopular_threshold(data: Interactions) -> int:
    """The ``max_ratings`` that makes an item "unpopular" for this data.

    The paper's values (Huang et al., V-A) where ``data.name`` is one of
    :data:`PAPER_UNPOPULAR_THRESHOLDS` (ml-100k: 6, ml-1m: 10, lastfm: 12). Otherwise one more
    than the 10th percentile (lower) of the real-user rating counts of the rated items, and at
    least 2: at least 10 % of the rated items are then unpopular.
    """
    known = PAPER_UNPOPULAR_THRESHOLDS.get(data.name.lower())
    if known is not None:
        return known
    popularity = item_popularity(data)
    rated = popularity[popularity > 0]
    if rated.size == 0:
        return 2
    return max(2, int(np.quantile(rated, UNPOPULAR_QUANTILE, method="lower")) + 1)


# -- helpers ------------------------------------------------------------------------------------
def _rating_rows(data: Interactions) -> np.ndarray:
    """The user index of every stored rating (aligned with ``matrix.data``)."""
    return np.repeat(np.arange(data.n_users), np.diff(data.matrix.indptr))


def _check_fraction(fraction: float, name: str) -> float:
    if not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise ConfigError(f"{name} must be a number in (0, 1], not {fraction!r}")
    return float(fraction)


def _subset(
    data: Interactions,
    keep: np.ndarray,
    users: np.ndarray | None = None,
    items: np.ndarray | None = None,
) -> Interactions:
    """Keep the ratings where ``keep`` (aligned with ``matrix.data``) and the masked users/items.

    Every kept rating must belong to a kept user and item. The CSR order, and so the alignment of
    the timestamps, is preserved because users and items are renumbered monotonically.
    """
    users = np.ones(data.n_users, dtype=bool) if users is None else users
    items = np.ones(data.n_items, dtype=bool) if items is None else items
    rows = _rating_rows(data)[keep]
    new_column = np.cumsum(items) - 1
    counts = np.bincount(rows, minlength=data.n_users)[users]
    indptr = np.concatenate([[0], np.cumsum(counts)])
    matrix = sp.csr_matrix(
        (data.matrix.data[keep], new_column[data.matrix.indices[keep]], indptr),
        shape=(int(users.sum()), int(items.sum())),
    )
    return data.replace(
        matrix=matrix,
        timestamps=None if data.timestamps is None else data.timestamps[keep],
        user_ids=data.user_ids[users],
        item_ids=data.item_ids[items],
        is_fake=data.is_fake[users],
    )
