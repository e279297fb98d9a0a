"""``random-edges``: the baseline of Aravind's thesis (Algorithm 2, §3.8).

Each of the ``budget`` perturbations inserts a non-edge drawn uniformly at random: Algorithm 2
draws ``e' ~ A⁻``, an edge of the sampled negatives, and since the negatives are a uniform
sample of the non-edges, a uniform draw among all non-edges has the same distribution (and
needs no negative set). The surrogate training of Algorithm 2 (lines 2-8) only logs the
surrogate's accuracy and does not influence the choice, so it is not run. With ``new_users``
(§3.11, Algorithm 5's baseline) that many empty users are appended first and only their edges
may be inserted.
"""

from __future__ import annotations

import logging

import numpy as np

from recpoison.attacks.base import EdgeAttack, EdgePerturbation
from recpoison.attacks.edges import append_empty_users, apply_flips
from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)


class RandomEdgesAttack(EdgeAttack):
    """Insert ``budget`` uniformly random non-edges (of real users, or of ``new_users`` new
    empty users appended for the attack)."""

    name = "random-edges"

    def __init__(self, *, new_users: int = 0) -> None:
        self.new_users = new_users

    def perturb(
        self,
        train: Interactions,
        budget: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> EdgePerturbation:
        if not train.is_implicit:
            raise ConfigError(f"{self.name} flips implicit edges; add `binarize` to the transforms")
        if self.new_users < 0:
            raise ConfigError(f"{self.name}: new_users must be >= 0, got {self.new_users}")
        if budget < 1:
            raise ConfigError(f"{self.name}: the budget must be >= 1 flip, got {budget}")
        data = append_empty_users(train, self.new_users) if self.new_users else train
        users = (
            np.arange(train.n_users, data.n_users)
            if self.new_users
            else np.flatnonzero(~train.is_fake)
        )
        n_free = len(users) * data.n_items - int(data.matrix[users].nnz)
        if budget > n_free:
            raise ConfigError(
                f"{self.name}: a budget of {budget} flips exceeds the {n_free} non-edges "
                "that may be inserted; lower the size or raise new_users"
            )
        chosen = _sample_non_edges(data, users, budget, check_random_state(random_state))
        flips = np.column_stack(
            [chosen // data.n_items, chosen % data.n_items, np.ones_like(chosen)]
        )
        logger.info("%s: %d random insertions", self.name, budget)
        return EdgePerturbation(apply_flips(data, flips), flips, {"new_users": self.new_users})


def _sample_non_edges(
    data: Interactions, users: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` distinct non-edges ``user * n_items + item`` drawn uniformly among those of
    ``users`` (rejection sampling; exact draw without replacement when the rows are dense)."""
    n_items = data.n_items
    sub = data.matrix[users]
    free = len(users) * n_items - sub.nnz
    if 4 * count > free:  # dense: enumerate the free entries
        dense = np.ones((len(users), n_items), dtype=bool)
        dense[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] = False
        rows, cols = np.nonzero(dense)
        pick = rng.choice(len(rows), size=count, replace=False)
        return users[rows[pick]] * n_items + cols[pick]
    taken = set((np.repeat(users, np.diff(sub.indptr)) * n_items + sub.indices).tolist())
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < count:
        draws = users[rng.integers(0, len(users), size=2 * count)] * n_items + rng.integers(
            0, n_items, size=2 * count
        )
        for key in draws.tolist():
            if key not in taken and key not in seen:
                seen.add(key)
                chosen.append(key)
                if len(chosen) == count:
                    break
    return np.array(chosen, dtype=np.int64)
