"""A scaled SVM on rating-profile features (Fang et al. 2020, section 6); phase 1 of SVM-TIA.

Pipeline: ``StandardScaler -> [Borderline-SMOTE] -> SVC(rbf)`` with ``C`` and ``gamma`` chosen by
a stratified 5-fold grid search (Huang et al. 2021, section VI: "grid search with 5-fold cross
validation", "data scaling ... significantly improves the model performance"). Borderline-SMOTE
(Han et al. 2005), as in SVM-TIA (Zhou et al. 2016), oversamples the minority class when the
training classes are unbalanced; it sits inside the cross-validated pipeline, so synthetic
samples never reach a validation fold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from imblearn.over_sampling import BorderlineSMOTE
from imblearn.pipeline import Pipeline
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from recpoison.data.interactions import Interactions
from recpoison.detectors.features import (
    FANG_FEATURES,
    ProfileDetector,
    profile_features,
)
from recpoison.errors import ConfigError
from recpoison.utils import RandomState

logger = logging.getLogger(__name__)

#: Default grid: 4 x 3 = 12 candidates x 5 folds, about a second on 600 users.
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {"C": (0.1, 1.0, 10.0, 100.0), "gamma": (0.01, 0.1, 1.0)}


class SVMFeaturesDetector(ProfileDetector):
    """SVM on per-user profile features (Fang, Gong, Liu 2020, section 6). Label 1 = fake.

    Parameters
    ----------
    features:
        Names from `recpoison.detectors.features.FEATURES`; default the six of Fang et al.
    param_grid:
        Grid over the SVC's ``C`` and ``gamma`` (default `DEFAULT_GRID`).
    cv:
        Number of stratified folds of the grid search (reduced to the size of the smallest class
        when that is smaller; at least 2 users of each class are needed).
    smote_ratio:
        Borderline-SMOTE is applied when the majority class has more than ``smote_ratio`` times
        as many users as the minority class; ``None`` never applies it.
    allow_constant:
        Train even when the features are constant (implicit data); see `check_explicit`.
    random_state:
        Seeds the fold shuffling and Borderline-SMOTE.
    """

    def __init__(
        self,
        features: Sequence[str] = FANG_FEATURES,
        *,
        param_grid: Mapping[str, Sequence[Any]] | None = None,
        cv: int = 5,
        smote_ratio: float | None = 1.5,
        allow_constant: bool = False,
        random_state: RandomState = None,
    ) -> None:
        self.features = features
        self.param_grid = param_grid
        self.cv = cv
        self.smote_ratio = smote_ratio
        self.allow_constant = allow_constant
        self.random_state = random_state

    def user_features(self, data: Interactions) -> np.ndarray:
        return profile_features(data, self.features, allow_constant=self.allow_constant)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Grid-search and fit the scaled SVM on features ``X`` and labels ``y`` (1 = fake).

        Model selection: mean balanced accuracy over stratified folds (scaler and
        Borderline-SMOTE fitted on each training fold only, once per fold for the whole grid).
        """
        X = np.asarray(X, dtype=np.float64)
        y = self._check_labels(y)
        counts = np.bincount(y, minlength=2)
        if counts.min() < 2:
            raise ConfigError(
                f"the detector needs at least 2 normal and 2 fake training users, "
                f"got {counts[0]} normal and {counts[1]} fake"
            )
        seed = self._seed()
        self.smote_applied_ = bool(
            self.smote_ratio is not None and counts.max() > self.smote_ratio * counts.min()
        )
        grid = list(
            ParameterGrid({k: list(v) for k, v in (self.param_grid or DEFAULT_GRID).items()})
        )
        scores = np.zeros(len(grid))
        folds = StratifiedKFold(int(min(self.cv, counts.min())), shuffle=True, random_state=seed)
        for train, test in folds.split(X, y):
            scaler = StandardScaler().fit(X[train])
            X_fit, y_fit = self._resample(scaler.transform(X[train]), y[train], seed)
            X_test = scaler.transform(X[test])
            for i, params in enumerate(grid):
                predicted = SVC(kernel="rbf", **params).fit(X_fit, y_fit).predict(X_test)
                scores[i] += balanced_accuracy_score(y[test], predicted) / folds.n_splits
        best = int(np.argmax(scores))
        self.best_params_ = grid[best]
        self.cv_score_ = float(scores[best])
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
        if self.smote_applied_:
            steps.append(("smote", self._smote(int(counts.min()), len(y), seed)))
        steps.append(("svc", SVC(kernel="rbf", **self.best_params_)))
        self.model_ = Pipeline(steps).fit(X, y)
        self.n_features_in_ = X.shape[1]
        logger.info(
            "SVM detector: best %s, CV balanced accuracy %.3f, SMOTE %s",
            self.best_params_,
            self.cv_score_,
            self.smote_applied_,
        )
        return self

    def _smote(self, minority: int, n: int, seed: int | None) -> BorderlineSMOTE:
        """Borderline-SMOTE with neighbourhoods no larger than the data allow."""
        return BorderlineSMOTE(
            k_neighbors=max(1, min(5, minority - 1)),
            m_neighbors=max(1, min(10, n - 1)),
            random_state=seed,
        )

    def _resample(
        self, X: np.ndarray, y: np.ndarray, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.smote_applied_:
            return X, y
        minority = int(np.bincount(y, minlength=2).min())
        if minority < 2:  # a fold too small to interpolate in
            return X, y
        return self._smote(minority, len(y), seed).fit_resample(X, y)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Signed distance to the SVM's separating surface; > 0 means fake."""
        return self.model_.decision_function(np.asarray(X, dtype=np.float64))

    def _seed(self) -> int | None:
        """A 32-bit seed for scikit-learn / imbalanced-learn from ``random_state``."""
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(0, 2**32))
        return None if rs is None else int(rs) % 2**32
