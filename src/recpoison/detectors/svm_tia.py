"""SVM-TIA: SVM on profile features, then target item analysis (Zhou et al. 2016).

Phase 1 (SVM) is `SVMFeaturesDetector` on the five features of Huang et al. (2021, section VI:
RDMA, WDA, WDMA, MeanVar, FMTD): it yields a *suspicious* set that holds most fake users and some
normal ones. Phase 2 (TIA) assumes a push attack gives its target items the maximum rating:

``count_j = #{u ∈ suspicious : r_{u,j} = r_max}``, ``targets = {j : count_j > τ}``,
``flagged = {u ∈ suspicious : ∃ j ∈ targets, r_{u,j} = r_max}``,

with ``r_max`` the top of the data's rating scale. Suspicious normal users who give no detected
target the maximum rating are released, which lowers the FPR; fake users missed by phase 1 stay
missed, and if fewer than τ fake users reach phase 2 their target is not found and they are all
released (Huang et al. 2021, Table VIII, attack size 0.5 %).

References: Zhou, Wen, Xiong, Gao, Zeng (2016), SVM-TIA, Neurocomputing 210;
Huang et al. (2021), NDSS, section VI.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recpoison.data.interactions import Interactions
from recpoison.detectors.features import HUANG_FEATURES
from recpoison.detectors.svm_features import SVMFeaturesDetector
from recpoison.errors import ConfigError
from recpoison.utils import RandomState

logger = logging.getLogger(__name__)


class SVMTIADetector(SVMFeaturesDetector):
    """Two-phase SVM-TIA detector. ``fit``/``predict`` on features are phase 1 only; ``flag`` on
    an `Interactions` runs both phases.

    Parameters
    ----------
    tau:
        The TIA threshold τ: an item is a target when more than τ suspicious users rate it with the
        maximum score. ``tau >= 1`` is a count of users; ``0 < tau < 1`` a fraction of the users
        of the data passed to ``flag`` (rounded down). Huang et al. set τ slightly below the
        smallest attack size as a fraction of the users; the default 0.004 is below their
        smallest size, 0.5 % (the exact value was lost in the PDF text).
    features, param_grid, cv, smote_ratio, allow_constant, random_state:
        As in `SVMFeaturesDetector` (default features: the five of Huang et al.).
    """

    def __init__(
        self,
        features: Sequence[str] = HUANG_FEATURES,
        *,
        tau: float = 0.004,
        param_grid: Mapping[str, Sequence[Any]] | None = None,
        cv: int = 5,
        smote_ratio: float | None = 1.5,
        allow_constant: bool = False,
        random_state: RandomState = None,
    ) -> None:
        super().__init__(
            features,
            param_grid=param_grid,
            cv=cv,
            smote_ratio=smote_ratio,
            allow_constant=allow_constant,
            random_state=random_state,
        )
        self.tau = tau

    def tau_count(self, n_users: int) -> int:
        """τ as a count of users for data with ``n_users`` users."""
        if not self.tau > 0:
            raise ConfigError(
                f"svm-tia: tau must be > 0 (a count >= 1 or a fraction < 1), got {self.tau}"
            )
        return int(self.tau) if self.tau >= 1 else int(self.tau * n_users)

    def target_item_analysis(
        self, data: Interactions, suspicious: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Phase 2: ``(flagged mask [n_users], detected target items)`` from a suspicious mask."""
        if data.is_implicit:
            raise ConfigError(
                "svm-tia: target item analysis needs explicit ratings (a maximum "
                "rating score); the data is implicit"
            )
        rows = np.flatnonzero(np.asarray(suspicious, dtype=bool))
        top = data.matrix[rows]  # a copy: the data is not touched
        top.data = (top.data >= data.rating_scale[1]).astype(np.float32)
        top.eliminate_zeros()
        counts = np.bincount(top.indices, minlength=data.n_items)
        targets = np.flatnonzero(counts > self.tau_count(data.n_users))
        flagged = np.zeros(data.n_users, dtype=bool)
        flagged[rows[top[:, targets].tocoo().row]] = True
        logger.info(
            "TIA: %d suspicious users, %d target items, %d kept flagged",
            len(rows),
            len(targets),
            int(flagged.sum()),
        )
        return flagged, targets

    def flag_phases(self, data: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(phase-1 mask, final mask, detected target items)`` for the users of ``data``."""
        suspicious = super().flag(data)
        flagged, targets = self.target_item_analysis(data, suspicious)
        return suspicious, flagged, targets

    def flag(self, data: Interactions) -> np.ndarray:
        """Both phases: boolean mask ``[n_users]`` of the users judged fake."""
        return self.flag_phases(data)[1]
