"""Attacks whose sizes share their work: a larger attack's fake users begin with a smaller one's.

An attack that makes its fake users one after the other, each from the data plus the fake users
before it and a random stream consumed in order, never looks at how many are still to come: with
the same random state, its first ``n`` fake users are the same at every size ``>= n``. Such an
attack says so (:meth:`~recpoison.attacks.base.Attack.grows_by_prefix`), the runner seeds it
without the size, and a cell of a larger size goes on from the state a smaller one left
(``resume_from``) instead of starting over. A paper's five sizes 0.3/0.5/1/3/5 % of 671 users
then cost 34 fake users per target instead of 2 + 3 + 7 + 20 + 34 = 66.

The meta-gradient edge attacks (:mod:`recpoison.attacks.meta`) share their budgets the same way:
each meta-gradient inserts the best remaining flips given the flips before it, so a budget's flips
are the first flips of every larger budget (:class:`FlipProgress`).

A state carries a fingerprint (SHA-256) of every input besides the size; an attack resumes only
from a state with the same fingerprint and no larger ``size`` (fake users, or flips: its
``unit``) than it is asked for, so a stale or foreign state is never used, just ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from recpoison.attacks.base import Attack
from recpoison.attacks.ratings import assemble_profiles
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.utils import RandomState, check_random_state

#: Called by a size-sharing attack with its state after each step, as ``progress_`` would hold it
#: then (for a checkpoint: the state must be copied or written before the next step changes it).
StepHook = Callable[[Any], None]


def progress_fingerprint(
    attack_params: dict[str, Any],
    surrogate_params: dict[str, Any],
    view: Interactions,
    targets: np.ndarray,
    random_states: Sequence[RandomState],
) -> str | None:
    """SHA-256 of everything an attack reads besides the number of fake users; ``None`` (never
    resumable) unless every random state is an integer seed. The surrogate's own
    ``random_state`` is left out: a resumable attack seeds its models from ``random_states``."""
    if not all(isinstance(rs, int | np.integer) for rs in random_states):
        return None
    surrogate = {k: v for k, v in surrogate_params.items() if k != "random_state"}
    text = json.dumps(
        [attack_params, surrogate, [int(rs) for rs in random_states]], sort_keys=True, default=str
    )
    digest = hashlib.sha256(text.encode())
    matrix = view.matrix
    digest.update(str(matrix.shape).encode())
    for array in (matrix.indptr, matrix.indices, matrix.data, targets):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass
class SequentialProgress:
    """The state of a one-fake-user-at-a-time attack after ``n_fake`` fake users: the random
    stream as the next fake user finds it, the fake users so far, and ``state``, whatever else
    the attack's next fake user starts from (its data, warm-start factors, loss users, per-user
    diagnostics). ``resumed_from`` is how many fake users it had when the current call took it
    over (0 for a fresh start)."""

    fingerprint: str | None
    rng: np.random.Generator
    fillers: list[np.ndarray] = field(default_factory=list)
    ratings: list[np.ndarray] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0
    unit: ClassVar[str] = "fake users"

    @property
    def n_fake(self) -> int:
        return len(self.fillers)

    @property
    def size(self) -> int:
        return self.n_fake

    def profiles(
        self, train: Interactions, targets: np.ndarray, info: dict[str, Any]
    ) -> FakeProfiles:
        """The fake users so far, each rating the targets ``r_max`` and its fillers."""
        return assemble_profiles(
            train,
            targets,
            np.stack(self.fillers),
            np.stack(self.ratings),
            rate_target=True,
            info=info,
        )

    def continues(self, fingerprint: str | None, n_fake: int) -> bool:
        """Whether an attack of ``n_fake`` fake users with inputs ``fingerprint`` may go on
        from here: same inputs and no more fake users yet."""
        return fingerprint is not None and fingerprint == self.fingerprint and self.n_fake <= n_fake


@dataclass
class FlipProgress:
    """The state of a meta-gradient edge attack after some whole steps (meta-gradients of
    ``flips_per_step`` flips each): the training pairs each step inserted (``picked``, indices
    into the attack's pairs, which its random state redraws) and the surrogate's loss and
    accuracy measured at each step. A larger budget with the same inputs (``fingerprint``) goes
    on from it; a final partial step is never part of it, so every larger budget may."""

    fingerprint: str | None
    picked: list[np.ndarray] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    unit: ClassVar[str] = "flips"

    @property
    def size(self) -> int:
        return sum(len(step) for step in self.picked)

    def within(self, budget: int) -> FlipProgress:
        """The state after this one's first whole steps that fit in ``budget`` flips: what an
        attack of ``budget`` flips with the same inputs reached on its way (so a smaller budget
        goes on from a larger one's state too)."""
        kept, total = 0, 0
        for step in self.picked:
            if total + len(step) > budget:
                break
            kept, total = kept + 1, total + len(step)
        return FlipProgress(
            self.fingerprint, self.picked[:kept], self.losses[:kept], self.accuracies[:kept]
        )

    def continues(self, fingerprint: str | None, budget: int) -> bool:
        """Whether an attack of ``budget`` flips with inputs ``fingerprint`` may go on from
        here: same inputs and no more flips yet."""
        return fingerprint is not None and fingerprint == self.fingerprint and self.size <= budget


class SequentialAttack(Attack):
    """An attack that makes its fake users one after the other (see the module docstring):
    ``generate`` goes on from ``resume_from`` through :meth:`_resume_or_start` and leaves its
    state in ``progress_``; a subclass says how to begin in :meth:`_start`."""

    def grows_by_prefix(self) -> bool:
        return True

    @abstractmethod
    def _start(
        self, train: Interactions, targets: np.ndarray, rng: np.random.Generator
    ) -> dict[str, Any]:
        """The ``state`` before the first fake user, drawing from ``rng`` as the attack does."""

    def _resume_or_start(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        random_state: RandomState,
        resume_from: SequentialProgress | None,
    ) -> SequentialProgress:
        """A copy of ``resume_from`` when an attack of ``n_fake`` fake users with these inputs
        may go on from it, else a fresh start; the copy leaves the caller's state as it was, so
        it can serve another size again."""
        fingerprint = progress_fingerprint(self.get_params(), {}, train, targets, [random_state])
        if resume_from is not None and resume_from.continues(fingerprint, n_fake):
            progress = copy.deepcopy(resume_from)
            progress.resumed_from = progress.n_fake
            return progress
        rng = check_random_state(random_state)
        return SequentialProgress(fingerprint, rng, state=self._start(train, targets, rng))

    def _finish(
        self,
        progress: SequentialProgress,
        train: Interactions,
        targets: np.ndarray,
        started: float,
        info: dict[str, Any],
    ) -> FakeProfiles:
        """The fake users of ``progress`` as profiles with ``info``, the attack's name, how many
        fake users the call resumed from and the seconds since ``started``; ``progress`` is left
        in ``progress_``."""
        self.progress_ = progress
        info = {
            "attack": self.name,
            **info,
            "resumed_from": progress.resumed_from,
            "seconds": time.perf_counter() - started,
        }
        return progress.profiles(train, targets, info)
