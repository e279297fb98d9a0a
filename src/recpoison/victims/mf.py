"""Explicit-rating matrix factorization by alternating least squares (ALS).

The victim of Li et al. 2016 (§2 Eq. 2, §3 Eq. 4, "alternating minimization") and the MF top-N
recommender of Fang et al. 2020 (§3.1 Eq. 1). No loop over users or items: the per-row normal
equations ``(λ I + Σ_{j∈Ω_i} v_j v_jᵀ) u_i = Σ_{j∈Ω_i} M_ij v_j`` of all rows (of all replicas
on a GPU, of one replica at a time on the CPU, where that is faster) are built with one
sparse-dense product and solved as one batch of Cholesky systems; from rank 12 on, a row with
fewer entries than the rank k is solved in its dual form instead (:func:`solve_rows`), rows of
one length at a time.

Regularisation convention: we minimise
``‖R_Ω(M − U Vᵀ)‖²_F + λ_U ‖U‖²_F + λ_V ‖V‖²_F``. Eq. (2) of Li et al. prints ``2λ_U, 2λ_V``
but the stationarity conditions of their §4.1 (``λ_U u_i = Σ_j (M_ij − u_iᵀ v_j) v_j``) and the
gradient of Eq. (12) only hold with ``λ`` (not ``2λ``); we follow §4.1, which is also Fang et al.'s
Eq. (1). The two differ only by a factor 2 in the value of λ.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender, replica_seeds

logger = logging.getLogger(__name__)

Center = Literal["scale", "mean", "none"]
#: Largest number of floats in one batch of per-row Gram matrices (about 256 MB in float64).
_GRAM_BUDGET = 1 << 25
#: Smallest rank at which rows shorter than the rank are solved in their dual form: below it the
#: per-length batches cost about what the small Gram matrices they save do (measured on the
#: bundled data, one CPU thread, s per sweep against the Gram path: 0.0058 / 0.0045 at k = 5,
#: 0.010-0.014 / 0.010-0.013 at 10, 0.013 / 0.014-0.015 at 12, 0.028 / 0.046 at 20;
#: ``benchmarks/factorization_speed.py``).
DUAL_FROM_RANK = 12
#: Outer-product tables (``n_cols × k²`` floats per replica) larger than this spill out of a CPU's
#: caches, and the sparse product that sums them reads one table row per entry from memory; from
#: this size on, rows of at least ``k / 2`` entries on average take the bucketed matmuls of
#: :meth:`Entries.row_outer` instead.
_OUTER_TABLE_IN_CACHE = 1 << 21
#: Rows whose lengths differ by at most this factor share one padded batch of matmuls.
_BUCKET_RATIO = 1.25


def rating_offset(data: Interactions, center: Center) -> float:
    """The constant subtracted from every rating before factorization.

    ``"scale"`` shifts the rating scale to the symmetric range ``[−Λ, Λ]`` (Li et al. §5: "we shift
    the rating range to [-2, 2]"), ``"mean"`` subtracts the global mean rating of ``data``,
    ``"none"`` keeps the raw values. Implicit data (no scale) uses ``[0, 1]`` as its scale.
    """
    if center == "scale":
        low, high = data.rating_scale or (0.0, 1.0)
        return (low + high) / 2.0
    if center == "mean":
        return float(data.matrix.data.mean()) if data.n_ratings else 0.0
    if center == "none":
        return 0.0
    raise ConfigError(f"center must be 'scale', 'mean' or 'none', not {center!r}")


def torch_dtype(name: str) -> torch.dtype:
    """Map ``"float32" | "float64"`` to the torch dtype."""
    if name not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', not {name!r}")
    return getattr(torch, name)


class Entries:
    """Observed entries ``(rows, cols, values)`` of a ``shape`` matrix, as torch tensors.

    Caches the sparse matrices ALS needs (the values and the 0/1 pattern); an entry whose value
    is 0 is still observed (values are centered ratings).
    """

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
    ) -> None:
        self.rows, self.cols, self.values, self.shape = rows, cols, values, shape
        self._splits: dict[int, RowSplit] = {}

    @classmethod
    def from_interactions(
        cls, data: Interactions, offset: float, dtype: torch.dtype, device: torch.device
    ) -> Entries:
        """The ratings of ``data`` minus ``offset``."""
        users, items, ratings = data.triples()
        return cls(
            torch.as_tensor(users, device=device),
            torch.as_tensor(items, device=device),
            torch.as_tensor(ratings - offset, dtype=dtype, device=device),
            (data.n_users, data.n_items),
        )

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def transpose(self) -> Entries:
        return Entries(self.cols, self.rows, self.values, (self.shape[1], self.shape[0]))

    def stack(self, other: Entries) -> Entries:
        """These rows followed by the rows of ``other`` (same number of columns)."""
        if other.shape[1] != self.shape[1]:
            raise ValueError(f"cannot stack {other.shape} below {self.shape}")
        return Entries(
            torch.cat([self.rows, other.rows + self.shape[0]]),
            torch.cat([self.cols, other.cols]),
            torch.cat([self.values, other.values]),
            (self.shape[0] + other.shape[0], self.shape[1]),
        )

    @cached_property
    def _csr_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR order of the entries, column indices and row pointers (computed once).

        A stable sort by row only (entries usually arrive row-sorted, which makes it linear);
        CSR products do not need sorted column indices within a row.
        """
        rows, cols = self.rows.cpu().numpy(), self.cols.cpu().numpy()
        order = np.argsort(rows, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.shape[0]))])
        return order, cols[order], indptr

    def _sparse(self, values: torch.Tensor) -> torch.Tensor | sp.csr_matrix:
        if values.is_cuda:
            index = torch.stack([self.rows, self.cols])
            # the indices are in range by construction; torch 2.11 still warns once that
            # invariant checks are off although ``check_invariants=False`` says so
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sparse invariant checks are implicitly")
                return torch.sparse_coo_tensor(
                    index, values, self.shape, check_invariants=False
                ).coalesce()
        # On the CPU scipy's CSR product is 5-10x faster than torch's sparse kernels at small k.
        order, indices, indptr = self._csr_layout
        return sp.csr_matrix((values.numpy()[order], indices, indptr), shape=self.shape)

    @cached_property
    def _matrix(self) -> torch.Tensor | sp.csr_matrix:
        return self._sparse(self.values)

    @cached_property
    def _pattern(self) -> torch.Tensor | sp.csr_matrix:
        return self._sparse(torch.ones_like(self.values))

    def matrix_mm(self, dense: torch.Tensor) -> torch.Tensor:
        """``M @ dense`` with ``M`` the matrix of the observed values (0 elsewhere)."""
        return _spmm(self._matrix, dense)

    def pattern_mm(self, dense: torch.Tensor) -> torch.Tensor:
        """``P @ dense`` with ``P`` the 0/1 matrix of the observed positions."""
        return _spmm(self._pattern, dense)

    def weighted_mm(self, weights: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """``W @ dense`` with ``W`` holding ``weights`` (one per entry, in entry order) at the
        observed positions: ``Σ_{j∈Ω_i} w_ij dense_j`` for every row ``i``."""
        return _spmm(self._sparse(weights), dense)

    def split_rows(self, k: int) -> RowSplit:
        """The rows with at least ``k`` entries and the shorter ones by length (cached per k)."""
        if k not in self._splits:
            self._splits[k] = RowSplit.of(self, k)
        return self._splits[k]

    def row_outer(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``Σ_{j∈Ω_i} left_j right_jᵀ`` for every row ``i``.

        ``left`` and ``right`` are ``[n_cols, *batch, k]``; returns ``[n_rows, *batch, k, k]``,
        no loop over rows. Two ways, chosen by where the time goes:

        * one product of the sparse 0/1 pattern with the table of every column's flattened
          outer product (``n_cols × k²`` per replica) — fast while that table stays in cache;
        * on the CPU, once the table outgrows the cache (``_OUTER_TABLE_IN_CACHE``) and rows
          hold at least ``k / 2`` entries on average, ``Y_iᵀ Y_i`` by batched matmuls over rows
          bucketed by length (:meth:`_bucketed_outer`): the sparse product would read a ``k²``
          table row from memory per entry.

        Measured on the bundled data (one thread, float64, rows of at least k entries as ALS
        passes them), seconds with the sparse product → the bucketed matmuls: users' Grams (the
        items' table) 0.039 → 0.021 at k = 20, 0.32 → 0.060 at k = 50, 0.56 → 0.087 at k = 64;
        items' Grams at k = 64 (the users' table, 2.7 M floats) 0.067 → 0.028; at k = 12 the
        sparse product wins (0.009 → 0.028), and over every item (11 entries per row on
        average) too.
        """
        table = left.numel() * right.shape[-1]  # n_cols × batch × k²
        if (
            left.is_cuda
            or table < _OUTER_TABLE_IN_CACHE
            or 2 * self.nnz < self.shape[0] * left.shape[-1]
        ):
            outer = left[..., :, None] * right[..., None, :]
            flat = self.pattern_mm(outer.reshape(left.shape[0], -1))
            return flat.reshape(self.shape[0], *outer.shape[1:])
        return self._bucketed_outer(left, right)

    def _bucketed_outer(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """:meth:`row_outer` as ``left_Ωᵢᵀ right_Ωᵢ`` per row, rows of similar length padded
        with a zero column to a common length and multiplied in batched matmuls (at most
        ``_GRAM_BUDGET`` gathered floats at a time)."""
        pad = left.new_zeros(1, *left.shape[1:]), right.new_zeros(1, *right.shape[1:])
        left, right = torch.cat([left, pad[0]]), torch.cat([right, pad[1]])
        out = left.new_zeros(self.shape[0], *left.shape[1:], right.shape[-1])
        for rows, columns in self._length_buckets:
            chunk = max(1, _GRAM_BUDGET // (columns.shape[1] * left[0].numel()))
            for start in range(0, len(rows), chunk):
                part = columns[start : start + chunk]
                a = left[part].movedim(1, -2)  # [b, *batch, L, k]
                b = right[part].movedim(1, -2)
                out[rows[start : start + chunk]] = a.mT @ b
        return out

    @cached_property
    def _length_buckets(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Non-empty rows grouped by length within ``_BUCKET_RATIO``: each group's rows and
        their columns ``[b, L]`` padded with ``n_cols`` (the zero row :meth:`_bucketed_outer`
        appends) to the group's longest row."""
        _, cols, indptr = self._csr_layout
        lengths = np.diff(indptr)
        by_length = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[by_length]
        device = self.rows.device
        buckets = []
        start = int(np.searchsorted(sorted_lengths, 1))
        while start < len(by_length):
            limit = max(sorted_lengths[start], int(sorted_lengths[start] * _BUCKET_RATIO))
            stop = int(np.searchsorted(sorted_lengths, limit, side="right"))
            rows = by_length[start:stop]
            offsets = np.arange(sorted_lengths[stop - 1])
            inside = offsets < lengths[rows][:, None]
            position = np.where(inside, indptr[rows][:, None] + offsets, 0)
            columns = np.where(inside, cols[position], self.shape[1])
            buckets.append(
                (torch.as_tensor(rows, device=device), torch.as_tensor(columns, device=device))
            )
            start = stop
        return buckets


@dataclass(frozen=True)
class RowSplit:
    """The rows of an :class:`Entries` as :func:`solve_rows` solves them.

    ``long_rows``: the rows with at least k entries, and ``long`` their entries renumbered
    ``0..len(long_rows)-1`` (None when there are none); ``short``: for each length ``n`` in
    ``1..k-1``, the rows of that length ``[b]`` with their entries' columns and values ``[b, n]``.
    Rows without entries are in neither (their solution is 0). Below ``DUAL_FROM_RANK`` every
    row is long, ``long`` is the entries themselves and ``all_long`` is set.
    """

    long_rows: torch.Tensor
    long: Entries | None
    short: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    all_long: bool = False

    @classmethod
    def of(cls, entries: Entries, k: int) -> RowSplit:
        device = entries.values.device
        if k < DUAL_FROM_RANK:
            return cls(torch.arange(entries.shape[0], device=device), entries, [], all_long=True)
        order, _, indptr = entries._csr_layout
        lengths = np.diff(indptr)
        long_rows = np.flatnonzero(lengths >= k)
        long = None
        if len(long_rows):
            renumber = np.full(entries.shape[0], -1)
            renumber[long_rows] = np.arange(len(long_rows))
            rows = entries.rows.cpu().numpy()
            keep = torch.as_tensor(lengths[rows] >= k, device=device)
            long = Entries(
                torch.as_tensor(renumber[rows], device=device)[keep],
                entries.cols[keep],
                entries.values[keep],
                (len(long_rows), entries.shape[1]),
            )
        short = []
        for n in np.unique(lengths[(lengths > 0) & (lengths < k)]):
            rows_n = np.flatnonzero(lengths == n)
            entry = torch.as_tensor(order[indptr[rows_n][:, None] + np.arange(n)], device=device)
            short.append(
                (torch.as_tensor(rows_n, device=device), entries.cols[entry], entries.values[entry])
            )
        return cls(torch.as_tensor(long_rows, device=device), long, short)


def _spmm(sparse: torch.Tensor | sp.csr_matrix, dense: torch.Tensor) -> torch.Tensor:
    if isinstance(sparse, torch.Tensor):
        return torch.sparse.mm(sparse, dense)
    return torch.from_numpy(np.asarray(sparse @ dense.contiguous().numpy()))


def cholesky_solve(rhs: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``(L Lᵀ)⁻¹ rhs`` for lower-triangular ``factor`` ``L``, batched and broadcast as
    ``torch.cholesky_solve``, as two triangular solves: on the CPU 2.8x faster than
    ``torch.cholesky_solve`` for many small systems (9066 systems of size 64, one thread:
    0.062 against 0.176 s)."""
    forward = torch.linalg.solve_triangular(factor, rhs, upper=False)
    return torch.linalg.solve_triangular(factor.mT, forward, upper=True)


def row_grams(entries: Entries, other: torch.Tensor, lam: float) -> torch.Tensor:
    """``λ I + Σ_{j∈Ω_i} y_j y_jᵀ`` for every row ``i`` and replica: ``[n_rows, R, k, k]``.

    ``other`` is ``[n_cols, R, k]``; see :meth:`Entries.row_outer`.
    """
    gram = entries.row_outer(other, other)
    gram.diagonal(dim1=-2, dim2=-1).add_(lam)
    return gram


def solve_rows(entries: Entries, other: torch.Tensor, lam: float) -> torch.Tensor:
    """Exact minimiser over the row factors with ``other`` fixed, for every replica (§4.1).

    ``other`` is ``[R, n_cols, k]``; returns ``[R, n_rows, k]`` with
    ``x_i = (λ I_k + Y_iᵀ Y_i)⁻¹ Y_iᵀ m_i`` (``Y_i`` the ``n_i`` rows of ``other`` that row ``i``
    observes, ``m_i`` its values). A row with ``n_i >= k`` entries is solved in that form, its
    ``k × k`` Gram matrix built with the others' (:func:`row_grams`); a shorter row in the equal
    dual form ``Y_iᵀ (λ I_n + Y_i Y_iᵀ)⁻¹ m_i`` (push-through identity), an ``n_i × n_i`` system,
    with the other rows of its length, from rank ``DUAL_FROM_RANK`` on. Most items of rating
    data are such rows (on the bundled data at k = 64, 8,757 of 9,066 items: a sweep 2.1x
    faster, ``benchmarks/factorization_speed.py``). All systems are batched Cholesky solves;
    replicas are chunked to bound the memory.
    """
    n_rep, k = other.shape[0], other.shape[2]
    split = entries.split_rows(k)
    by_col = other.permute(1, 0, 2).contiguous()  # [n_cols, R, k]
    # On the CPU one replica's outer products at a time stay in cache (measured: batching them
    # is slower there); on a GPU as many as the memory budget allows.
    footprint = max(max(entries.shape) * k * k, 0 if split.all_long else entries.nnz * k)
    chunk = max(1, _GRAM_BUDGET // footprint) if other.is_cuda else 1
    parts = [slice(start, start + chunk) for start in range(0, n_rep, chunk)]
    if split.all_long:
        solutions = [gram_solve(entries, by_col[:, part], lam) for part in parts]
        return torch.cat(solutions, dim=1).permute(1, 0, 2)
    solution = other.new_zeros(entries.shape[0], n_rep, k)
    for part in parts:
        if split.long is not None:
            solution[split.long_rows, part] = gram_solve(split.long, by_col[:, part], lam)
        for rows, cols, values in split.short:
            solution[rows, part] = _dual_solve(cols, values, by_col[:, part], lam)
    return solution.permute(1, 0, 2)


def gram_solve(entries: Entries, by_col: torch.Tensor, lam: float) -> torch.Tensor:
    """``(λ I + Y_iᵀ Y_i)⁻¹ Y_iᵀ m_i`` for every row through its ``k × k`` Gram matrix, whatever
    its length; ``by_col`` ``[n_cols, R, k]``, returns ``[n_rows, R, k]``."""
    n_cols, n_rep, k = by_col.shape
    rhs = entries.matrix_mm(by_col.reshape(n_cols, n_rep * k)).reshape(-1, n_rep, k)
    factor, _ = torch.linalg.cholesky_ex(row_grams(entries, by_col, lam))
    return cholesky_solve(rhs[..., None], factor)[..., 0]


def dual_grams(y: torch.Tensor, lam: float) -> torch.Tensor:
    """``λ I_n + Y Yᵀ`` for a batch of ``[..., n, k]`` blocks ``Y``: the dual system of a row
    with ``n`` entries, the counterpart of :func:`row_grams`'s ``k × k`` one."""
    gram = y @ y.mT
    gram.diagonal(dim1=-2, dim2=-1).add_(lam)
    return gram


def _dual_solve(
    cols: torch.Tensor, values: torch.Tensor, by_col: torch.Tensor, lam: float
) -> torch.Tensor:
    """``Y_iᵀ (λ I + Y_i Y_iᵀ)⁻¹ m_i`` for rows of one length n: ``cols`` / ``values`` ``[b, n]``,
    ``by_col`` ``[n_cols, R, k]``; returns ``[b, R, k]``."""
    y = by_col[cols].permute(0, 2, 1, 3)  # [b, R, n, k]
    factor, _ = torch.linalg.cholesky_ex(dual_grams(y, lam))
    rhs = values[:, None, :, None].expand(-1, y.shape[1], -1, -1)
    return (y.mT @ cholesky_solve(rhs, factor))[..., 0]


def als_objective(
    entries: Entries, users: torch.Tensor, items: torch.Tensor, lambda_u: float, lambda_v: float
) -> torch.Tensor:
    """``‖R_Ω(M − U Vᵀ)‖² + λ_U‖U‖² + λ_V‖V‖²`` per replica (factors ``[R, n, k]``)."""
    pred = (users[:, entries.rows] * items[:, entries.cols]).sum(-1)
    loss = ((entries.values - pred) ** 2).sum(-1)
    return loss + lambda_u * users.square().sum((1, 2)) + lambda_v * items.square().sum((1, 2))


def als(
    entries: Entries,
    items: torch.Tensor,
    lambda_u: float,
    lambda_v: float,
    iterations: int,
    tol: float = 0.0,
    record: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """Alternating minimisation of Eq. (4) from item factors ``items`` ``[R, n_cols, k]``.

    One iteration solves every user row, then every item row (each step exact, so the objective
    never increases). Stops after ``iterations`` sweeps, or earlier once the relative decrease of
    every replica's objective is below ``tol``. Returns ``(users, items, objective per sweep)``;
    with ``record=False`` and ``tol=0`` the objective is not computed (the list stays empty).
    """
    history: list[np.ndarray] = []
    transposed = entries.transpose()
    users = items.new_zeros((items.shape[0], entries.shape[0], items.shape[2]))
    for _ in range(iterations):
        users = solve_rows(entries, items, lambda_u)
        items = solve_rows(transposed, users, lambda_v)
        if not record and tol <= 0:
            continue
        history.append(als_objective(entries, users, items, lambda_u, lambda_v).cpu().numpy())
        if len(history) > 1 and np.all(history[-2] - history[-1] <= tol * np.abs(history[-2])):
            break
    return users, items, history


def initial_items(
    n_items: int, rank: int, seed: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Random item factors ``N(0, 1/k)`` (unit expected row norm) from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n_items, rank, generator=gen, dtype=dtype) / rank**0.5).to(device)


class ALSMF(Recommender):
    """Matrix factorization of explicit ratings by alternating least squares (Li et al. 2016 §2).

    Parameters: ``rank`` k; ``lambda_u``, ``lambda_v`` the ridge weights of Eq. (4) (convention in
    the module docstring; the defaults were chosen on the bundled MovieLens data, see
    ``benchmarks/README.md``); ``iterations`` the number of alternating sweeps and ``tol`` the
    relative objective decrease that stops them earlier; ``center`` how ratings are shifted before
    factorising (``"scale"``: to Li's symmetric ``[−Λ, Λ]``; ``"mean"``: minus the global mean;
    ``"none"``), added back to every prediction; ``dtype`` ``"float32"`` or ``"float64"``.
    Replicas differ by the seed of their random initial item factors.

    Fitted: ``user_factors_`` / ``item_factors_`` ``[R, n, k]``, ``offset_`` ``[R]``,
    ``objective_history_`` ``[sweeps, R]`` (NaN after a replica with its own data stopped early).
    """

    name = "als-mf"
    capabilities = frozenset({"explicit", "batched_replicas", "per_replica_data"})

    def __init__(
        self,
        rank: int = 10,
        lambda_u: float = 10.0,
        lambda_v: float = 10.0,
        iterations: int = 20,
        tol: float = 1e-5,
        center: Center = "scale",
        dtype: str = "float32",
        *,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.rank = rank
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.iterations = iterations
        self.tol = tol
        self.center = center
        self.dtype = dtype

    def fit(self, train: Interactions | Sequence[Interactions]) -> Self:
        """Train all replicas (batched when they share one dataset)."""
        datasets = self._check_fit_input(train)
        if self.rank < 1 or self.iterations < 1:
            raise ConfigError(f"{self.name}: rank and iterations must be >= 1")
        if self.lambda_u <= 0 or self.lambda_v <= 0:
            raise ConfigError(
                f"{self.name}: lambda_u and lambda_v must be > 0 "
                "(the normal equations of a user with < k ratings are singular)"
            )
        dtype, device = torch_dtype(self.dtype), self.device_
        seeds = replica_seeds(self.random_state, self.n_replicas)
        items = torch.stack(
            [initial_items(datasets[0].n_items, self.rank, s, dtype, device) for s in seeds]
        )
        groups = (
            [list(range(self.n_replicas))]
            if all(d is datasets[0] for d in datasets)
            else [[r] for r in range(self.n_replicas)]
        )
        users_out, items_out, offsets, histories = [], [], [], []
        for group in groups:
            data = datasets[group[0]]
            offset = rating_offset(data, self.center)
            entries = Entries.from_interactions(data, offset, dtype, device)
            users_g, items_g, history = als(
                entries, items[group], self.lambda_u, self.lambda_v, self.iterations, self.tol
            )
            users_out.append(users_g)
            items_out.append(items_g)
            offsets += [offset] * len(group)
            histories.append(np.stack(history))
        self._user_t = torch.cat(users_out)
        self._item_t = torch.cat(items_out)
        self._offset = torch.tensor(offsets, dtype=dtype, device=device)
        self.user_factors_ = self._user_t.cpu().numpy()
        self.item_factors_ = self._item_t.cpu().numpy()
        self.offset_ = np.asarray(offsets)
        longest = max(len(h) for h in histories)
        self.objective_history_ = np.concatenate(
            [np.pad(h, ((0, longest - len(h)), (0, 0)), constant_values=np.nan) for h in histories],
            axis=1,
        )
        logger.info(
            "%s: %d replica(s), rank %d, %d sweeps, final objective %s",
            self.name,
            self.n_replicas,
            self.rank,
            longest,
            np.nanmin(self.objective_history_, 0),
        )
        return self

    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Predicted ratings ``offset + u_iᵀ v_j`` ``[R, len(users), n_items]``."""
        index = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self._user_t.device)
        scores = self._user_t[:, index] @ self._item_t.transpose(1, 2)
        return scores + self._offset[:, None, None]
