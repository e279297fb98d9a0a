"""Meta-gradient attacks through appended users (Aravind, thesis §3.11-3.12, Algorithm 5).

* ``meta-new-users`` (Algorithm 5): ``new_users`` users without interactions are appended
  (``is_fake`` set); all their ``new_users x n_items`` entries join the training pairs as
  negatives (``D_new``) and are the only entries that may be flipped. The real users' pairs
  (interactions plus sampled negatives) are trained on but never flipped.
* ``meta-similar-users`` (§3.12): the appended users start similar to real ones, then are
  attacked as in Algorithm 5. ``seeding="sample"`` (method 1): each new user copies a random
  ``item_fraction`` of the items of a randomly chosen real user; those seeded interactions are
  part of the appended rows, not of the budget (``info["seeded_edges"]``).
  ``seeding="kmeans"`` (method 2): the surrogate is trained on the clean pairs for T steps, its
  real users' embeddings are clustered with scikit-learn's ``KMeans`` into ``new_users``
  clusters, and the centroids become the new users' embeddings in θ_0 of every inner training
  (the new users have no interactions). The victim retrains from its own initialisation, so
  only the flips carry over to it -- one reason the thesis finds these attacks ineffective
  (§4.5-4.6).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans

from recpoison.attacks.meta import EdgeProblem, MetaAttack, new_users_problem
from recpoison.attacks.meta_gradient import OPTIMIZERS, FunctionalNCF, Params
from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import derive_seed


class MetaNewUsersAttack(MetaAttack):
    """Algorithm 5: flip only the edges of ``new_users`` appended empty users (see module doc).
    The other parameters are ``meta``'s."""

    name = "meta-new-users"

    def __init__(
        self,
        *,
        new_users: int = 20,
        steps: int = 100,
        lr: float = 0.01,
        optimizer: str = "adam",
        negative_ratio: float = 1.0,
        flips_per_step: int = 1,
        max_memory_gb: float = 16.0,
    ) -> None:
        super().__init__(
            steps=steps,
            lr=lr,
            optimizer=optimizer,
            negative_ratio=negative_ratio,
            flips_per_step=flips_per_step,
            max_memory_gb=max_memory_gb,
        )
        self.new_users = new_users

    def _new_rows(self, train: Interactions, rng: np.random.Generator) -> sp.csr_matrix:
        """The appended users' initial interactions (none for Algorithm 5)."""
        return sp.csr_matrix((self.new_users, train.n_items), dtype=np.float32)

    def _problem(self, train: Interactions, rng: np.random.Generator) -> EdgeProblem:
        if isinstance(self.new_users, bool) or not isinstance(self.new_users, int):
            raise ConfigError(f"{self.name}: new_users must be an integer >= 1")
        if self.new_users < 1:
            raise ConfigError(f"{self.name}: new_users must be >= 1, got {self.new_users}")
        return new_users_problem(train, self._new_rows(train, rng), self.negative_ratio, rng)


class MetaSimilarUsersAttack(MetaNewUsersAttack):
    """§3.12: appended users seeded from real users (``seeding="sample"``, a random
    ``item_fraction`` of one real user's items each) or from k-means centroids of the trained
    user embeddings (``seeding="kmeans"``), then attacked as in Algorithm 5."""

    name = "meta-similar-users"

    def __init__(
        self,
        *,
        new_users: int = 20,
        seeding: str = "sample",
        item_fraction: float = 0.5,
        steps: int = 100,
        lr: float = 0.01,
        optimizer: str = "adam",
        negative_ratio: float = 1.0,
        flips_per_step: int = 1,
        max_memory_gb: float = 16.0,
    ) -> None:
        super().__init__(
            new_users=new_users,
            steps=steps,
            lr=lr,
            optimizer=optimizer,
            negative_ratio=negative_ratio,
            flips_per_step=flips_per_step,
            max_memory_gb=max_memory_gb,
        )
        self.seeding = seeding
        self.item_fraction = item_fraction

    def _new_rows(self, train: Interactions, rng: np.random.Generator) -> sp.csr_matrix:
        if self.seeding not in ("sample", "kmeans"):
            raise ConfigError(f"{self.name}: seeding must be 'sample' or 'kmeans'")
        if not 0 < self.item_fraction <= 1:
            raise ConfigError(f"{self.name}: item_fraction must be in (0, 1]")
        real = np.flatnonzero(~train.is_fake & (np.diff(train.matrix.indptr) > 0))
        if self.new_users > len(real):
            raise ConfigError(
                f"{self.name}: {self.new_users} new users but only {len(real)} real users "
                "with interactions to copy or cluster"
            )
        if self.seeding == "kmeans":
            return super()._new_rows(train, rng)
        sources = rng.choice(real, size=self.new_users, replace=False)
        rows, cols = [], []
        for k, user in enumerate(sources):
            items = train.matrix.indices[train.matrix.indptr[user] : train.matrix.indptr[user + 1]]
            n_keep = max(1, round(self.item_fraction * len(items)))
            cols.append(rng.choice(items, size=n_keep, replace=False))
            rows.append(np.full(n_keep, k))
        rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
        values = np.ones(len(rows_), dtype=np.float32)
        return sp.csr_matrix((values, (rows_, cols_)), shape=(self.new_users, train.n_items))

    def _start(
        self, model: FunctionalNCF, problem: EdgeProblem, rng: np.random.Generator
    ) -> Params:
        if self.seeding != "kmeans":
            return model.initial
        device = model.initial["ncf.user_table"].device
        pairs, labels = problem.tensors(device)
        trained = model.train(pairs, labels, self.steps, OPTIMIZERS[self.optimizer](self.lr))
        n_old = problem.data.n_users - self.new_users
        real = np.flatnonzero(~problem.data.is_fake[:n_old])
        embeddings = trained["ncf.user_table"][torch.as_tensor(real, device=device)]
        kmeans = KMeans(self.new_users, n_init=10, random_state=derive_seed(rng) % 2**32)
        centroids = kmeans.fit(embeddings.cpu().numpy()).cluster_centers_
        start = dict(model.initial)
        table = start["ncf.user_table"].clone()
        table[n_old:] = torch.as_tensor(centroids, dtype=table.dtype, device=device)
        start["ncf.user_table"] = table
        return start
