"""The `Attack` contract: parameters in the constructor, one `generate` entry point."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender

#: What an attack may require of the data or the surrogate victim it is given.
REQUIREMENTS = frozenset({"surrogate", "differentiable", "explicit_ratings"})


class Attack(ABC):
    """A data-poisoning attack that crafts fake user profiles.

    ``generate`` sees only the attacker's view of the training data (the runner applies the
    knowledge setting before calling it) and never any test data. ``requires`` declares what the
    attack needs; the runner refuses impossible pairings before any work is done.
    """

    name: ClassVar[str] = "attack"
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, n_fillers: int = 30) -> None:
        self.n_fillers = n_fillers

    @abstractmethod
    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> FakeProfiles:
        """Return ``n_fake`` fake profiles promoting ``targets`` (item indices of ``train``)."""

    def grows_by_prefix(self) -> bool:
        """Whether, with the same random state, the fake users of a larger attack begin with those
        of a smaller one, so that sizes can share their work (:mod:`recpoison.attacks.prefix`):
        the runner then seeds the attack independently of its size and passes ``resume_from``
        (the ``progress_`` a smaller size left) to ``generate``, or to ``generate_many`` when it
        attacks all targets at once; both accept it, and ``on_step``, a function called with the
        state after each step (the runner's checkpoint, :mod:`recpoison.experiment.progress`:
        an interrupted attack goes on from its last step)."""
        return False

    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def check_inputs(
        self, train: Interactions, targets: np.ndarray, n_fake: int, surrogate: Recommender | None
    ) -> np.ndarray:
        """Validate the common arguments of ``generate``; return targets as an int array."""
        targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
        if n_fake < 1:
            raise ConfigError(f"{self.name}: the number of fake users must be >= 1, got {n_fake}")
        if len(targets) == 0:
            raise ConfigError(f"{self.name}: at least one target item is needed")
        bad = targets[(targets < 0) | (targets >= train.n_items)]
        if len(bad):
            raise ConfigError(
                f"{self.name}: target item index {int(bad[0])} is not in the data "
                f"(0..{train.n_items - 1})"
            )
        if self.n_fillers < 0 or self.n_fillers + len(targets) > train.n_items:
            raise ConfigError(
                f"{self.name}: n_fillers={self.n_fillers} is impossible with {train.n_items} items"
            )
        if "surrogate" in self.requires and surrogate is None:
            raise ConfigError(
                f"{self.name} needs a surrogate victim (set `surrogate:` in the spec)"
            )
        if "explicit_ratings" in self.requires and train.is_implicit:
            raise ConfigError(f"{self.name} needs explicit ratings; the data is implicit")
        return targets

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


@dataclass(frozen=True, eq=False)
class EdgePerturbation:
    """What an edge attack returns: the perturbed training data and the flips that made it.

    ``data`` is what the victim trains on: the attacker's input with edges flipped (and, for the
    new-user variants, empty users appended with ``is_fake`` set). ``flips`` is ``[n, 3]`` int64
    rows ``(user, item, new_value)`` in ``data``'s index space, in the order they were chosen
    (``new_value`` 1 inserts an interaction, 0 removes one). ``info`` holds diagnostics (for
    example the attacker's loss per flip) that the runner stores beside the results.
    """

    data: Interactions
    flips: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_flips(self) -> int:
        return int(self.flips.shape[0])


class EdgeAttack(ABC):
    """An untargeted attack that flips user-item edges instead of crafting fake profiles.

    Aravind (thesis §3.5-3.12): a perturbation is one flipped entry of the interaction matrix;
    the budget is a number of flips. ``perturb`` sees only the attacker's view of the training
    data, like ``Attack.generate``. ``requires`` uses the same vocabulary as ``Attack``.
    """

    name: ClassVar[str] = "edge-attack"
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Edge attacks degrade the recommender for everyone (section 3.5).
    goal: ClassVar[str] = "untargeted"

    @abstractmethod
    def perturb(
        self,
        train: Interactions,
        budget: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> EdgePerturbation:
        """Flip ``budget`` edges of ``train`` (implicit data); return the perturbed data."""

    def grows_by_prefix(self) -> bool:
        """Whether, with the same random state, a budget's flips are the first flips of every
        larger budget (the meta-gradient attacks, :class:`~recpoison.attacks.prefix.FlipProgress`):
        the runner then seeds the attack without its budget and passes ``perturb`` the
        ``resume_from`` and ``on_step`` that :meth:`Attack.grows_by_prefix` describes."""
        return False

    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
