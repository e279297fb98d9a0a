"""Victims fitted as one independent model per replica (external libraries, user classes).

The NCF and ALS victims train their replicas together in one stacked model. A model from another
library cannot be stacked, so :class:`OneModelPerReplica` fits one model per replica, replica
``r`` with seed ``replica_seeds(random_state, n_replicas)[r]`` (the seeds the stacked victims
use), each on its own dataset when ``fit`` gets one dataset per replica, and stacks the replicas'
scores into the ``[R, U, I]`` tensor of the :class:`Recommender` contract. A deterministic model
(``seeded = False``) is fitted once per distinct dataset and scored once per fitted model.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Self

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.victims.base import Recommender, replica_seeds

#: Scores ``[len(users), n_items]`` of one fitted replica for the user indices given.
ReplicaScorer = Callable[[np.ndarray], torch.Tensor]


class OneModelPerReplica(Recommender):
    """A victim whose replicas are independent models fitted one after the other.

    Subclasses implement :meth:`_fit_one` (fit one replica on one dataset with one seed and
    return its scorer). Fitted attributes: ``seeds_`` (one per replica), ``scorers_`` (one per
    replica; replicas of a deterministic model on the same dataset share one).
    """

    #: False for deterministic models (item-item neighbours): replicas on one dataset are equal.
    seeded: ClassVar[bool] = True

    @abstractmethod
    def _fit_one(self, data: Interactions, seed: int) -> ReplicaScorer:
        """Fit one replica on ``data`` with ``seed``; return the function that scores it."""

    def fit(self, train: Interactions | Sequence[Interactions]) -> Self:
        """Fit every replica (one dataset for all, or one dataset per replica)."""
        datasets = self._check_fit_input(train)
        self.seeds_ = replica_seeds(self.random_state, self.n_replicas)
        fitted: dict[int, ReplicaScorer] = {}
        scorers = []
        for seed, data in zip(self.seeds_, datasets, strict=True):
            if self.seeded:
                scorers.append(self._fit_one(data, seed))
                continue
            if id(data) not in fitted:
                fitted[id(data)] = self._fit_one(data, seed)
            scorers.append(fitted[id(data)])
        self.scorers_ = scorers
        return self

    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Scores ``[R, len(users), n_items]`` (float32, on the model's device)."""
        if not hasattr(self, "scorers_"):
            raise ConfigError(f"{self.name} is not fitted yet; call fit first")
        users = self._users(users)
        computed: dict[int, torch.Tensor] = {}
        for scorer in self.scorers_:
            if id(scorer) not in computed:
                computed[id(scorer)] = self._checked_scores(scorer(users), len(users))
        return torch.stack([computed[id(scorer)] for scorer in self.scorers_])

    def _checked_scores(self, scores: torch.Tensor | np.ndarray, n_users: int) -> torch.Tensor:
        out = torch.as_tensor(np.asarray(scores) if not torch.is_tensor(scores) else scores)
        expected = (n_users, self.train_.n_items)
        if tuple(out.shape) != expected:
            raise ConfigError(
                f"{self.name}: a replica returned scores of shape {tuple(out.shape)}; "
                f"expected [users, items] = {list(expected)}"
            )
        return out.to(device=self.device_, dtype=torch.float32)
