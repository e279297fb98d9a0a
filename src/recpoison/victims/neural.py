"""NCF victims: GMF, MLP and NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017).

NeuMF is the target recommender of Huang et al. (ICDE 2021, Sec. III and V-A): a GMF tower and
an MLP tower over separate user/item embeddings, their last hidden layers concatenated into one
linear prediction unit with a sigmoid output, trained on implicit (binarized) feedback with binary
cross-entropy and sampled negatives. Defaults follow NCF's published settings as Huang uses them:
GMF embedding size 8, MLP layers 64-32-16-8 (user and item embeddings of 32 concatenated),
4 negatives per positive, Adam with learning rate 1e-3, batch 256, 20 epochs, N(0, 0.01)
embedding initialisation. NeuMF is trained from scratch (no GMF/MLP pre-training). No model
selection on test data: every model trains for exactly ``epochs`` epochs.

All three train ``n_replicas`` independent models *together* (stacked parameters, one batched
forward/backward per step, see :mod:`recpoison.victims.neural_modules`). Replica ``r`` uses seed
``replica_seeds(random_state, n_replicas)[r]`` for its initialisation, its negatives and its
shuffling, so it equals a one-replica model built with ``seeds=[that seed]`` trained on the same
data, up to floating-point rounding. Adam is element-wise, so one optimizer over the stacked
parameters is the same as one optimizer per replica. ``optimizer="lazy-adam"`` moves only the
embedding rows a batch used (:mod:`recpoison.victims.lazy_adam`): a change to NCF's update rule
that makes small batches several times faster on a CPU (README, "Training speed").

Epochs: in each epoch replica ``r`` draws ``n_negatives`` fresh negatives for each of its
positives (uniform over the items the user has not interacted with, never a training positive or
an item in ``exclude_items``), shuffles the ``n_pos * (1 + n_negatives)`` instances and walks them
in mini-batches of ``batch_size`` instances, as NCF's training loop does. With per-replica
datasets of different sizes, every replica takes the same number of steps: the longest replica
sets the epoch length ``L``, and a replica with fewer instances walks a random permutation of all
of its own instances followed by ``L - n_instances`` of them drawn uniformly with replacement.
So every instance is seen at least once per epoch; exact equivalence with training alone holds
when all datasets have the same number of interactions (the usual case: equal attack sizes and
filler counts), otherwise a smaller replica sees up to ``L / n_instances`` times more samples.
"""

from __future__ import annotations

import copy
import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender, replica_seeds
from recpoison.victims.ncf_backward import bce_step
from recpoison.victims.neural_modules import (
    FixedNegatives,
    NegativeSampler,
    ReplicaData,
    StackedNCF,
    fixed_negative_rows,
    per_replica_negatives,
)

logger = logging.getLogger(__name__)

#: ``adam``: NCF's dense Adam; ``lazy-adam``: embedding rows a batch did not use stay put
#: (:mod:`recpoison.victims.lazy_adam`).
OPTIMIZERS = ("adam", "lazy-adam")

#: Largest per-chunk intermediate (elements) when scoring every item for many users, per device
#: type. On a CPU a chunk stays under glibc's 32 MiB ceiling for heap allocations, so each chunk
#: reuses the memory the last one freed; larger intermediates are mapped afresh and page-faulted
#: on every chunk (2^25: 2.9x slower for a 3-replica NeuMF; benchmarks/README.md, "Scoring").
SCORE_CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**25}

ProgressCallback = Callable[[int, int], None]


class NCFRecommender(Recommender):
    """Shared training, scoring and attack hooks of GMF, MLP and NeuMF (see the module doc).

    Fitted attributes: ``module_`` (the :class:`StackedNCF`), ``optimizer_`` (Adam over it),
    ``generators_`` (one ``torch.Generator`` per replica, also used by ``partial_fit``),
    ``seeds_``, ``exclude_items_``, ``loss_history_`` (``[epochs so far, R]`` mean training BCE of
    each replica per epoch) and the base's ``train_``.
    """

    capabilities = frozenset({"implicit", "differentiable", "batched_replicas", "per_replica_data"})

    def __init__(
        self,
        *,
        n_negatives: int,
        lr: float,
        batch_size: int,
        epochs: int,
        weight_decay: float,
        optimizer: str,
        seeds: Sequence[int] | None,
        n_replicas: int,
        random_state: RandomState,
        device: str,
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.n_negatives = n_negatives
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.seeds = seeds

    @abstractmethod
    def _towers(self) -> tuple[int, tuple[int, ...]]:
        """``(gmf_dim, mlp_layers)`` of the architecture; 0 / () for an absent tower."""

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        train: Interactions | Sequence[Interactions],
        exclude_items: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
        fixed_negatives: FixedNegatives | None = None,
    ) -> Self:
        """Train every replica from scratch for ``epochs`` epochs.

        ``train`` is one implicit dataset for all replicas or a sequence of ``n_replicas`` of one
        shape (replica ``r`` trains on dataset ``r``). ``exclude_items`` gives one item per user
        (``-1`` = none) never sampled as a negative, e.g. the held-out leave-one-out item.
        ``progress(epoch, epochs)`` is called after each epoch. ``fixed_negatives`` (one mapping
        for every replica, or one per replica) gives some users negatives drawn once and kept for
        every epoch instead of fresh ones, see :func:`fixed_negative_rows`.
        """
        datasets = self._check_fit_input(train)
        n_users, n_items = datasets[0].matrix.shape
        self.module_ = self.initial_module(n_users, n_items)
        # fused: one kernel over each stacked tensor, ~4x faster than the default on CPU
        self.optimizer_ = torch.optim.Adam(
            self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True
        )
        self.exclude_items_ = None if exclude_items is None else np.asarray(exclude_items)
        self.loss_history_ = np.empty((0, self.n_replicas))
        self._train(datasets, self.epochs, None, 0.0, progress, fixed_negatives)
        return self

    def initial_module(self, n_users: int, n_items: int) -> StackedNCF:
        """The untrained model ``fit`` starts from on ``n_users x n_items`` data (sets
        ``seeds_`` and ``generators_``); meta-gradient attacks train it functionally."""
        gmf_dim, layers = self._check_params()
        device = self.device_
        self.seeds_ = (
            list(self.seeds)
            if self.seeds is not None
            else replica_seeds(self.random_state, self.n_replicas)
        )
        self.generators_ = [torch.Generator(device=device).manual_seed(s) for s in self.seeds_]
        return StackedNCF(n_users, n_items, gmf_dim, layers, self.generators_, device)

    def partial_fit(
        self,
        train: Interactions | Sequence[Interactions],
        epochs: int,
        extra_loss: Callable[[NCFRecommender], torch.Tensor] | None = None,
        lam: float = 1.0,
        exclude_items: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
        fixed_negatives: FixedNegatives | None = None,
    ) -> Self:
        """Continue training the current parameters and Adam state on ``train`` for ``epochs``.

        ``train`` may have more users than the data seen so far (new users appended last, as
        :meth:`Interactions.with_fake_users` does); their embeddings start N(0, 0.01) from each
        replica's generator and their Adam moments at zero. Per batch the loss is the summed BCE
        of the replicas plus ``lam * extra_loss(self)`` when given (Huang et al.'s poison
        training, Eq. 6). Without ``exclude_items`` the ones given to ``fit`` stay excluded
        (new users exclude nothing). ``fixed_negatives`` as in :meth:`fit`.
        """
        self._check_fitted()
        self._check_params()
        first = train if isinstance(train, Interactions) else next(iter(train))
        n_users, n_items = first.matrix.shape
        if n_items != self.module_.n_items or n_users < self.module_.n_users:
            raise ConfigError(
                f"partial_fit needs {self.module_.n_items} items and at least "
                f"{self.module_.n_users} users (new users appended last); "
                f"got {n_users} x {n_items}"
            )
        if epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {epochs}")
        datasets = self._check_fit_input(train)
        self.module_.grow_users(n_users - self.module_.n_users, self.generators_, self.optimizer_)
        if exclude_items is not None:
            self.exclude_items_ = np.asarray(exclude_items)
        elif self.exclude_items_ is not None:
            padding = np.full(n_users - len(self.exclude_items_), -1)
            self.exclude_items_ = np.concatenate([self.exclude_items_, padding])
        self._train(datasets, epochs, extra_loss, lam, progress, fixed_negatives)
        return self

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """One step of the model's own Adam on ``loss`` alone (a differentiable function of the
        parameters, e.g. from :meth:`forward_scores`): the moments carry over from training.

        This is how the authors of Huang et al. apply the attack loss (one step per normal user,
        then one on the fake users' norm term) between epochs of ordinary training."""
        self._check_fitted()
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_.step()

    def _train(
        self,
        datasets: list[Interactions],
        epochs: int,
        extra_loss: Callable[[NCFRecommender], torch.Tensor] | None,
        lam: float,
        progress: ProgressCallback | None,
        fixed_negatives: FixedNegatives | None = None,
    ) -> None:
        device, module = self.device_, self.module_
        fixed = per_replica_negatives(fixed_negatives, len(datasets))
        prepared: dict[tuple[int, int], ReplicaData] = {}
        for data, fixed_r in zip(datasets, fixed, strict=True):
            key = (id(data), id(fixed_r))
            if key not in prepared:
                if data.n_ratings == 0:
                    raise ConfigError(f"{data.name}: no interactions to train on")
                users, items, _ = data.triples()
                prepared[key] = ReplicaData(
                    torch.as_tensor(users, device=device),
                    torch.as_tensor(items, device=device),
                    NegativeSampler(data.matrix, self.exclude_items_, device),
                    fixed_negative_rows(data.matrix, fixed_r, self.n_negatives, device),
                )
        per_replica = [prepared[(id(d), id(f))] for d, f in zip(datasets, fixed, strict=True)]
        length = max(r.n_instances(self.n_negatives) for r in per_replica)
        # with an extra loss the tables get dense gradients through autograd: dense Adam then
        lazy = self.optimizer == "lazy-adam" and extra_loss is None
        history = []
        module.train()
        for epoch in range(epochs):
            flat_users, flat_items, labels = self._epoch_instances(per_replica, length)
            totals = torch.zeros(self.n_replicas, device=device)
            for start in range(0, length, self.batch_size):
                stop = start + self.batch_size
                batch_users = flat_users[:, start:stop].reshape(-1)
                batch_items = flat_items[:, start:stop].reshape(-1)
                self.optimizer_.zero_grad(set_to_none=True)
                if extra_loss is None:  # closed-form backward: no autograd overhead
                    bce_sums, table_gradients = bce_step(
                        module, batch_users, batch_items, labels[:, start:stop]
                    )
                else:
                    logits, table_gradients = module.training_logits(batch_users, batch_items)
                    bce = F.binary_cross_entropy_with_logits(
                        logits, labels[:, start:stop], reduction="none"
                    )
                    loss = bce.mean(dim=1).sum()  # each replica's gradient: its own mean BCE's
                    (loss + lam * extra_loss(self)).backward()
                    bce_sums = bce.detach().sum(dim=1)
                if lazy:  # tables keep grad None: Adam skips them, lazy Adam moves their rows
                    self.optimizer_.step()
                    table_gradients.apply_lazy(self.optimizer_)
                else:
                    table_gradients.add_dense()
                    self.optimizer_.step()
                totals += bce_sums
            history.append((totals / length).cpu().numpy())
            logger.info(
                "%s: epoch %d/%d, mean training loss %.4f (%d replicas, %.4f-%.4f)",
                self.name,
                epoch + 1,
                epochs,
                history[-1].mean(),
                self.n_replicas,
                history[-1].min(),
                history[-1].max(),
            )
            if progress is not None:
                progress(epoch + 1, epochs)
        if history:
            self.loss_history_ = np.vstack([self.loss_history_, np.stack(history)])

    def _epoch_instances(
        self, per_replica: list[ReplicaData], length: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shuffled training instances of one epoch: flat user rows, flat item rows and labels,
        each ``[R, length]``; replica ``r`` draws everything from its own generator."""
        R, device, n_neg = self.n_replicas, self.device_, self.n_negatives
        flat_users = torch.empty(R, length, dtype=torch.int64, device=device)
        flat_items = torch.empty(R, length, dtype=torch.int64, device=device)
        labels = torch.empty(R, length, dtype=torch.float32, device=device)
        for r, replica in enumerate(per_replica):
            g = self.generators_[r]
            users, items = replica.users, replica.items
            n_pos = len(users)
            negatives = replica.sampler.sample(users, n_neg, g)  # [n_pos, n_neg]
            inst_users = users.repeat(1 + n_neg)  # positives first, then negative slot 1, 2, ...
            if replica.fixed is not None:
                negatives[replica.fixed.positions] = replica.fixed.items
            inst_items = torch.cat([items, negatives.T.reshape(-1)])
            if replica.fixed is not None and replica.fixed.dropped is not None:
                keep = replica.fixed.dropped.logical_not()
                inst_users, inst_items = inst_users[keep], inst_items[keep]
            n_inst = len(inst_users)
            order = torch.randperm(n_inst, generator=g, device=device)
            if n_inst < length:
                extra = torch.randint(n_inst, (length - n_inst,), generator=g, device=device)
                order = torch.cat([order, extra])
            flat_users[r] = inst_users[order] + r * self.module_.n_users
            flat_items[r] = inst_items[order] + r * self.module_.n_items
            labels[r] = (order < n_pos).float()
        return flat_users, flat_items, labels

    # -- scoring ------------------------------------------------------------------------------
    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Logits (log-odds of ŷ) ``[R, len(users), n_items]`` on the model's device, no grad.

        Logits rank exactly like ŷ = sigmoid(logit) but do not saturate to ties in float32.
        Users are scored in chunks so that intermediates stay below ``SCORE_CHUNK_ELEMENTS``
        of the device's type; what depends on the items alone is computed once for all.
        """
        self._check_fitted()
        index = self._user_index(users)
        module = self.module_
        out = torch.empty(self.n_replicas, len(index), module.n_items, device=self.device_)
        per_user = self.n_replicas * module.n_items * module.pair_width()
        budget = SCORE_CHUNK_ELEMENTS.get(self.device_.type, SCORE_CHUNK_ELEMENTS["cuda"])
        chunk = max(1, budget // per_user)
        module.eval()
        with torch.no_grad():
            item_side = module.item_side()  # the same for every chunk of users
            for start in range(0, len(index), chunk):
                out[:, start : start + chunk] = module.full_logits(
                    index[start : start + chunk], item_side
                )
        return out

    def forward_scores(
        self,
        users: torch.Tensor | np.ndarray,
        items: torch.Tensor | np.ndarray,
        *,
        logits: bool = False,
    ) -> torch.Tensor:
        """Differentiable ŷ (or its logit) ``[R, n]`` of the pairs ``(users[k], items[k])``,
        the same pairs for every replica."""
        self._check_fitted()
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ConfigError(
                f"users and items must pair up, got {tuple(u.shape)} and {tuple(i.shape)}"
            )
        out = self.module_.pair_logits(self.module_.flat_users(u), self.module_.flat_items(i))
        return out if logits else torch.sigmoid(out)

    def scores_with_grad(
        self, users: torch.Tensor | np.ndarray, *, logits: bool = False
    ) -> torch.Tensor:
        """Differentiable ŷ (or its logit) ``[R, len(users), n_items]`` for every item.

        Not chunked: autograd keeps the intermediates (``R * len(users) * n_items * layers[1]``
        floats for MLP towers), so pass the users you need, not all of them."""
        self._check_fitted()
        out = self.module_.full_logits(self._user_index(users))
        return out if logits else torch.sigmoid(out)

    # -- copies and checks --------------------------------------------------------------------
    def copy_fitted(self) -> Self:
        """A deep copy with the fitted state (parameters, Adam state, generators); the training
        data (immutable) is shared. Training the copy leaves this model unchanged."""
        self._check_fitted()
        memo = {
            id(self.train_): self.train_,
            id(self.module_._grad_buffers): {},
        }  # scratch gradient buffers are not state
        return copy.deepcopy(self, memo=memo)

    def _check_params(self) -> tuple[int, tuple[int, ...]]:
        gmf_dim, layers = self._towers()
        checks = [
            (isinstance(self.n_replicas, int) and self.n_replicas >= 1, "n_replicas must be >= 1"),
            (
                isinstance(self.n_negatives, int) and self.n_negatives >= 1,
                "n_negatives must be >= 1",
            ),
            (self.lr > 0, "lr must be > 0"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size must be >= 1"),
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be >= 1"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (
                self.optimizer in OPTIMIZERS,
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
            ),
            (
                self.seeds is None or len(self.seeds) == self.n_replicas,
                "seeds must give one seed per replica",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.name}: {message} ({self!r})")
        return gmf_dim, layers

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise ConfigError(f"{self.name} is not fitted yet; call fit first")

    def _user_index(self, users: torch.Tensor | np.ndarray) -> torch.Tensor:
        return _index(users, self.module_.n_users, "user", self.device_)

    def _item_index(self, items: torch.Tensor | np.ndarray) -> torch.Tensor:
        return _index(items, self.module_.n_items, "item", self.device_)


def _index(
    values: torch.Tensor | np.ndarray, size: int, what: str, device: torch.device
) -> torch.Tensor:
    """Indices as an int64 tensor on ``device``; bounds are checked unless they already live on
    an accelerator (checking there would synchronise every training step of an attack)."""
    on_accelerator = torch.is_tensor(values) and values.device.type != "cpu"
    index = torch.as_tensor(values, device=device).long().reshape(-1)
    if not on_accelerator and len(index) and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ConfigError(f"{what} indices must lie in [0, {size})")
    return index


def _check_embedding_dim(name: str, embedding_dim: int) -> int:
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ConfigError(f"{name}: embedding_dim must be an integer >= 1, got {embedding_dim!r}")
    return embedding_dim


def _check_layers(name: str, layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(layers)
    if not layers or not all(isinstance(n, int) and n >= 1 for n in layers) or layers[0] % 2:
        raise ConfigError(
            f"{name}: layers must be positive integers with an even first size "
            f"(user and item embeddings of layers[0] // 2), got {layers!r}"
        )
    return layers


class NeuMF(NCFRecommender):
    """Neural matrix factorization: GMF(``embedding_dim``) + MLP(``layers``) fused by one linear
    prediction unit (NCF Sec. 3.4; the target system of Huang et al., Sec. V-A)."""

    name = "neumf"

    def __init__(
        self,
        *,
        embedding_dim: int = 8,
        layers: Sequence[int] = (64, 32, 16, 8),
        n_negatives: int = 4,
        lr: float = 1e-3,
        batch_size: int = 256,
        epochs: int = 20,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        seeds: Sequence[int] | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            n_negatives=n_negatives,
            lr=lr,
            batch_size=batch_size,
            epochs=epochs,
            weight_decay=weight_decay,
            optimizer=optimizer,
            seeds=seeds,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.embedding_dim = embedding_dim
        self.layers = layers

    def _towers(self) -> tuple[int, tuple[int, ...]]:
        return (
            _check_embedding_dim(self.name, self.embedding_dim),
            _check_layers(self.name, self.layers),
        )


class GMF(NCFRecommender):
    """Generalized matrix factorization: element-wise product of ``embedding_dim``-dimensional
    user and item embeddings, one linear prediction unit, sigmoid (NCF Sec. 3.2)."""

    name = "gmf"

    def __init__(
        self,
        *,
        embedding_dim: int = 8,
        n_negatives: int = 4,
        lr: float = 1e-3,
        batch_size: int = 256,
        epochs: int = 20,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        seeds: Sequence[int] | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            n_negatives=n_negatives,
            lr=lr,
            batch_size=batch_size,
            epochs=epochs,
            weight_decay=weight_decay,
            optimizer=optimizer,
            seeds=seeds,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.embedding_dim = embedding_dim

    def _towers(self) -> tuple[int, tuple[int, ...]]:
        return _check_embedding_dim(self.name, self.embedding_dim), ()


class MLP(NCFRecommender):
    """Multi-layer perceptron over concatenated user and item embeddings of ``layers[0] // 2``,
    ReLU layers ``layers[1:]``, one linear prediction unit, sigmoid (NCF Sec. 3.3)."""

    name = "mlp"

    def __init__(
        self,
        *,
        layers: Sequence[int] = (64, 32, 16, 8),
        n_negatives: int = 4,
        lr: float = 1e-3,
        batch_size: int = 256,
        epochs: int = 20,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        seeds: Sequence[int] | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            n_negatives=n_negatives,
            lr=lr,
            batch_size=batch_size,
            epochs=epochs,
            weight_decay=weight_decay,
            optimizer=optimizer,
            seeds=seeds,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.layers = layers

    def _towers(self) -> tuple[int, tuple[int, ...]]:
        return 0, _check_layers(self.name, self.layers)
