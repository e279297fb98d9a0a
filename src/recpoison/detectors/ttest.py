"""t-test detectability of fake users (Li et al. 2016, sections 4.3 and 5) and a t-test detector.

Li et al. run "a paired t-test to compare the distributions of rated items between normal and
malicious users" and call an attack detectable when it rejects (p < 0.05); the PDF does not say
what is paired. We use the standard unpaired form: a **Welch two-sample t-test** (unequal
variances) of one per-user statistic between fake and normal users,

``t = (x̄_F - x̄_N) / sqrt(s_F² / n_F + s_N² / n_N)``, Welch–Satterthwaite degrees of freedom.

The default statistic is the mean popularity of the items a user rated,
``pop_u = (1 / |I_u|) Σ_{i ∈ I_u} NR_i / n_users`` (``NR_i`` = number of ratings of item ``i`` in
the data passed): Li et al.'s point is that fake users who pick items uniformly at random rate
far less popular items than normal users do. Unlike the rating-deviation features it is defined on
implicit data too.

As a *detector*, the same statistic is tested one user at a time against the normal users seen in
training, with the t-based prediction interval of a new observation:

``t_u = (x_u - x̄_N) / (s_N * sqrt(1 + 1 / n_N))``, ``n_N - 1`` degrees of freedom,

and a user is flagged when its p-value is below ``alpha`` (Bonferroni-corrected over the
statistics used). What it can do: catch fake users whose statistic is far from every normal
user's (uniformly random items, random ratings); its FPR is about ``alpha`` when the statistic is
roughly normal among normal users (heavier tails flag more). What it cannot do: catch fake users
that mimic normal users on the statistic (popular fillers, SGLD-style attacks), or use the fake
training users beyond choosing the side of the test (``alternative="auto"``).
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from scipy import stats

from recpoison.data.interactions import Interactions
from recpoison.detectors.features import FEATURES, ProfileDetector, check_explicit, profile_features
from recpoison.errors import ConfigError

#: Per-user statistics the t-tests accept: these three plus every profile feature name.
STATISTICS: tuple[str, ...] = ("popularity", "length", "mean_rating", *FEATURES)

Alternative = Literal["auto", "two-sided", "greater", "less"]


def user_statistic(data: Interactions, statistic: str = "popularity") -> np.ndarray:
    """One value per user of ``data``: ``popularity`` (mean ``NR_i / n_users`` over the rated
    items), ``length`` (``|I_u|``), ``mean_rating`` (mean of ``r_{u,i}``, explicit data only) or a
    profile feature of `recpoison.detectors.features`. Users without ratings get 0."""
    if statistic not in STATISTICS:
        raise ConfigError(
            f"unknown t-test statistic {statistic!r}; choose from: {', '.join(STATISTICS)}"
        )
    m = data.matrix
    length = np.diff(m.indptr).astype(np.float64)
    if statistic == "length":
        return length
    if statistic == "popularity":
        share = np.bincount(m.indices, minlength=data.n_items) / max(data.n_users, 1)
        per_rating = share[m.indices]
    elif statistic == "mean_rating":
        check_explicit(data)
        per_rating = m.data.astype(np.float64)
    else:
        return profile_features(data, [statistic])[:, 0]
    total = np.bincount(
        np.repeat(np.arange(data.n_users), np.diff(m.indptr)),
        weights=per_rating,
        minlength=data.n_users,
    )
    return np.divide(total, length, out=np.zeros_like(total), where=length > 0)


def ttest_detectability(data: Interactions, statistic: str = "popularity") -> dict[str, float]:
    """Welch t-test of ``statistic`` between the fake and the normal users of ``data``.

    Returns ``{"statistic": t, "p_value": p}`` (t > 0: fake users have the larger mean); both are
    NaN when there are fewer than 2 fake or 2 normal users. A small p-value means the attack is
    detectable by this statistic (Li et al. 2016 use p < 0.05).
    """
    x = user_statistic(data, statistic)
    fake, normal = x[data.is_fake], x[~data.is_fake]
    if min(len(fake), len(normal)) < 2:
        return {"statistic": float("nan"), "p_value": float("nan")}
    result = stats.ttest_ind(fake, normal, equal_var=False)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}


class TTestDetector(ProfileDetector):
    """Flags users whose statistic is significantly far from the normal training users' (see the
    module docstring for the test and its limits). Label 1 = fake.

    Parameters
    ----------
    statistic:
        The per-user statistic (`STATISTICS`); default ``"popularity"``, defined on implicit data.
    alpha:
        Significance level of the per-user test (≈ the FPR on normal users).
    alternative:
        ``"two-sided"``, ``"greater"`` (flag large values), ``"less"``, or ``"auto"``: the side
        where the fake training users' mean lies (two-sided when training has no fake user).
    """

    def __init__(
        self,
        statistic: str = "popularity",
        *,
        alpha: float = 0.01,
        alternative: Alternative = "auto",
    ) -> None:
        self.statistic = statistic
        self.alpha = alpha
        self.alternative = alternative

    def user_features(self, data: Interactions) -> np.ndarray:
        return user_statistic(data, self.statistic)[:, None]

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Estimate the normal users' mean and spread per column of ``X`` (rows with y = 0)."""
        if not 0 < self.alpha < 1:
            raise ConfigError(f"ttest: alpha must be in (0, 1), got {self.alpha}")
        if self.alternative not in ("auto", "two-sided", "greater", "less"):
            raise ConfigError(f"ttest: unknown alternative {self.alternative!r}")
        X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
        y = self._check_labels(y)
        normal, fake = X[y == 0], X[y == 1]
        if len(normal) < 2:
            raise ConfigError("ttest: at least 2 normal training users are needed")
        self.mean_ = normal.mean(axis=0)
        self.scale_ = normal.std(axis=0, ddof=1) * np.sqrt(1.0 + 1.0 / len(normal))
        self.df_ = len(normal) - 1
        if self.alternative == "auto":
            side = np.sign(fake.mean(axis=0) - self.mean_) if len(fake) else np.zeros(X.shape[1])
        else:
            side = np.full(
                X.shape[1], {"two-sided": 0.0, "greater": 1.0, "less": -1.0}[self.alternative]
            )
        self.side_ = side  # +1 upper tail, -1 lower tail, 0 both tails, per column
        self.n_features_in_ = X.shape[1]
        return self

    def p_values(self, X: np.ndarray) -> np.ndarray:
        """Bonferroni-corrected p-value ``[n]`` of each row of ``X`` against the normal users."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.n_features_in_)
        diff = X - self.mean_
        with np.errstate(divide="ignore", invalid="ignore"):
            # A statistic constant among normal users puts any other value infinitely far.
            t = np.where(diff == 0, 0.0, diff / self.scale_)
            one_sided = stats.t.sf(t * self.side_, self.df_)
        two_sided = 2.0 * stats.t.sf(np.abs(t), self.df_)
        p = np.where(self.side_ == 0, two_sided, one_sided)
        return np.minimum(1.0, p.min(axis=1) * self.n_features_in_)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``log(alpha) - log(p)``: > 0 (flagged) when the p-value is below ``alpha``."""
        with np.errstate(divide="ignore"):
            return np.log(self.alpha) - np.log(self.p_values(X))
