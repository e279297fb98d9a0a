"""Detection: a detector trained leak-free flags users of each poisoned dataset (FPR, FNR).

Huang et al. 2021 §VI and Fang et al. 2020 §6; see :func:`recpoison.detectors.protocol.
evaluate_detector`. What happens to the flagged users afterwards is a remedy
(:mod:`recpoison.experiment.measures.remedy`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from recpoison.data.interactions import Interactions
from recpoison.detectors.protocol import DetectionResult, evaluate_detector
from recpoison.experiment.expansion import stable_seed

#: ``attack_and_surrogate(t)``: the cell's attack and surrogate for poisoned dataset ``t``.
AttackFactory = Callable[[int], tuple[Any, Any]]


def detect(
    config: dict[str, Any],
    clean: Interactions,
    poisoned: list[Interactions],
    targets: np.ndarray,
    n_fake: int,
    attack_and_surrogate: AttackFactory,
    say: Callable[[str], None],
) -> list[DetectionResult]:
    """Run the cell's detector on each poisoned dataset (one per target, or one for all)."""
    detector = config["detector"]
    results = []
    for t, data in enumerate(poisoned):
        say(f"detector {detector['name']}: target {t + 1}/{len(targets)}")
        attack, surrogate = attack_and_surrogate(t)
        results.append(
            evaluate_detector(
                detector["name"],
                detector["params"],
                clean,
                data,
                attack,
                n_fake,
                targets if len(poisoned) == 1 else targets[t : t + 1],
                surrogate=surrogate,
                n_train_fake=config.get("detector_train_fake"),
                random_state=stable_seed("detector", config, t),
            )
        )
    return results


def rate_columns(results: list[DetectionResult], t: int, r: int, j: int) -> dict[str, float]:
    """``fpr`` / ``fnr`` of the detection that target ``t`` (-1: none) belongs to (the same
    for every retrain ``r`` and K index ``j``)."""
    result = results[min(max(t, 0), len(results) - 1)]
    return {"fpr": float(result.fpr), "fnr": float(result.fnr)}
