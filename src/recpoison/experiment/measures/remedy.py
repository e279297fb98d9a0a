"""Remedies after detection: what the operator does with the users a detector flagged.

``retrain`` (the course report's first remedy, seed 000 §7.1): retrain the victim from scratch,
with the same seeds, on the poisoned data with the flagged users' ratings removed; HR_t is then
measured over the normal users *not* flagged (flagged users are no longer part of the system).
This runs whenever a cell has a detector. With ``remedy: {name: retrain}`` in the spec the cell
also records, in its info under ``"remedy"``, the seconds the remedy took and the remedied
victim's quality (leave-one-out HR@10 / NDCG@10 over the remaining normal users, one extra fit
per poisoned dataset). Other remedies implement :class:`Remedy` and are registered in
:data:`REMEDIES`.

``sisa`` (the report's second remedy, machine unlearning; :class:`recpoison.remedies.SISA`):
the deployed system is a SISA ensemble of the victim (``shards`` x ``slices``) trained on the
poisoned data; the remedy unlearns the flagged users, retraining only the shards that held them.
HR_t is measured on the unlearned ensemble; the info records the seconds of unlearning
(``seconds``), of the ensemble's own fit (``fit_seconds``), of a full retrain of the victim on
the same cleaned data (``retrain_seconds``, the cost the remedy is compared with), the share of
slice steps retrained, and the unlearned ensemble's leave-one-out quality (a second ensemble
fitted on the held-out split of the poisoned data, then unlearning the same users).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from recpoison.data import transforms
from recpoison.data.interactions import Interactions
from recpoison.detectors.protocol import DetectionResult, empty_flagged
from recpoison.errors import ConfigError
from recpoison.experiment.measures.base import Fit, Measurement
from recpoison.experiment.measures.quality import fit_without_held_out, quality_rows
from recpoison.experiment.measures.target_hr import TargetHits
from recpoison.remedies import SISA
from recpoison.victims.base import Recommender


@dataclass(frozen=True)
class RemedyContext:
    """What a remedy may use: the cell's targets, K values, retrains and victim seed; ``retrain``
    (the cell's batched retrain step: datasets, measurements), ``new_victim(n_replicas)`` (an
    unfitted victim with the cell's seeds) and ``victim_view`` (the data as the victim sees it)."""

    targets: np.ndarray
    ks: Sequence[int]
    retrains: int
    seed: int
    retrain: Callable[[list[Interactions], list[Measurement]], None]
    new_victim: Callable[[int], Recommender]
    victim_view: Callable[[Interactions], Interactions]
    say: Callable[[str], None]


@dataclass
class RemedyOutcome:
    """HR_t after the remedy (result columns ``*_detected``) and the remedy's info."""

    hits: TargetHits
    info: dict[str, Any] = field(default_factory=dict)

    def columns(self, t: int, r: int, j: int) -> dict[str, Any]:
        return {} if t < 0 else self.hits.columns(t, r, j)


class Remedy(Protocol):
    name: ClassVar[str]

    def apply(
        self,
        poisoned: list[Interactions],
        detections: list[DetectionResult],
        context: RemedyContext,
    ) -> RemedyOutcome:
        """Remedy each poisoned dataset given its detection; measure HR_t afterwards."""


class RetrainRemedy:
    """Retrain from scratch without the flagged users (see the module doc).

    ``measure_quality`` adds the seconds and the remedied victim's leave-one-out quality to the
    outcome's info (set when the spec names the remedy explicitly).
    """

    name: ClassVar[str] = "retrain"

    def __init__(self, measure_quality: bool = True) -> None:
        self.measure_quality = measure_quality

    def apply(
        self,
        poisoned: list[Interactions],
        detections: list[DetectionResult],
        context: RemedyContext,
    ) -> RemedyOutcome:
        start = time.perf_counter()
        cleaned = [empty_flagged(d, r.flagged) for d, r in zip(poisoned, detections, strict=True)]
        views = [
            context.victim_view(c.replace(is_fake=d.is_fake | r.flagged))
            for c, d, r in zip(cleaned, poisoned, detections, strict=True)
        ]
        hits = TargetHits(context.targets, context.ks, context.retrains, views, "_detected")
        context.retrain(cleaned, [hits])
        outcome = RemedyOutcome(hits)
        if self.measure_quality:
            outcome.info = {
                "name": self.name,
                "seconds": time.perf_counter() - start,
                "quality": [self._quality(view, context) for view in views],
            }
        return outcome

    @staticmethod
    def _quality(view: Interactions, context: RemedyContext) -> list[dict[str, Any]]:
        """Leave-one-out HR@10 / NDCG@10 of the victim retrained on ``view`` (flagged users
        emptied, hence without a held-out item, and marked as not normal)."""
        context.say("remedy: victim quality after removing the flagged users")
        train, test_items = transforms.leave_one_out(view, random_state=context.seed)
        model = context.new_victim(context.retrains)
        fit_without_held_out(model, train, test_items)
        return quality_rows(model, train, test_items, context.seed)


class SisaRemedy:
    """Unlearn the flagged users from a SISA ensemble of the victim (see the module doc)."""

    name: ClassVar[str] = "sisa"

    def __init__(self, shards: int = 5, slices: int = 5, slicing: str = "random") -> None:
        self.shards, self.slices, self.slicing = shards, slices, slicing

    def apply(
        self,
        poisoned: list[Interactions],
        detections: list[DetectionResult],
        context: RemedyContext,
    ) -> RemedyOutcome:
        cleaned = [empty_flagged(d, r.flagged) for d, r in zip(poisoned, detections, strict=True)]
        views = [
            context.victim_view(c.replace(is_fake=d.is_fake | r.flagged))
            for c, d, r in zip(cleaned, poisoned, detections, strict=True)
        ]
        hits = TargetHits(context.targets, context.ks, context.retrains, views, "_detected")
        info: dict[str, Any] = {"name": self.name, "seconds": 0.0, "fit_seconds": 0.0}
        steps = total = 0
        quality = []
        for t, (data, result) in enumerate(zip(poisoned, detections, strict=True)):
            context.say(f"remedy sisa: ensemble {t + 1}/{len(poisoned)}, unlearning")
            ensemble = self._ensemble(context).fit(context.victim_view(data))
            unlearned = ensemble.unlearn(result.flagged)
            hits.observe(Fit(ensemble, views, [t], False, context.retrains))
            info["seconds"] += unlearned.seconds
            info["fit_seconds"] += ensemble.fit_seconds_
            steps += unlearned.info["slice_steps_retrained"]
            total += unlearned.info["slice_steps_total"]
            quality.append(self._quality(context.victim_view(data), result.flagged, context))
        context.say("remedy sisa: a full retrain, for its seconds")
        started = time.perf_counter()
        context.retrain(cleaned, [])
        info.update(
            retrain_seconds=time.perf_counter() - started,
            retrained_share=steps / total if total else 0.0,
            quality=quality,
        )
        return RemedyOutcome(hits, info)

    def _ensemble(self, context: RemedyContext) -> SISA:
        victim = context.new_victim(context.retrains)
        params = {
            key: value
            for key, value in victim.get_params().items()
            if key not in ("n_replicas", "random_state", "device", "seeds")
        }
        return SISA(
            victim=victim.name,
            victim_params=params,
            shards=self.shards,
            slices=self.slices,
            slicing=self.slicing,  # type: ignore[arg-type]
            n_replicas=context.retrains,
            random_state=context.seed,
            device=victim.device,
        )

    def _quality(
        self, data: Interactions, flagged: np.ndarray, context: RemedyContext
    ) -> list[dict[str, Any]]:
        """Leave-one-out HR@10 / NDCG@10 of an ensemble fitted on the held-out split of the
        poisoned ``data`` that then unlearned ``flagged`` (who no longer count as users)."""
        train, test_items = transforms.leave_one_out(data, random_state=context.seed)
        ensemble = self._ensemble(context)
        fit_without_held_out(ensemble, train, test_items)
        ensemble.unlearn(flagged)
        gone = train.replace(is_fake=train.is_fake | flagged)
        return quality_rows(ensemble, gone, test_items, context.seed)


#: Remedies a spec may name (``remedy: {name: ...}``).
REMEDIES: dict[str, type] = {"retrain": RetrainRemedy, "sisa": SisaRemedy}


def make_remedy(spec: dict[str, Any] | None) -> Remedy:
    """The remedy of a cell's ``remedy`` config (None: retrain, without the extra measures)."""
    if spec is None:
        return RetrainRemedy(measure_quality=False)
    if spec["name"] not in REMEDIES:
        choices = ", ".join(REMEDIES)
        raise ConfigError(f"unknown remedy {spec['name']!r}; choose one of: {choices}")
    return REMEDIES[spec["name"]](**spec.get("params", {}))
