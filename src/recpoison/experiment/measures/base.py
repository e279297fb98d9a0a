"""What every measurement sees: one batched fit of the victim and the datasets it trained on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from recpoison.data.interactions import Interactions
from recpoison.victims.base import Recommender


@dataclass(frozen=True)
class Fit:
    """One batched fit of the victim during a cell's retrain step.

    With ``shared`` the model's ``retrains`` replicas trained on ``datasets[0]``, the one
    (poisoned) dataset of every target. Otherwise replicas ``j * retrains ... (j + 1) * retrains``
    trained on ``datasets[members[j]]``: one poisoned dataset per target, several targets per fit.
    ``datasets`` are the datasets as the victim saw them (binarized with ``victim_data:
    binarized``).
    """

    model: Recommender
    datasets: Sequence[Interactions]
    members: list[int]
    shared: bool
    retrains: int

    def block(self, j: int) -> slice:
        """The replicas of ``members[j]``."""
        return slice(j * self.retrains, (j + 1) * self.retrains)


class Measurement(Protocol):
    """A measurement of the retrained victim: it reads each fit of the retrain step."""

    def observe(self, fit: Fit) -> None:
        """Record what this measurement needs from ``fit``."""
