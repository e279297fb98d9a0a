"""SISA training and unlearning of a neural victim (Bourtoule et al., "Machine Unlearning",
IEEE S&P 2021, section IV), the unlearning remedy the course report proposes after detection
(seed 000, section 7.1).

*Sharded*: the users are split uniformly at random into ``shards`` disjoint shards; one
constituent model per shard trains only on its users' interactions. *Isolated*: constituent
models share nothing. *Sliced*: each shard's users are split into ``slices`` disjoint slices and
the shard's model trains incrementally, first on slice 1, then on slices 1-2, ..., checkpointing
after each step (section IV-B); every step lasts ``e' = round(2 e / (slices + 1))`` epochs (at
least 1), where ``e`` is the victim's ``epochs``, so that the whole schedule costs about as much
as ``e`` epochs on the whole shard (section IV-B, "the same number of samples as training
without slicing"). *Aggregated*: a prediction is the mean of the constituent models' scores
(their logits, which rank like ŷ but do not saturate to ties in float32; section IV-A averages
the constituents' outputs).

Unlearning a set of users retrains only the shards that hold one of them, from the checkpoint
taken just before the first slice holding one of them, with the users' interactions removed
(section IV-C); the other shards and the earlier slices are untouched. The cost therefore grows
with how many shards and how early the removed users sit: with ``slicing="random"`` (the
paper's uniform assignment) fake users are spread over every shard and slice, so unlearning
many of them is close to a full retrain; with ``slicing="order"`` a shard's users enter in data
order, and fake users, appended last like users who joined last, sit in the last slice.

Users are split per retrain: replica ``r`` of the SISA ensemble draws its own partition. The
``replicas x shards`` constituent models train together as replicas of one stacked NCF model
(per-replica data), so one epoch walks as many batches as the largest shard needs: a shard's
schedule depends on the other shards' sizes, never on their content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal, Self, cast

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.detectors.protocol import empty_flagged
from recpoison.errors import ConfigError
from recpoison.remedies.base import RemedyResult, removal_mask
from recpoison.utils import RandomState, check_random_state, derive_seed
from recpoison.victims import Recommender, make_victim, victim_class
from recpoison.victims.ncf_replicas import put_replicas, take_replicas
from recpoison.victims.neural import NCFRecommender

logger = logging.getLogger(__name__)

Slicing = Literal["random", "order"]
#: Largest ``[constituents, users, items]`` block scored at once.
SCORE_BLOCK_ELEMENTS = 2**25


def slice_epochs(epochs: int, slices: int) -> int:
    """Epochs per slice step, ``round(2 e / (L + 1))`` (at least 1; Bourtoule §IV-B)."""
    return max(1, round(2 * epochs / (slices + 1)))


class SISA(Recommender):
    """A SISA ensemble of ``shards`` x ``slices`` of the neural victim ``victim`` (see the module
    doc); ``n_replicas`` independent ensembles, each with its own partition of the users.

    Fitted attributes: ``shard_of_`` and ``slice_of_`` (``[R, n_users]``), ``checkpoints_`` (one
    stacked model of ``R * shards`` constituents per slice step; the last is the deployed
    model), ``removed_`` (users unlearned so far), ``fit_seconds_``.
    """

    name = "sisa"
    capabilities = frozenset({"implicit"})

    def __init__(
        self,
        *,
        victim: str = "neumf",
        victim_params: dict[str, Any] | None = None,
        shards: int = 5,
        slices: int = 5,
        slicing: Slicing = "random",
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.victim = victim
        self.victim_params = victim_params
        self.shards = shards
        self.slices = slices
        self.slicing = slicing

    # -- training -------------------------------------------------------------------------------
    def fit(self, train: Interactions, exclude_items: np.ndarray | None = None) -> Self:
        """Train every shard slice by slice, keeping a checkpoint after each slice step.

        ``exclude_items`` (one item per user, -1 = none) are never sampled as negatives, as in
        the victim's own ``fit``."""
        started = time.perf_counter()
        self._check_fit_input(train)
        self._check_params()
        rng = check_random_state(self.random_state)
        self.shard_of_, self.slice_of_ = self._partition(train.n_users, rng)
        self.removed_ = np.zeros(train.n_users, dtype=bool)
        self.exclude_items_ = exclude_items
        constituent = self._constituent(derive_seed(rng))
        self.epochs_per_slice_ = constituent.epochs
        self.checkpoints_: list[NCFRecommender] = []
        everyone = list(range(self.n_replicas * self.shards))
        self._train_slices(constituent, everyone, 0, fresh=True)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def unlearn(self, users: np.ndarray) -> RemedyResult:
        """Remove ``users`` (indices or a boolean mask): retrain the shards holding one of them
        from their last checkpoint before the first slice holding one (Bourtoule §IV-C)."""
        self._check_fitted()
        started = time.perf_counter()
        removed = removal_mask(self.train_, users)
        new = removed & ~self.removed_
        self.removed_ = self.removed_ | removed
        S = self.shards
        start_of: dict[int, int] = {}  # constituent -> first slice step to retrain
        for r in range(self.n_replicas):
            for user in np.flatnonzero(new):
                j = r * S + int(self.shard_of_[r, user])
                start_of[j] = min(start_of.get(j, self.slices), int(self.slice_of_[r, user]))
        steps = 0
        for first in sorted(set(start_of.values())):
            group = sorted(j for j, s in start_of.items() if s == first)
            if first == 0:
                seeds = [self.checkpoints_[-1].seeds_[j] for j in group]
                model = self._constituent(None, seeds=seeds)
                self._train_slices(model, group, 0, fresh=True)
            else:
                model = take_replicas(self.checkpoints_[first - 1], group)
                self._train_slices(model, group, first, fresh=False)
            steps += len(group) * (self.slices - first)
        seconds = time.perf_counter() - started
        info = {
            "users_removed": int(new.sum()),
            "shards_retrained": len(start_of),
            "shards_total": self.n_replicas * S,
            "slice_steps_retrained": steps,
            "slice_steps_total": self.n_replicas * S * self.slices,
        }
        logger.info("sisa: unlearned %d users in %.2f s (%s)", new.sum(), seconds, info)
        return RemedyResult(self, empty_flagged(self.train_, self.removed_), seconds, info)

    def _train_slices(
        self, model: NCFRecommender, constituents: Sequence[int], first: int, *, fresh: bool
    ) -> None:
        """Train ``model`` (holding ``constituents``) on slice steps ``first..slices-1``,
        writing each step's checkpoint (all of them on a first fit)."""
        for step in range(first, self.slices):
            datasets = [self._prefix(j, step) for j in constituents]
            if fresh and step == first:
                model.fit(datasets, exclude_items=self.exclude_items_)
            else:
                model.partial_fit(datasets, self.epochs_per_slice_)
            if len(self.checkpoints_) < self.slices:  # first fit: keep a copy per step
                is_last = step == self.slices - 1
                self.checkpoints_.append(model if is_last else model.copy_fitted())
            else:
                put_replicas(self.checkpoints_[step], constituents, model)

    def _prefix(self, constituent: int, step: int) -> Interactions:
        """What constituent ``r * shards + s`` sees at slice step ``step``: the users of shard
        ``s`` in slices ``0..step``, minus the removed users (others' rows emptied)."""
        r, s = divmod(constituent, self.shards)
        keep = (self.shard_of_[r] == s) & (self.slice_of_[r] <= step) & ~self.removed_
        data = empty_flagged(self.train_, ~keep)
        if data.n_ratings == 0:
            raise ConfigError(
                f"sisa: slice step {step + 1} of shard {s + 1} has no interactions; "
                "use fewer shards or slices"
            )
        return data

    def _partition(self, n_users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``[R, n_users]`` shard and slice of every user: a uniform random balanced split into
        shards; within a shard, slices are random (``random``) or follow the row order
        (``order``), ``slices`` equal parts."""
        shard_of = np.empty((self.n_replicas, n_users), dtype=np.int64)
        slice_of = np.empty((self.n_replicas, n_users), dtype=np.int64)
        for r in range(self.n_replicas):
            order = rng.permutation(n_users)
            for s, members in enumerate(np.array_split(order, self.shards)):
                shard_of[r, members] = s
                if self.slicing == "order":
                    members = np.sort(members)
                for i, part in enumerate(np.array_split(members, self.slices)):
                    slice_of[r, part] = i
        return shard_of, slice_of

    def _constituent(self, seed: int | None, seeds: list[int] | None = None) -> NCFRecommender:
        """An unfitted stacked model of ``R * shards`` constituents (or of ``seeds``)."""
        if not issubclass(victim_class(self.victim), NCFRecommender):
            raise ConfigError(
                f"sisa trains neural victims (neumf, gmf, mlp) slice by slice; {self.victim!r} "
                "is not one"
            )
        params = dict(self.victim_params or {})
        n = len(seeds) if seeds is not None else self.n_replicas * self.shards
        model = make_victim(
            self.victim, **params, n_replicas=n, random_state=seed, seeds=seeds, device=self.device
        )
        model = cast(NCFRecommender, model)
        model.epochs = slice_epochs(model.epochs, self.slices)
        return model

    def _check_params(self) -> None:
        for name in ("shards", "slices"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"sisa: {name} must be an integer >= 1, got {value!r}")
        if self.slicing not in ("random", "order"):
            raise ConfigError(f"sisa: slicing must be 'random' or 'order', not {self.slicing!r}")
        if self.shards * self.slices > self.train_.n_users:
            raise ConfigError(
                f"sisa: {self.shards} shards x {self.slices} slices need at least that many "
                f"users; the data has {self.train_.n_users}"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "checkpoints_"):
            raise ConfigError("sisa is not fitted yet; call fit first")

    # -- scoring --------------------------------------------------------------------------------
    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Mean of the shards' logits, ``[R, len(users), n_items]``."""
        self._check_fitted()
        users = self._users(users)
        model, S = self.checkpoints_[-1], self.shards
        out = torch.empty(self.n_replicas, len(users), self.train_.n_items, device=self.device_)
        chunk = max(1, SCORE_BLOCK_ELEMENTS // (model.n_replicas * self.train_.n_items))
        for start in range(0, len(users), chunk):
            block = model.score_replicas(users[start : start + chunk])
            out[:, start : start + chunk] = block.view(self.n_replicas, S, *block.shape[1:]).mean(1)
        return out
