"""Per-user rating-profile features for shilling (fake-user) detection, and the detector base.

Notation (for a user ``u`` of the data passed in):

* ``I_u`` the items ``u`` rated, ``r_{u,i}`` the rating, ``|I_u|`` the profile length;
* ``r̄_i`` the mean rating of item ``i`` and ``NR_i`` its number of ratings, both computed over
  **every user of the data passed in** (fake users included, as a deployed detector would see it);
* the target/filler split used by MeanVar, FMTD and TMF is the standard one of Mobasher et al.
  (2007) as restated by Huang et al. (2021, eq. 13): ``I_{u,T}`` = the items ``u`` rated at its own
  maximum rating (the target candidates), ``I_{u,F} = I_u \\ I_{u,T}`` (the fillers).

Every feature is computed for all users at once from the CSR arrays (no Python loop per user).
A mean over an empty set is 0 (a user with no ratings, or with no filler item, gets 0).

References
----------
* Chirita, Nejdl, Zamfir (2005). Preventing shilling attacks in online recommender systems. WIDM.
* Burke, Mobasher, Williams, Bhaumik (2006). Classification features for attack detection in
  collaborative recommender systems. KDD.
* Mobasher, Burke, Bhaumik, Williams (2007). Toward trustworthy recommender systems: an analysis
  of attack models and algorithm robustness. ACM TOIT 7(4).
* Zhou, Wen, Xiong, Gao, Zeng (2016). SVM-TIA: a shilling attack detection method based on SVM
  and target item analysis in recommender systems. Neurocomputing 210.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError

logger = logging.getLogger(__name__)


class _Profile:
    """The CSR arrays and item statistics every feature needs, computed once."""

    def __init__(self, data: Interactions) -> None:
        m = data.matrix
        self.n_users = data.n_users
        self.ratings = m.data.astype(np.float64)
        self.items = m.indices
        self.length = np.diff(m.indptr)
        self.rows = np.repeat(np.arange(self.n_users), self.length)
        n_item_ratings = np.bincount(self.items, minlength=data.n_items).astype(np.float64)
        item_sum = np.bincount(self.items, weights=self.ratings, minlength=data.n_items)
        item_mean = item_sum / np.maximum(n_item_ratings, 1.0)
        # Per stored rating: |r_ui - r̄_i| and NR_i (>= 1 since u rated i).
        self.deviation = np.abs(self.ratings - item_mean[self.items])
        self.nr = n_item_ratings[self.items]
        self.item_mean = item_mean[self.items]
        user_max = np.zeros(self.n_users)
        nonempty = self.length > 0
        user_max[nonempty] = np.maximum.reduceat(self.ratings, m.indptr[:-1][nonempty])
        # Target candidates: ratings at the user's own maximum (Mobasher et al. 2007).
        self.is_target = self.ratings == user_max[self.rows]
        self.n_items = data.n_items

    def user_sum(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of per-rating ``values`` for every user (over the ratings where ``mask``)."""
        if mask is None:
            return np.bincount(self.rows, weights=values, minlength=self.n_users)
        return np.bincount(self.rows[mask], weights=values[mask], minlength=self.n_users)

    def user_count(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows[mask], minlength=self.n_users).astype(np.float64)


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``total / count`` with 0 where ``count`` is 0."""
    return np.divide(total, count, out=np.zeros_like(total, dtype=np.float64), where=count > 0)


def check_explicit(data: Interactions, *, allow_constant: bool = False) -> None:
    """Raise `ConfigError` when the rating-deviation features would be constant.

    On implicit data (``rating_scale is None``) or data whose ratings are all equal (binarized),
    every ``r_{u,i} = r̄_i``, so RDMA, WDA, WDMA, MeanVar and FMTD are 0 for every user and a
    classifier trained on them learns nothing. With ``allow_constant=True`` a warning is logged
    instead (the caller then knowingly trains on constant features).
    """
    constant = data.is_implicit or data.n_ratings == 0 or np.ptp(data.matrix.data) == 0
    if not constant:
        return
    message = (
        f"{data.name}: profile features are constant on implicit data (all ratings "
        "equal); detection needs explicit ratings (e.g. ML-100K, not Last.fm or "
        "binarized data)"
    )
    if not allow_constant:
        raise ConfigError(message)
    logger.warning("%s; continuing because allow_constant=True", message)


def rdma(data: Interactions) -> np.ndarray:
    """Rating Deviation from Mean Agreement (Chirita et al. 2005; Huang et al. 2021 eq. 9).

    ``RDMA_u = (1 / |I_u|) * Σ_{i ∈ I_u} |r_{u,i} - r̄_i| / NR_i``
    """
    p = _Profile(data)
    return _mean(p.user_sum(p.deviation / p.nr), p.length.astype(np.float64))


def wda(data: Interactions) -> np.ndarray:
    """Weighted Degree of Agreement (Burke et al. 2006; Huang et al. 2021 eq. 10).

    The numerator of RDMA: ``WDA_u = Σ_{i ∈ I_u} |r_{u,i} - r̄_i| / NR_i``
    """
    p = _Profile(data)
    return p.user_sum(p.deviation / p.nr)


def wdma(data: Interactions) -> np.ndarray:
    """Weighted Deviation from Mean Agreement (Burke et al. 2006; Huang et al. 2021 eq. 11).

    Weighs rarely rated items more than RDMA does:
    ``WDMA_u = (1 / |I_u|) * Σ_{i ∈ I_u} |r_{u,i} - r̄_i| / NR_i²``
    """
    p = _Profile(data)
    return _mean(p.user_sum(p.deviation / p.nr**2), p.length.astype(np.float64))


def meanvar(data: Interactions) -> np.ndarray:
    """Filler Mean Variance (Mobasher et al. 2007; Burke et al. 2006; Huang et al. 2021 eq. 12).

    ``MeanVar_u = (1 / |I_{u,F}|) * Σ_{i ∈ I_{u,F}} (r_{u,i} - r̄_i)²`` over the filler items
    ``I_{u,F}`` (the items not rated at the user's maximum). Low for the average attack, whose
    fillers sit at the item means; high for random fillers.
    """
    p = _Profile(data)
    filler = ~p.is_target
    return _mean(p.user_sum(p.deviation**2, filler), p.user_count(filler))


def fmtd(data: Interactions) -> np.ndarray:
    """Filler Mean Target Difference (Mobasher et al. 2007; Huang et al. 2021 eq. 13).

    ``FMTD_u = | (1/|I_{u,T}|) Σ_{i ∈ I_{u,T}} r_{u,i} - (1/|I_{u,F}|) Σ_{k ∈ I_{u,F}} r_{u,k} |``
    with ``I_{u,T}`` the items rated at the user's maximum and ``I_{u,F}`` the others. A user
    without filler items (all ratings equal) gets 0.
    """
    p = _Profile(data)
    target, filler = p.is_target, ~p.is_target
    target_mean = _mean(p.user_sum(p.ratings, target), p.user_count(target))
    filler_count = p.user_count(filler)
    filler_mean = _mean(p.user_sum(p.ratings, filler), filler_count)
    return np.where(filler_count > 0, np.abs(target_mean - filler_mean), 0.0)


def tmf(data: Interactions) -> np.ndarray:
    """Target Model Focus (Mobasher et al. 2007; Fang et al. 2020 section 6).

    A group feature: how much a user's target partition focuses on items that are in many other
    users' target partitions. With ``T_j = #{v : j ∈ I_{v,T}}`` the number of users whose target
    partition holds item ``j``,
    ``F_j = T_j / Σ_k T_k`` and ``TMF_u = max_{j ∈ I_{u,T}} F_j``.
    """
    p = _Profile(data)
    in_target = np.bincount(p.items[p.is_target], minlength=p.n_items).astype(np.float64)
    focus = in_target / max(in_target.sum(), 1.0)
    out = np.zeros(p.n_users)
    np.maximum.at(out, p.rows[p.is_target], focus[p.items[p.is_target]])
    return out


#: Every feature by name, in the order of Fang et al. (2020) section 6.
FEATURES: dict[str, Callable[[Interactions], np.ndarray]] = {
    "rdma": rdma,
    "wdma": wdma,
    "wda": wda,
    "tmf": tmf,
    "fmtd": fmtd,
    "meanvar": meanvar,
}
#: The five features of Huang et al. (2021) section VI (SVM-TIA).
HUANG_FEATURES: tuple[str, ...] = ("rdma", "wda", "wdma", "meanvar", "fmtd")
#: The six features of Fang et al. (2020) section 6.
FANG_FEATURES: tuple[str, ...] = ("rdma", "wdma", "wda", "tmf", "fmtd", "meanvar")


def check_feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate feature names; return them as a tuple."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ConfigError(
            f"unknown profile feature(s) {unknown or names!r}; choose from: {', '.join(FEATURES)}"
        )
    return names


def profile_features(
    data: Interactions, names: Sequence[str] = FANG_FEATURES, *, allow_constant: bool = False
) -> np.ndarray:
    """The features ``names`` of every user of ``data``: float64 array ``[n_users, len(names)]``.

    Raises `ConfigError` on implicit or binarized data (see `check_explicit`) unless
    ``allow_constant=True``.
    """
    names = check_feature_names(names)
    check_explicit(data, allow_constant=allow_constant)
    return np.column_stack([FEATURES[name](data) for name in names])


class ProfileDetector(ClassifierMixin, BaseEstimator):
    """Base of the detectors: a scikit-learn classifier on per-user features (label 1 = fake).

    Subclasses implement ``fit(X, y)``, ``decision_function(X)`` and ``user_features(data)``;
    the base adds the data-level entry points ``fit_profiles`` and ``flag``.
    """

    def user_features(self, data: Interactions) -> np.ndarray:
        """The feature matrix ``[n_users, n_features]`` this detector classifies."""
        raise NotImplementedError

    def fit_profiles(
        self, data: Interactions, y: np.ndarray | None = None, *, users: np.ndarray | None = None
    ) -> Self:
        """Train on the users ``users`` (indices, default all) of ``data``.

        Features are computed on the whole of ``data`` (item means and counts over every user of
        it) and then restricted to ``users``. ``y`` (1 = fake) defaults to ``data.is_fake``.
        """
        X = self.user_features(data)
        y = data.is_fake if y is None else np.asarray(y)
        if len(y) != data.n_users:
            raise ConfigError(f"{len(y)} labels for {data.n_users} users")
        rows = np.arange(data.n_users) if users is None else np.asarray(users, dtype=np.int64)
        return self.fit(X[rows], y[rows].astype(int))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 (fake) where ``decision_function(X) > 0``, else 0."""
        return (np.asarray(self.decision_function(X)) > 0).astype(int)

    def flag(self, data: Interactions) -> np.ndarray:
        """Boolean mask ``[n_users]`` of the users of ``data`` judged fake."""
        return self.predict(self.user_features(data)).astype(bool)

    def _check_labels(self, y: Any) -> np.ndarray:
        y = np.asarray(y).astype(int)
        if not np.isin(y, (0, 1)).all():
            raise ConfigError("detector labels must be 0 (normal) or 1 (fake)")
        self.classes_ = np.array([0, 1])
        return y
