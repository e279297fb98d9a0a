"""The `Recommender` contract every victim follows (scikit-learn style, with batched replicas)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state, derive_seed, resolve_device

#: Capabilities a victim may declare; attacks state which ones they need.
CAPABILITIES = frozenset(
    {"implicit", "explicit", "differentiable", "batched_replicas", "per_replica_data"}
)


#: A victim's ``random_state``: one for all replicas, or one seed per replica.
ReplicaRandomState = RandomState | Sequence[int]


def replica_seeds(random_state: ReplicaRandomState, n_replicas: int) -> list[int]:
    """The seed of each replica of a model with ``random_state`` and ``n_replicas`` replicas.

    Seeds are drawn one after another from ``check_random_state(random_state)``, so the list for
    ``R`` replicas starts with the list for fewer (replica 0 of any run with an int seed ``s`` is
    the one-replica run with ``random_state=s``). A sequence gives the seeds themselves, one per
    replica: a batched fit of several datasets then repeats one model's seeds per dataset (the
    runner pairs every target's retrains with the clean victim's, seed for seed).
    """
    if isinstance(random_state, Sequence):
        if len(random_state) != n_replicas:
            raise ConfigError(
                f"random_state gives {len(random_state)} replica seeds for {n_replicas} replicas"
            )
        return [int(seed) for seed in random_state]
    rng = check_random_state(random_state)
    return [derive_seed(rng) for _ in range(n_replicas)]


class Recommender(ABC):
    """A recommender under attack.

    The constructor stores hyperparameters only. ``fit`` trains ``n_replicas`` independent
    models (seeds from ``random_state``, see :func:`replica_seeds`); ``score_replicas`` returns
    the scores of all replicas at once, on the model's device, so metrics can rank them in one
    batched top-k.
    Fitted attributes end in ``_``.
    """

    name: ClassVar[str] = "recommender"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        n_replicas: int = 1,
        random_state: ReplicaRandomState = None,
        device: str = "auto",
    ) -> None:
        self.n_replicas = n_replicas
        self.random_state = random_state
        self.device = device

    # -- to implement --------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Interactions | Sequence[Interactions]) -> Self:
        """Train every replica; a sequence of ``n_replicas`` datasets (same shape) gives one
        dataset per replica (only victims with the ``per_replica_data`` capability)."""

    @abstractmethod
    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Scores of ``users`` for every item, a tensor ``[n_replicas, len(users), n_items]``."""

    # -- shared behaviour ----------------------------------------------------------------------
    @property
    def device_(self) -> torch.device:
        """The torch device the model lives on (resolved from ``device``)."""
        return resolve_device(self.device)

    def score(self, users: np.ndarray | None = None, replica: int = 0) -> np.ndarray:
        """Scores ``[len(users), n_items]`` of one replica as numpy (all users by default)."""
        users = self._users(users)
        return self.score_replicas(users)[replica].detach().cpu().numpy()

    def recommend(
        self,
        users: np.ndarray | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        replica: int = 0,
    ) -> np.ndarray:
        """Top-``k`` item indices per user, best first; rated items excluded by default."""
        users = self._users(users)
        scores = self.score_replicas(users)[replica].clone()
        if exclude_seen:
            scores = mask_seen(scores, self.train_, users)
        return torch.topk(scores, k=min(k, scores.shape[1]), dim=1).indices.cpu().numpy()

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters and their current values (scikit-learn convention)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Self:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"{self.name} has no parameter {key!r}; valid: {', '.join(valid)}"
                )
            setattr(self, key, value)
        return self

    def clone(self, **params: Any) -> Self:
        """An unfitted copy with the same parameters, some optionally changed."""
        merged = {**self.get_params(), **params}
        return type(self)(**merged)

    def _check_fit_input(self, train: Interactions | Sequence[Interactions]) -> list[Interactions]:
        """Validate ``fit``'s argument and return one dataset per replica."""
        if self.n_replicas < 1:
            raise ConfigError(f"n_replicas must be >= 1, got {self.n_replicas}")
        if isinstance(train, Interactions):
            datasets = [train] * self.n_replicas
        else:
            datasets = list(train)
            if "per_replica_data" not in self.capabilities:
                raise ConfigError(f"{self.name} cannot train each replica on its own dataset")
            if len(datasets) != self.n_replicas:
                raise ConfigError(f"got {len(datasets)} datasets for {self.n_replicas} replicas")
            shapes = {d.matrix.shape for d in datasets}
            if len(shapes) != 1:
                raise ConfigError(
                    f"per-replica datasets must share one shape, got {sorted(shapes)}"
                )
        first = datasets[0]
        if first.is_implicit and "implicit" not in self.capabilities:
            raise ConfigError(f"{self.name} needs explicit ratings; the data is implicit")
        if not first.is_implicit and "explicit" not in self.capabilities:
            raise ConfigError(f"{self.name} trains on implicit feedback; binarize the data first")
        self.train_ = first
        return datasets

    def _users(self, users: np.ndarray | None) -> np.ndarray:
        if users is None:
            return np.arange(self.train_.n_users)
        return np.asarray(users, dtype=np.int64)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def mask_seen(scores: torch.Tensor, train: Interactions, users: np.ndarray) -> torch.Tensor:
    """Set the scores of items each user rated in ``train`` to -inf ([U, I] or [R, U, I])."""
    rows = train.matrix[users]
    user_pos = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
    u = torch.as_tensor(user_pos, device=scores.device)
    i = torch.as_tensor(rows.indices.astype(np.int64), device=scores.device)
    scores[..., u, i] = -torch.inf
    return scores
