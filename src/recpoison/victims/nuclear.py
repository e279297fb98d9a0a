"""Nuclear-norm regularised matrix completion (Li et al. 2016 §2 Eq. 3) by soft-impute.

``min_X ‖R_Ω(M − X)‖²_F + 2λ‖X‖_*`` is solved by singular value thresholding (Cai, Candès & Shen
2010; the soft-impute iteration of Mazumder, Hastie & Tibshirani 2010):
``X ← SVT_λ(R_Ω(M) + R_Ω⊥(X))``, where ``SVT_λ`` shrinks every singular value by λ and drops the
non-positive ones. The matrix inside the SVT is "sparse + low rank" (``X + R_Ω(M − X)``), so its
leading singular triplets come from a randomized subspace iteration that only multiplies by it —
no dense matrix and no full SVD is ever formed. The iterate is kept as ``U diag(σ) Vᵀ``, so
predictions cost one small matrix product.

Rank cap: at most ``max_rank`` singular values are kept. When more than ``max_rank`` exceed λ the
result is the rank-capped soft-impute fixed point, an approximation of Eq. (3) (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender, replica_seeds
from recpoison.victims.mf import Center, Entries, rating_offset, torch_dtype

logger = logging.getLogger(__name__)

LowRank = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def low_rank_values(factors: LowRank, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Entries ``(rows, cols)`` of ``U diag(σ) Vᵀ``."""
    u, s, v = factors
    return (u[rows] * s * v[cols]).sum(-1)


def top_singular(
    entries: Entries,
    residual: torch.Tensor,
    factors: LowRank,
    width: int,
    power_iterations: int,
    gen: torch.Generator,
) -> LowRank:
    """Leading ``width`` singular triplets of ``Z = X + R_Ω(M − X)``, ``X = U diag(σ) Vᵀ``.

    ``residual`` holds ``M − X`` on the observed entries. Randomized subspace iteration (Halko,
    Martinsson & Tropp 2011, Alg. 4.4) warm-started from the current right singular vectors;
    exact when ``width >= min(shape)``.
    """
    u, s, v = factors
    sparse = Entries(entries.rows, entries.cols, residual, entries.shape)
    sparse_t = sparse.transpose()

    def times(y: torch.Tensor) -> torch.Tensor:  # Z @ y
        return sparse.matrix_mm(y) + u @ (s[:, None] * (v.T @ y))

    def times_t(y: torch.Tensor) -> torch.Tensor:  # Zᵀ @ y
        return sparse_t.matrix_mm(y) + v @ (s[:, None] * (u.T @ y))

    width = min(width, *entries.shape)
    kept = min(v.shape[1], width)
    extra = torch.randn(entries.shape[1], width - kept, generator=gen, dtype=v.dtype)
    probe = torch.cat([v[:, :kept], extra.to(v.device)], dim=1)
    basis = torch.linalg.qr(times(probe)).Q
    for _ in range(power_iterations):
        basis = torch.linalg.qr(times(torch.linalg.qr(times_t(basis)).Q)).Q
    # Z ≈ basis @ basis.T @ Z = basis @ (Q2 R2)ᵀ with Zᵀ basis = Q2 R2: only a width² SVD is needed.
    q2, r2 = torch.linalg.qr(times_t(basis))
    small_u, sigma, small_vt = torch.linalg.svd(r2.T)
    return basis @ small_u, sigma, q2 @ small_vt.T


def nuclear_objective(residual: torch.Tensor, sigma: torch.Tensor, lam: float) -> float:
    """``‖R_Ω(M − X)‖²_F + 2λ‖X‖_*`` (Eq. 3) from the observed residuals and singular values."""
    return float(residual.square().sum() + 2.0 * lam * sigma.sum())


def soft_impute(
    entries: Entries,
    lam: float,
    max_rank: int,
    iterations: int,
    tol: float,
    gen: torch.Generator,
    init: LowRank | None = None,
    oversampling: int = 10,
    power_iterations: int = 1,
) -> tuple[LowRank, list[float]]:
    """Iterate ``X ← SVT_λ(R_Ω(M) + R_Ω⊥(X))`` from ``init`` (default 0).

    Stops after ``iterations`` steps or once the relative objective decrease is below ``tol``.
    Returns the factors ``(U, σ, V)`` of the last iterate and the objective after every step.
    """
    n_rows, n_cols = entries.shape
    dtype, device = entries.values.dtype, entries.values.device
    if init is None:
        init = (
            torch.zeros(n_rows, 0, dtype=dtype, device=device),
            torch.zeros(0, dtype=dtype, device=device),
            torch.zeros(n_cols, 0, dtype=dtype, device=device),
        )
    factors, history = init, []
    residual = entries.values - low_rank_values(factors, entries.rows, entries.cols)
    for _ in range(iterations):
        u, sigma, v = top_singular(
            entries, residual, factors, max_rank + oversampling, power_iterations, gen
        )
        keep = int((sigma > lam).sum())
        if keep > max_rank:
            logger.debug(
                "soft-impute: %d singular values exceed lambda; capped at %d", keep, max_rank
            )
            keep = max_rank
        factors = (u[:, :keep], sigma[:keep] - lam, v[:, :keep])
        residual = entries.values - low_rank_values(factors, entries.rows, entries.cols)
        history.append(nuclear_objective(residual, factors[1], lam))
        if len(history) > 1 and history[-2] - history[-1] <= tol * abs(history[-2]):
            break
    return factors, history


class NuclearNormMF(Recommender):
    """Nuclear-norm matrix completion (Li et al. 2016 Eq. 3) by soft-impute / SVT.

    Parameters: ``lam`` λ of Eq. (3) (the soft threshold; default chosen on the bundled MovieLens
    data, see ``benchmarks/README.md``); ``max_rank`` the rank cap; ``iterations`` and ``tol`` the
    SVT steps and the relative objective decrease that stops them; ``center`` as in
    :class:`~recpoison.victims.mf.ALSMF`; ``oversampling`` / ``power_iterations`` of the randomized
    SVD; ``dtype``. Eq. (3) is convex with a unique minimiser, so replicas trained on the same
    dataset are identical: it is solved once and shared (replicas differ only with per-replica
    data).

    Fitted: ``user_vectors_`` ``[R, n_users, r]``, ``singular_values_`` ``[R, r]``,
    ``item_vectors_`` ``[R, n_items, r]`` (zero-padded to the largest rank ``r``),
    ``rank_`` ``[R]``, ``offset_`` ``[R]``, ``objective_history_`` ``[steps, R]`` (NaN-padded).
    """

    name = "nuclear-norm"
    capabilities = frozenset({"explicit", "per_replica_data"})

    def __init__(
        self,
        lam: float = 15.0,
        max_rank: int = 50,
        iterations: int = 200,
        tol: float = 1e-5,
        center: Center = "scale",
        oversampling: int = 10,
        power_iterations: int = 1,
        dtype: str = "float32",
        *,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.lam = lam
        self.max_rank = max_rank
        self.iterations = iterations
        self.tol = tol
        self.center = center
        self.oversampling = oversampling
        self.power_iterations = power_iterations
        self.dtype = dtype

    def fit(self, train: Interactions | Sequence[Interactions]) -> Self:
        """Solve Eq. (3) once per distinct training dataset."""
        datasets = self._check_fit_input(train)
        if self.lam <= 0 or self.max_rank < 1 or self.iterations < 1:
            raise ConfigError(f"{self.name}: need lam > 0, max_rank >= 1 and iterations >= 1")
        dtype, device = torch_dtype(self.dtype), self.device_
        seeds = replica_seeds(self.random_state, self.n_replicas)
        solved: dict[int, tuple[LowRank, list[float], float]] = {}
        for seed, data in zip(seeds, datasets, strict=True):
            if id(data) in solved:
                continue
            offset = rating_offset(data, self.center)
            entries = Entries.from_interactions(data, offset, dtype, device)
            gen = torch.Generator().manual_seed(seed)
            factors, history = soft_impute(
                entries,
                self.lam,
                self.max_rank,
                self.iterations,
                self.tol,
                gen,
                oversampling=self.oversampling,
                power_iterations=self.power_iterations,
            )
            solved[id(data)] = (factors, history, offset)
        fits = [solved[id(d)] for d in datasets]
        rank = max(1, max(f[0][1].numel() for f in fits))

        def pad(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, rank - x.shape[-1]))

        self._u = torch.stack([pad(f[0][0]) for f in fits])
        self._s = torch.stack([pad(f[0][1]) for f in fits])
        self._v = torch.stack([pad(f[0][2]) for f in fits])
        self._offset = torch.tensor([f[2] for f in fits], dtype=dtype, device=device)
        self.user_vectors_ = self._u.cpu().numpy()
        self.singular_values_ = self._s.cpu().numpy()
        self.item_vectors_ = self._v.cpu().numpy()
        self.rank_ = np.array([f[0][1].numel() for f in fits])
        self.offset_ = np.array([f[2] for f in fits])
        longest = max(len(f[1]) for f in fits)
        self.objective_history_ = np.array(
            [f[1] + [np.nan] * (longest - len(f[1])) for f in fits]
        ).T
        logger.info("%s: rank %s after %d steps", self.name, self.rank_.tolist(), longest)
        return self

    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Predicted ratings ``offset + (U diag(σ) Vᵀ)_{ij}`` ``[R, len(users), n_items]``."""
        index = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self._u.device)
        left = self._u[:, index] * self._s[:, None, :]
        return left @ self._v.transpose(1, 2) + self._offset[:, None, None]
