"""Leak-free evaluation of a fake-user detector on poisoned data.

The protocol of Huang et al. (2021, section VI) and Fang et al. (2020, section 6), with every
choice stated:

1. **Training set** (`build_training_set`). The detector is trained on fake users that the same
   attack generates on the clean data for *other* target items — as many items as evaluated,
   drawn uniformly from the items that are not evaluated targets — with a seed drawn from the
   protocol's own random stream (a given int seed is mixed with a fixed tag, so the stream
   differs from the evaluated attack's even when the caller passes both the same int), plus as
   many normal users sampled from the clean data (Huang: 300 + 300; Fang: 800 + 800; default
   ``min(300, n_real)`` of each). Ratings that training fake users give to evaluated target
   items (random fillers can hit them) are dropped, so no evaluated target and no evaluated fake
   user appears in training.
   Features depend on item means and counts, hence on how many fake users share the data. The
   papers do not say on which data the training users' features are computed; appending all 300
   training fakes at once shifts every item statistic far more than the evaluated attack does
   (on a 600-user planted set this alone took the FPR from 2 % to 30-50 %). So the training fake
   users are featurized in groups of the evaluated attack size, each group appended to the clean
   data alone, with as many normal users featurized in that same data.
2. **Evaluation** (`evaluate_detector`). The trained detector flags every user of ``poisoned``
   (features on ``poisoned``); ``FPR = |flagged ∩ normal| / |normal|``,
   ``FNR = |fake \\ flagged| / |fake|`` (NaN without fake users). The sampled training normal
   users are real users of ``poisoned`` too, as in the papers; ``info["fpr_unseen"]`` gives the
   FPR over the normal users the detector never saw.
3. **After detection** the victim is retrained without the flagged users (`remove_flagged`), or,
   to keep per-replica datasets the same shape for batched training, on `empty_flagged`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recpoison.attacks.base import Attack
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.detectors import make_detector
from recpoison.detectors.features import ProfileDetector
from recpoison.detectors.svm_tia import SVMTIADetector
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, derive_seed
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)

#: Mixed into an int seed so that the training stream differs from the attack's own stream.
_TRAINING_TAG = 0x5EED_DE7EC7
#: At most this many feature groups per training set (each costs one pass over the data).
MAX_GROUPS = 60


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """What a detector did to the users of one poisoned dataset."""

    flagged: np.ndarray  # bool [n_users of the evaluated data]
    fpr: float  # normal users flagged / normal users
    fnr: float  # fake users missed / fake users (nan if no fake users)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DetectorTrainingSet:
    """The detector's training users, leak-free with respect to the evaluated attack.

    ``fake`` holds the training fake profiles (``[n_train_fake, n_items]``, generated on
    ``clean`` for ``targets``), ``normal_users`` the indices in ``clean`` of as many sampled normal
    users. Features are computed group by group (`groups`): each group of ``group_size`` fake
    users is appended to ``clean`` alone, so item means and counts see as many fake users as the
    evaluated data does, and as many normal users are featurized in that same data.
    """

    clean: Interactions
    fake: sp.csr_matrix
    normal_users: np.ndarray
    targets: np.ndarray
    group_size: int

    @property
    def n_fake(self) -> int:
        return int(self.fake.shape[0])

    @property
    def normal_ids(self) -> np.ndarray:
        """Original ids of the sampled normal users."""
        return self.clean.user_ids[self.normal_users]

    def groups(self) -> Iterator[tuple[Interactions, np.ndarray, np.ndarray]]:
        """``(data, users, labels)`` per group: ``data`` = clean + the group's fake users,
        ``users`` the group's normal then fake users (indices in ``data``), ``labels`` 1 = fake."""
        for start in range(0, self.n_fake, self.group_size):
            stop = min(start + self.group_size, self.n_fake)
            data = self.clean.with_fake_users(FakeProfiles(self.fake[start:stop], self.targets))
            normal = self.normal_users[start:stop]
            users = np.concatenate([normal, self.clean.n_users + np.arange(stop - start)])
            labels = np.repeat([0, 1], [len(normal), stop - start])
            yield data, users, labels

    def features(self, detector: ProfileDetector) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: ``detector.user_features`` of every training user, and the labels."""
        parts = [
            (detector.user_features(data)[users], labels) for data, users, labels in self.groups()
        ]
        return np.vstack([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def training_rng(random_state: RandomState) -> np.random.Generator:
    """The protocol's random stream: an int seed is mixed with a fixed tag (see module doc)."""
    if isinstance(random_state, int | np.integer):
        return np.random.default_rng(np.random.SeedSequence([int(random_state), _TRAINING_TAG]))
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    raise ConfigError(
        f"random_state must be an int, a numpy Generator or None, not {random_state!r}"
    )


def build_training_set(
    clean: Interactions,
    attack: Attack,
    eval_targets: np.ndarray,
    *,
    n_train_fake: int | None = None,
    group_size: int | None = None,
    surrogate: Recommender | None = None,
    random_state: RandomState = None,
) -> DetectorTrainingSet:
    """Generate training fake users for other targets (one ``attack.generate`` call) and sample
    as many normal users.

    ``clean`` must hold no fake user. ``eval_targets`` are the evaluated target items (may be
    empty when unknown, as in ``recpoison detect``); the training targets avoid them and the
    training fake users' ratings of them are dropped. ``group_size`` (default: all training fake
    users in one group) is the number of fake users featurized together; set it to the
    evaluated attack size. It is raised to ``ceil(n_train_fake / MAX_GROUPS)`` to bound the cost.
    """
    if clean.n_fake:
        raise ConfigError(
            f"the clean data holds {clean.n_fake} fake users; train the detector "
            "on data without the evaluated fake users"
        )
    rng = training_rng(random_state)
    eval_targets = np.unique(np.asarray(eval_targets, dtype=np.int64))
    n = min(300, clean.n_users) if n_train_fake is None else int(n_train_fake)
    if not 2 <= n <= clean.n_users:
        raise ConfigError(
            f"the number of training fake users must be in 2..{clean.n_users} "
            f"(the number of normal users sampled beside them), got {n}"
        )
    group = n if group_size is None else int(group_size)
    if group < 1:
        raise ConfigError(f"group_size must be >= 1, got {group}")
    group = min(n, max(group, math.ceil(n / MAX_GROUPS)))
    candidates = np.setdiff1d(np.arange(clean.n_items), eval_targets)
    n_targets = max(1, len(eval_targets))
    if len(candidates) < n_targets:
        raise ConfigError(
            f"{clean.n_items} items leave no {n_targets} training target items "
            "outside the evaluated targets"
        )
    targets = np.sort(rng.choice(candidates, size=n_targets, replace=False))
    profiles = attack.generate(
        clean, targets, n, surrogate=surrogate, random_state=derive_seed(rng)
    )
    fake = sp.csr_matrix(profiles.matrix, dtype=np.float32, copy=True)
    fake.data[np.isin(fake.indices, eval_targets)] = 0.0
    fake.eliminate_zeros()
    normals = rng.choice(clean.n_users, size=n, replace=False)
    logger.info(
        "detector training set: %d normal + %d %s fake users in groups of %d, targets %s",
        n,
        n,
        type(attack).__name__,
        group,
        targets.tolist(),
    )
    return DetectorTrainingSet(clean, fake, normals, targets, group)


def train_detector(
    detector_name: str,
    detector_params: dict[str, Any],
    training: DetectorTrainingSet,
    *,
    random_state: RandomState = None,
) -> ProfileDetector:
    """Instantiate the registered detector and fit it on ``training`` (see `features`).

    A detector with a ``random_state`` parameter not given in ``detector_params`` gets one from
    the protocol's stream.
    """
    detector = make_detector(detector_name, **detector_params)
    if "random_state" in detector.get_params() and "random_state" not in detector_params:
        detector.set_params(random_state=derive_seed(training_rng(random_state)))
    return detector.fit(*training.features(detector))


def detection_rates(flagged: np.ndarray, is_fake: np.ndarray) -> tuple[float, float]:
    """``(FPR, FNR)``: normal users flagged / normal users, fake users missed / fake users.

    Each is NaN when its denominator is 0.
    """
    flagged, is_fake = np.asarray(flagged, dtype=bool), np.asarray(is_fake, dtype=bool)
    normal = ~is_fake
    fpr = float(flagged[normal].mean()) if normal.any() else float("nan")
    fnr = float((~flagged[is_fake]).mean()) if is_fake.any() else float("nan")
    return fpr, fnr


def evaluate_detector(
    detector_name: str,
    detector_params: dict[str, Any],
    clean: Interactions,
    poisoned: Interactions,
    attack: Attack,
    n_fake: int,
    eval_targets: np.ndarray,
    *,
    surrogate: Recommender | None = None,
    n_train_fake: int | None = None,
    random_state: RandomState = None,
) -> DetectionResult:
    """Train ``detector_name`` leak-free (see module doc) and flag the users of ``poisoned``.

    ``poisoned`` is ``clean`` with the ``n_fake`` evaluated fake users of ``attack`` appended
    (``is_fake`` set); ``eval_targets`` are their target items. ``info`` holds the training
    targets and sizes, the FPR over normal users unseen in training and, for ``svm-tia``, the
    phase-1 rates (``fpr_svm``, ``fnr_svm``, as in Huang et al. Table VIII) and the detected
    target items.
    """
    if poisoned.n_fake != n_fake:
        raise ConfigError(
            f"the poisoned data marks {poisoned.n_fake} fake users, expected {n_fake}"
        )
    if poisoned.n_items != clean.n_items:
        raise ConfigError(
            f"the poisoned data has {poisoned.n_items} items, the clean data {clean.n_items}"
        )
    rng = training_rng(random_state)
    training = build_training_set(
        clean,
        attack,
        eval_targets,
        n_train_fake=n_train_fake,
        group_size=max(n_fake, 1),
        surrogate=surrogate,
        random_state=rng,
    )
    detector = train_detector(detector_name, detector_params, training, random_state=rng)
    info: dict[str, Any] = {
        "detector": detector_name,
        "n_train_fake": training.n_fake,
        "n_train_normal": len(training.normal_users),
        "train_group_size": training.group_size,
        "train_targets": training.targets.tolist(),
    }
    if isinstance(detector, SVMTIADetector):
        suspicious, flagged, tia_targets = detector.flag_phases(poisoned)
        info["fpr_svm"], info["fnr_svm"] = detection_rates(suspicious, poisoned.is_fake)
        info["tia_targets"] = tia_targets.tolist()
    else:
        flagged = detector.flag(poisoned)
    if hasattr(detector, "best_params_"):
        info["best_params"] = detector.best_params_
    fpr, fnr = detection_rates(flagged, poisoned.is_fake)
    unseen = ~poisoned.is_fake & ~np.isin(poisoned.user_ids, training.normal_ids)
    info["fpr_unseen"] = float(flagged[unseen].mean()) if unseen.any() else float("nan")
    info["n_flagged"] = int(flagged.sum())
    logger.info(
        "%s on %s: %d flagged, FPR %.4f, FNR %.4f",
        detector_name,
        poisoned.name,
        int(flagged.sum()),
        fpr,
        fnr,
    )
    return DetectionResult(flagged, fpr, fnr, info)


def _check_mask(poisoned: Interactions, flagged: np.ndarray) -> np.ndarray:
    flagged = np.asarray(flagged, dtype=bool)
    if flagged.shape != (poisoned.n_users,):
        raise ConfigError(
            f"flagged mask has shape {flagged.shape}, the data has {poisoned.n_users} users"
        )
    return flagged


def remove_flagged(poisoned: Interactions, flagged: np.ndarray) -> Interactions:
    """The data without the flagged users (``select_users(~flagged)``)."""
    return poisoned.select_users(~_check_mask(poisoned, flagged))


def empty_flagged(poisoned: Interactions, flagged: np.ndarray) -> Interactions:
    """The data with the flagged users' ratings (and timestamps) removed, every row kept.

    Same shape, ids and ``is_fake`` as ``poisoned``: nothing is added and no label changes. The
    runner uses it to keep per-replica datasets the same shape for batched training; the flagged
    users then have no ratings, and HR_t must be computed over the normal users *not* flagged
    (the emptied normal users are no longer part of the system).
    """
    keep_row = ~_check_mask(poisoned, flagged)
    m = poisoned.matrix
    length = np.diff(m.indptr)
    keep = np.repeat(keep_row, length)
    indptr = np.concatenate([[0], np.cumsum(length * keep_row)])
    matrix = sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)
    stamps = None if poisoned.timestamps is None else poisoned.timestamps[keep]
    return poisoned.replace(matrix=matrix, timestamps=stamps)
