"""Torch building blocks of the NCF victims: stacked replicas and a device-side negative sampler.

``StackedNCF`` holds ``R`` independent GMF / MLP / NeuMF models (He et al., "Neural Collaborative
Filtering", WWW 2017) of one architecture as stacked parameters, so that one forward/backward pass
trains all of them:

* embedding tables are flat ``[R * n, d]`` tensors indexed with ``replica * n + index``
  (``index_select`` on a flat table has a much faster backward on CPU than
  ``weight[replica, index]``, see DESIGN.md "Performance principles");
* linear layers are batched matmuls with weights ``[R, in, out]`` and biases ``[R, 1, out]``.

Each replica's parameters are drawn from its own ``torch.Generator`` in a fixed order, so replica
``r`` of a stacked model is initialised exactly like a one-replica model with the same generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recpoison.errors import ConfigError
from recpoison.victims.lazy_adam import lazy_adam_step, unique_row_gradients

#: Standard deviation of the N(0, 0.01) embedding initialisation of NCF.
EMBEDDING_STD = 0.01


def _glorot_uniform(
    fan_in: int, fan_out: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Keras' ``glorot_uniform``, the default of NCF's hidden Dense layers."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_in, fan_out, generator=generator, device=device) * 2 - 1) * limit


def _lecun_uniform(
    fan_in: int, fan_out: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Keras' ``lecun_uniform``, NCF's initialisation of the prediction layer."""
    limit = math.sqrt(3.0 / fan_in)
    return (torch.rand(fan_in, fan_out, generator=generator, device=device) * 2 - 1) * limit


def _normal_rows(n: int, d: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(n, d, generator=generator, device=device) * EMBEDDING_STD


@dataclass
class ItemSide:
    """What :meth:`StackedNCF.full_logits` computes from the item tables alone, the same for
    every user: the GMF item embeddings as ``[R, gmf_dim, n_items]`` (contiguous, which a
    one-user batched matmul reads 4x faster than the table's strided view) and the item half of
    the MLP's first layer ``[R, n_items, h1]`` (of the prediction unit, ``[R, n_items, 1]``,
    without hidden layers); None for a tower the model lacks."""

    gmf: torch.Tensor | None
    mlp: torch.Tensor | None


class StackedNCF(nn.Module):
    """``R`` independent NCF models with stacked parameters.

    ``gmf_dim > 0`` adds the GMF tower (element-wise product of ``gmf_dim``-dimensional user and
    item embeddings); a non-empty ``mlp_layers`` adds the MLP tower (user and item embeddings of
    size ``mlp_layers[0] // 2`` concatenated, then ReLU layers ``mlp_layers[1:]``). The last
    hidden vectors of the towers are concatenated and fed to one linear prediction unit, whose
    output is the logit of ŷ_ui (NeuMF, Eq. 12 of the NCF paper; GMF and MLP are the one-tower
    cases). Biases start at zero.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        gmf_dim: int,
        mlp_layers: Sequence[int],
        generators: Sequence[torch.Generator],
        device: torch.device,
    ) -> None:
        super().__init__()
        self.n_replicas = len(generators)
        self.n_users = n_users
        self.n_items = n_items
        self.gmf_dim = gmf_dim
        self.mlp_layers = tuple(mlp_layers)
        self.mlp_dim = self.mlp_layers[0] // 2 if self.mlp_layers else 0
        out_in = gmf_dim + (self.mlp_layers[-1] if self.mlp_layers else 0)

        user_rows, item_rows = [], []
        weights: list[list[torch.Tensor]] = [[] for _ in self.mlp_layers[1:]]
        out_weights = []
        for g in generators:  # one replica after the other, each from its own generator
            user_rows.append(self._embedding_rows(n_users, g, device))
            item_rows.append(self._embedding_rows(n_items, g, device))
            for k, (fan_in, fan_out) in enumerate(
                zip(self.mlp_layers, self.mlp_layers[1:], strict=False)
            ):
                weights[k].append(_glorot_uniform(fan_in, fan_out, g, device))
            out_weights.append(_lecun_uniform(out_in, 1, g, device))
        # One table per side: columns [:gmf_dim] are the GMF embedding, the rest the MLP one, so
        # a step needs one gather (and one scatter-add backward) per side.
        self.user_table = nn.Parameter(torch.cat(user_rows))  # [R * n_users, gmf_dim + mlp_dim]
        self.item_table = nn.Parameter(torch.cat(item_rows))  # [R * n_items, gmf_dim + mlp_dim]
        self.mlp_weights = nn.ParameterList(nn.Parameter(torch.stack(w)) for w in weights)
        self.mlp_biases = nn.ParameterList(
            nn.Parameter(torch.zeros(self.n_replicas, 1, w[0].shape[1], device=device))
            for w in weights
        )
        self.out_weight = nn.Parameter(torch.stack(out_weights))  # [R, out_in, 1]
        self.out_bias = nn.Parameter(torch.zeros(self.n_replicas, 1, device=device))
        self._grad_buffers: dict[str, torch.Tensor] = {}

    # -- indexing -----------------------------------------------------------------------------
    def flat_users(self, users: torch.Tensor) -> torch.Tensor:
        """Flat table rows ``replica * n_users + user`` of ``users``: ``[n]`` shared by the
        replicas, or ``[R, n]`` with replica ``r``'s own users in row ``r``."""
        offsets = torch.arange(self.n_replicas, device=users.device)[:, None] * self.n_users
        return (offsets + users.expand(self.n_replicas, -1)).reshape(-1)

    def flat_items(self, items: torch.Tensor) -> torch.Tensor:
        """Flat table rows ``replica * n_items + item`` of ``items`` ([n], shared)."""
        offsets = torch.arange(self.n_replicas, device=items.device)[:, None] * self.n_items
        return (offsets + items[None, :]).reshape(-1)

    # -- forward --------------------------------------------------------------------------------
    def pair_logits(self, flat_users: torch.Tensor, flat_items: torch.Tensor) -> torch.Tensor:
        """Logits ``[R, n]`` of (user, item) pairs given as flat table rows of length ``R * n``."""
        return self.rows_logits(
            self.user_table.index_select(0, flat_users), self.item_table.index_select(0, flat_items)
        )

    def training_logits(
        self, flat_users: torch.Tensor, flat_items: torch.Tensor
    ) -> tuple[torch.Tensor, TableGradients]:
        """``pair_logits`` for a training step, plus the :class:`TableGradients` to apply after
        ``backward``: the embedding tables are gathered detached, so autograd stops at the
        gathered rows and the step decides how their gradients reach the tables."""
        user_rows = self.user_table.detach().index_select(0, flat_users).requires_grad_()
        item_rows = self.item_table.detach().index_select(0, flat_items).requires_grad_()
        gradients = TableGradients(
            self,
            ((self.user_table, flat_users, user_rows), (self.item_table, flat_items, item_rows)),
        )
        return self.rows_logits(user_rows, item_rows), gradients

    def _zeroed_buffer(self, table: nn.Parameter) -> torch.Tensor:
        key = "user" if table is self.user_table else "item"
        buffer = self._grad_buffers.get(key)
        if buffer is None or buffer.shape != table.shape:
            buffer = self._grad_buffers[key] = torch.zeros_like(table)
            return buffer
        return buffer.zero_()

    def rows_logits(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Logits ``[R, n]`` from gathered table rows ``[R * n, gmf_dim + mlp_dim]``."""
        return self.rows_forward(user_rows, item_rows)[0]

    def rows_forward(
        self, user_rows: torch.Tensor, item_rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(logits [R, n], h, mlp_activations)``: the logits of :meth:`rows_logits`, the
        concatenated last hidden vectors ``h`` ``[R, n, out_in]`` fed to the prediction unit,
        and the MLP tower's input and ReLU outputs, first to last (empty without the tower)."""
        R, g = self.n_replicas, self.gmf_dim
        eu = user_rows.view(R, -1, user_rows.shape[1])
        ei = item_rows.view(R, -1, item_rows.shape[1])
        parts, activations = [], []
        if g:
            parts.append(eu[:, :, :g] * ei[:, :, :g])
        if self.mlp_dim:
            x = torch.cat([eu[:, :, g:], ei[:, :, g:]], dim=2)
            activations.append(x)
            for w, b in zip(self.mlp_weights, self.mlp_biases, strict=True):
                x = torch.relu(torch.baddbmm(b, x, w))
                activations.append(x)
            parts.append(x)
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        # multiply-and-sum, not bmm: bmm with one output column rounds differently depending
        # on the number of replicas, and Adam amplifies such last-bit differences over epochs
        logits = (h * self.out_weight.transpose(1, 2)).sum(dim=2) + self.out_bias
        return logits, h, activations

    def full_logits(self, users: torch.Tensor, item_side: ItemSide | None = None) -> torch.Tensor:
        """Logits ``[R, U, n_items]`` of ``users`` for every item: ``users`` ``[U]`` shared by the
        replicas, or ``[R, U]`` with each replica's own users.

        The GMF tower and the prediction unit are linear in the item embedding, so the GMF part
        is one batched matmul; the first MLP layer is split into its user and item halves, which
        are computed once per user and once per item and broadcast-added. What depends on the
        items alone (:meth:`item_side`) may be passed in by a caller that scores users in
        chunks.
        """
        R, U, n_items = self.n_replicas, users.shape[-1], self.n_items
        side = self.item_side() if item_side is None else item_side
        logits = self.out_bias[:, :, None].expand(R, U, n_items)
        if side.gmf is not None:
            pu = self._user_rows(users)[:, :, : self.gmf_dim]
            w = self.out_weight[:, : self.gmf_dim, 0]  # [R, gmf_dim]
            logits = logits + torch.bmm(pu * w[:, None, :], side.gmf)
        if side.mlp is not None:
            logits = logits + self._mlp_full(users, side.mlp)
        return logits

    def item_side(self) -> ItemSide:
        """The part of :meth:`full_logits` that depends on no user (see :class:`ItemSide`)."""
        items = self.item_table.view(self.n_replicas, self.n_items, -1)
        gmf = items[:, :, : self.gmf_dim].transpose(1, 2).contiguous() if self.gmf_dim else None
        if not self.mlp_dim:
            return ItemSide(gmf, None)
        mi = items[:, :, self.gmf_dim :]
        if not self.mlp_weights:  # no hidden layer: the item half of the prediction unit
            return ItemSide(gmf, torch.bmm(mi, self.out_weight[:, self.gmf_dim + self.mlp_dim :]))
        return ItemSide(gmf, torch.bmm(mi, self.mlp_weights[0][:, self.mlp_dim :]))

    def _mlp_full(self, users: torch.Tensor, item_part: torch.Tensor) -> torch.Tensor:
        R, U, n_items, d = self.n_replicas, users.shape[-1], self.n_items, self.mlp_dim
        mu = self._user_rows(users)[:, :, self.gmf_dim :]
        w_out = self.out_weight[:, self.gmf_dim :, :]  # [R, last, 1]
        if not self.mlp_weights:  # no hidden layer: the concatenation feeds the prediction unit
            return torch.bmm(mu, w_out[:, :d]) + item_part.transpose(1, 2)
        w1, b1 = self.mlp_weights[0], self.mlp_biases[0]
        user_part = torch.baddbmm(b1, mu, w1[:, :d])  # [R, U, h1]
        # in-place ReLUs: no autograd formula here needs the pre-activations
        x = (user_part[:, :, None, :] + item_part[:, None, :, :]).relu_()
        x = x.view(R, U * n_items, -1)
        for w, b in zip(self.mlp_weights[1:], self.mlp_biases[1:], strict=True):
            x = torch.baddbmm(b, x, w).relu_()
        return torch.bmm(x, w_out).view(R, U, n_items)

    def _user_rows(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.user_table.index_select(0, self.flat_users(users))
        return rows.view(self.n_replicas, users.shape[-1], -1)

    def _embedding_rows(
        self, n: int, generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """``n`` rows of one replica's table: GMF columns drawn first, then MLP columns."""
        parts = [_normal_rows(n, d, generator, device) for d in (self.gmf_dim, self.mlp_dim) if d]
        return torch.cat(parts, dim=1)

    def pair_width(self) -> int:
        """Widest per-pair intermediate of ``full_logits`` (to size score chunks)."""
        return max(1, self.mlp_layers[1] if len(self.mlp_layers) > 1 else 1)

    # -- growth --------------------------------------------------------------------------------
    def grow_users(
        self,
        n_new: int,
        generators: Sequence[torch.Generator],
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        """Append ``n_new`` users to every replica, their embeddings drawn N(0, 0.01) from each
        replica's generator; the optimizer's per-element state is padded with zeros for them."""
        if n_new <= 0:
            return
        rows = torch.stack(
            [self._embedding_rows(n_new, g, self.user_table.device) for g in generators]
        )  # [R, n_new, d]
        old = self.user_table
        d = old.shape[1]
        grown = torch.cat([old.detach().view(self.n_replicas, self.n_users, d), rows], dim=1)
        new = nn.Parameter(grown.view(-1, d))
        if optimizer is not None:
            _swap_parameter(optimizer, old, new, self.n_users, n_new)
        self.user_table = new
        self.n_users += n_new


def _swap_parameter(
    optimizer: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter, n_rows: int, n_new: int
) -> None:
    """Replace the stacked table ``old`` by its grown copy ``new`` in ``optimizer``; per-element
    state (Adam's moments) gets zero rows for the ``n_new`` users appended to each replica."""
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state is None:
        return
    grown = {}
    for key, value in state.items():
        if torch.is_tensor(value) and value.shape == old.shape:
            value = value.view(-1, n_rows, old.shape[1])
            value = torch.cat([value, value.new_zeros(value.shape[0], n_new, value.shape[2])], 1)
            value = value.view(new.shape)
        grown[key] = value
    optimizer.state[new] = grown


class TableGradients:
    """The gradients of the embedding rows a training step gathered (see ``training_logits``).

    ``add_dense`` gives each table the dense gradient autograd through ``index_select`` would:
    accumulated into a buffer kept between steps (a fresh ``[R * n_items, d]`` gradient per step
    is a large allocation that the CPU allocator returns to the OS each time, and the page
    faults of re-allocating it cost about a fifth of a step at R = 30). ``apply_lazy`` instead
    updates only the gathered rows with lazy Adam (:mod:`recpoison.victims.lazy_adam`).
    """

    def __init__(
        self,
        module: StackedNCF,
        gathered: tuple[tuple[nn.Parameter, torch.Tensor, torch.Tensor], ...],
    ) -> None:
        """``gathered`` holds ``(table, flat rows, g)`` per table: ``g`` is either the gathered
        rows as an autograd leaf (their ``.grad`` is read after ``backward``) or, from
        :func:`~recpoison.victims.ncf_backward.bce_step`, the rows' gradient itself."""
        self.module = module
        self.gathered = gathered

    def _row_gradients(self) -> list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]]:
        return [
            (table, index, rows.grad if rows.requires_grad else rows)
            for table, index, rows in self.gathered
        ]

    def add_dense(self) -> None:
        """Add the tables' dense gradients (to any an extra loss set through autograd)."""
        for table, index, grads in self._row_gradients():
            if table.grad is None:
                table.grad = self.module._zeroed_buffer(table)
            table.grad.index_add_(0, index, grads)

    def apply_lazy(self, optimizer: torch.optim.Adam) -> None:
        """Lazy Adam step of the gathered rows of each table (their ``.grad`` stays None)."""
        for table, index, grads in self._row_gradients():
            lazy_adam_step(optimizer, table, *unique_row_gradients(index, grads))


class NegativeSampler:
    """Uniform negative items per user, never a user's positive or excluded item, on the device.

    The forbidden items of each user (training positives plus an optional held-out item) are kept
    as one sorted key array. To draw a negative for user ``u`` with ``m_u`` forbidden items
    ``f_0 < f_1 < ...``, draw ``j`` uniform in ``[0, n_items - m_u)``; the ``j``-th allowed item is
    ``j + #{i : f_i - i <= j}``, and that count is one ``searchsorted`` over the keys
    ``u * n_items + f_i - i``. This samples uniformly over the allowed items (up to the float64
    rounding of ``j``), without rejection rounds, Python loops or host/device synchronisation.
    """

    def __init__(
        self, matrix: sp.csr_matrix, exclude_items: np.ndarray | None, device: torch.device
    ) -> None:
        n_users, n_items = matrix.shape
        indptr = np.asarray(matrix.indptr)
        rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
        keys = rows * n_items + matrix.indices.astype(np.int64)
        if exclude_items is not None:
            exclude = np.asarray(exclude_items, dtype=np.int64)
            if exclude.shape != (n_users,) or np.any(exclude >= n_items) or np.any(exclude < -1):
                raise ConfigError(
                    f"exclude_items must hold one item index per user (-1 = none), "
                    f"shape ({n_users},), values in [-1, {n_items})"
                )
            users = np.flatnonzero(exclude >= 0)
            keys = np.concatenate([keys, users * n_items + exclude[users]])
        keys = np.unique(keys)
        key_users = keys // n_items
        counts = np.bincount(key_users, minlength=n_users)
        has_positive = np.diff(indptr) > 0
        full = np.flatnonzero(has_positive & (counts >= n_items))
        if len(full):
            raise ConfigError(
                f"user {int(full[0])} has interacted with (or excludes) every item; "
                "no negative can be sampled for it — drop such users first"
            )
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(keys)) - starts[key_users]
        self.n_items = n_items
        self.device = device
        self._shifted = torch.as_tensor(keys - rank, device=device)
        self._starts = torch.as_tensor(starts, device=device)
        self._n_allowed = torch.as_tensor(n_items - counts, device=device)

    def sample(self, users: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` negative items per entry of ``users`` ([m] on the device) -> int64 ``[m, n]``."""
        allowed = self._n_allowed[users][:, None]
        u = torch.rand(
            users.shape[0], n, generator=generator, device=self.device, dtype=torch.float64
        )
        j = torch.minimum((u * allowed).long(), allowed - 1)
        query = users[:, None] * self.n_items + j
        below = torch.searchsorted(self._shifted, query, right=True) - self._starts[users][:, None]
        return j + below


#: Negatives fixed once for some users: ``{user: items}`` for every replica, or one per replica.
FixedNegatives = Mapping[int, np.ndarray] | Sequence[Mapping[int, np.ndarray]]


@dataclass(frozen=True)
class FixedRows:
    """Where fixed negatives go in an epoch's instances (see :func:`fixed_negative_rows`)."""

    positions: torch.Tensor  # [m] rows of the [n_pos, n_neg] negative table
    items: torch.Tensor  # [m, n_neg] their fixed negative items
    dropped: torch.Tensor | None  # [n_pos * (1 + n_neg)] bool: instances left out, or None


@dataclass(frozen=True)
class ReplicaData:
    """One replica's training positives, its negative sampler and its fixed negatives."""

    users: torch.Tensor
    items: torch.Tensor
    sampler: NegativeSampler
    fixed: FixedRows | None

    def n_instances(self, n_negatives: int) -> int:
        total = len(self.users) * (1 + n_negatives)
        if self.fixed is not None and self.fixed.dropped is not None:
            total -= int(self.fixed.dropped.sum())
        return total


def per_replica_negatives(
    fixed: FixedNegatives | None, n_replicas: int
) -> list[Mapping[int, np.ndarray] | None]:
    """``fixed`` as one mapping (or None) per replica."""
    if fixed is None or isinstance(fixed, Mapping):
        return [fixed] * n_replicas
    fixed = list(fixed)
    if len(fixed) != n_replicas:
        raise ConfigError(f"got {len(fixed)} fixed-negative mappings for {n_replicas} replicas")
    return fixed


def fixed_negative_rows(
    matrix: sp.csr_matrix,
    fixed: Mapping[int, np.ndarray] | None,
    n_negatives: int,
    device: torch.device,
) -> FixedRows | None:
    """Place fixed negatives in the instance layout of one epoch.

    The positives of user ``u`` are rows ``indptr[u]:indptr[u+1]`` of the ``[n_pos, n_neg]``
    table of sampled negatives (CSR order). ``fixed[u]`` holds ``n_pos_u * n_negatives`` items,
    positive by positive, which replace the sampled ones in every epoch; an empty array means
    the user gets no negative at all (its negative instances are dropped). This is how the
    authors of Huang et al. train their poison model: a fake user's negatives are drawn once,
    and the fake user being generated has only its target positive.
    """
    if not fixed:
        return None
    indptr = np.asarray(matrix.indptr)
    n_pos = int(indptr[-1])
    positions, items, dropped = [], [], np.zeros(n_pos * (1 + n_negatives), dtype=bool)
    for user, negatives in fixed.items():
        rows = np.arange(indptr[user], indptr[user + 1])
        negatives = np.asarray(negatives, dtype=np.int64)
        if len(negatives) == 0:
            for slot in range(1, n_negatives + 1):
                dropped[slot * n_pos + rows] = True
            continue
        if len(negatives) != len(rows) * n_negatives:
            raise ConfigError(
                f"user {user} has {len(rows)} positives, so {len(rows) * n_negatives} fixed "
                f"negatives are needed; got {len(negatives)}"
            )
        positions.append(rows)
        items.append(negatives.reshape(len(rows), n_negatives))
    empty = np.zeros((0, n_negatives), dtype=np.int64)
    return FixedRows(
        positions=torch.as_tensor(np.concatenate([empty[:, 0], *positions]), device=device),
        items=torch.as_tensor(np.concatenate([empty, *items]), device=device),
        dropped=torch.as_tensor(dropped, device=device) if dropped.any() else None,
    )
