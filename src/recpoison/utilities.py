"""Evaluation of explicit-rating victims and of Li et al. 2016's attacker utilities.

* :func:`rmse` / :func:`evaluate_explicit`: prediction error on held-out ratings, per replica.
* :func:`availability_utility`: Li et al.'s RMSE between the poisoned and the clean model's
  predictions on the entries the normal users did not rate (§5, footnote 4; the root-mean form of
  Eq. 7).
* :func:`integrity_utility`: the change of the chosen items' mean predicted rating over the normal
  users (Eq. 8 divided by the number of normal users, as a difference to the clean model).
* :func:`hybrid_utility`: ``μ1 · availability + μ2 · integrity`` (Eq. 9).
* :func:`ttest_detectability`: Welch t-test of fake vs normal users (Li §4.3/§5), implemented in
  :mod:`recpoison.detectors.ttest` and re-exported here.

Every function takes fitted :class:`~recpoison.victims.base.Recommender` objects and scores them
in user batches (``score_replicas``), so it works for any victim, on its device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.detectors.ttest import ttest_detectability
from recpoison.errors import ConfigError
from recpoison.victims.base import Recommender

__all__ = [
    "availability_utility",
    "evaluate_explicit",
    "hybrid_utility",
    "integrity_utility",
    "pair_predictions",
    "rmse",
    "ttest_detectability",
    "unseen_entries",
]

_BATCH = 512


def rmse(model: Recommender, test: Interactions) -> np.ndarray:
    """Root mean squared error on the ratings of ``test``, one value per replica ``[R]``.

    ``test`` must index the same users and items as the model's training data (a hold-out split).
    """
    if test.is_implicit:
        raise ConfigError("rmse needs explicit test ratings; the test data is implicit")
    if test.n_items != model.train_.n_items or test.n_users > model.train_.n_users:
        raise ConfigError(
            f"test data {test.n_users} x {test.n_items} does not match the "
            f"model's {model.train_.n_users} x {model.train_.n_items}"
        )
    if test.n_ratings == 0:
        raise ConfigError("rmse: the test data has no ratings")
    entries = test.matrix.tocoo()
    pred = pair_predictions(model, entries.row, entries.col)
    return np.sqrt(((pred - entries.data[None, :]) ** 2).mean(axis=1))


def pair_predictions(model: Recommender, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Every replica's predicted score of each (user, item) pair, ``[R, n_pairs]`` float64."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    out = np.empty((model.n_replicas, len(users)))
    order = np.argsort(users, kind="stable")
    distinct, first = np.unique(users[order], return_index=True)
    bounds = np.append(first, len(order))
    for start in range(0, len(distinct), _BATCH):
        batch = distinct[start : start + _BATCH]
        pairs = order[bounds[start] : bounds[min(start + _BATCH, len(distinct))]]
        rows = np.searchsorted(batch, users[pairs])
        scores = model.score_replicas(batch).double()
        picked = scores[:, torch.as_tensor(rows), torch.as_tensor(items[pairs])]
        out[:, pairs] = picked.cpu().numpy()
    return out


def unseen_entries(
    data: Interactions, n: int, random_state: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` distinct (user, item) pairs drawn uniformly from the entries the normal users
    of ``data`` have not rated (Ω^C of Li et al. §5), as ``(users, items)``."""
    normal = np.flatnonzero(~data.is_fake)
    n_unseen = len(normal) * data.n_items - int(data.matrix[normal].nnz)
    if n_unseen <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    draws = random_state.integers(0, len(normal) * data.n_items, size=2 * n + 64)
    users, items = normal[draws // data.n_items], draws % data.n_items
    keep = np.asarray(data.matrix[users, items]).ravel() == 0
    flat = np.unique(users[keep] * data.n_items + items[keep])
    flat = random_state.permutation(flat)[:n]
    return flat // data.n_items, flat % data.n_items


def evaluate_explicit(model: Recommender, test: Interactions) -> dict[str, float | list[float]]:
    """RMSE on ``test`` per replica, with mean and standard deviation (``recpoison train``)."""
    per_replica = rmse(model, test)
    return {
        "rmse": per_replica.tolist(),
        "rmse_mean": float(per_replica.mean()),
        "rmse_std": float(per_replica.std()),
        "n_test": test.n_ratings,
    }


Batch = tuple[np.ndarray, torch.Tensor, torch.Tensor]


def _paired_scores(clean: Recommender, poisoned: Recommender) -> Iterator[Batch]:
    """Batches of normal users: ``(rows in clean data, clean scores, poisoned scores)``.

    Normal users are the rows of the poisoned model's data with ``is_fake`` False, in the same
    order as the clean model's normal rows. Replicas are paired (a single clean replica is
    compared with every poisoned replica).
    """
    clean_rows = np.flatnonzero(~clean.train_.is_fake)
    poisoned_rows = np.flatnonzero(~poisoned.train_.is_fake)
    if len(clean_rows) != len(poisoned_rows) or clean.train_.n_items != poisoned.train_.n_items:
        raise ConfigError("the clean and poisoned models must share their normal users and items")
    if clean.n_replicas not in (1, poisoned.n_replicas):
        raise ConfigError(
            f"cannot pair {clean.n_replicas} clean replicas with "
            f"{poisoned.n_replicas} poisoned ones"
        )
    for start in range(0, len(clean_rows), _BATCH):
        batch = slice(start, start + _BATCH)
        before = clean.score_replicas(clean_rows[batch]).double()
        after = poisoned.score_replicas(poisoned_rows[batch]).double()
        yield clean_rows[batch], before, after.to(before.device)


def availability_utility(clean: Recommender, poisoned: Recommender) -> np.ndarray:
    """RMSE between poisoned and clean predictions on the normal users' unrated entries ``[R]``.

    Li et al. §5 footnote 4: ``sqrt(Σ_{(i,j)∈Ω^C} (M̄_ij − M̂_ij)² / |Ω^C|)`` with ``Ω`` the
    clean model's training ratings.
    """
    total, count = 0.0, 0
    for rows, before, after in _paired_scores(clean, poisoned):
        unseen = torch.as_tensor(clean.train_.matrix[rows].toarray() == 0, device=before.device)
        total = total + ((after - before) ** 2 * unseen).sum((1, 2)).cpu().numpy()
        count += int(unseen.sum())
    return np.sqrt(np.asarray(total) / max(count, 1))


def integrity_utility(
    clean: Recommender,
    poisoned: Recommender,
    items: Sequence[int] | np.ndarray,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """``Σ_j w(j) (mean_i M̂_ij − mean_i M̄_ij)`` over the normal users, per replica ``[R]``.

    Eq. (8) per normal user, as a change from the clean model; the default weights ``1/|J0|``
    make it the change of the chosen items' mean predicted rating (positive: promoted).
    """
    items = np.atleast_1d(np.asarray(items, dtype=np.int64))
    if len(items) == 0:
        raise ConfigError("integrity_utility needs at least one item")
    w = np.full(len(items), 1.0 / len(items)) if weights is None else np.asarray(weights, float)
    if w.shape != items.shape:
        raise ConfigError(f"{len(w)} weights for {len(items)} items")
    total, count = 0.0, 0
    index = torch.as_tensor(items)
    for rows, before, after in _paired_scores(clean, poisoned):
        change = (after - before)[:, :, index.to(before.device)]
        weight = torch.as_tensor(w, device=before.device)
        total = total + (change * weight).sum((1, 2)).cpu().numpy()
        count += len(rows)
    return np.asarray(total) / max(count, 1)


def hybrid_utility(
    clean: Recommender,
    poisoned: Recommender,
    items: Sequence[int] | np.ndarray,
    mu: tuple[float, float] = (1.0, 1.0),
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """``μ1 · availability_utility + μ2 · integrity_utility`` per replica (Eq. 9)."""
    return mu[0] * availability_utility(clean, poisoned) + mu[1] * integrity_utility(
        clean, poisoned, items, weights
    )
