"""Influence of normal users on a target item in the random-walk recommender (Fang et al. 2020).

Section 7.1, Eqs. (24)-(29): removing edge (k, j) changes user u's stationary probability of the
target t by ``δ((k,j), p_ut) = ∂p_ut/∂q_kj = (1 − α) p_uj M(t, k)`` with
``M = (I − (1 − α) Q)⁻¹`` (Eq. 28), summed over the normal users into ``φ((k,j), t)`` (Eq. 29),
and over the edges of user k into ``π(k, t) = Σ_{j∈Ω_k} φ((k,j), t)`` (Eq. 8). Summing first:

    ``π(k, t) = (1 − α) · M(t, k) · Σ_{j∈Ω_k} s_j``,  with  ``s = Σ_{u∈U} p_u = α M 1_U``,

so two linear solves give the influence of every user: row t of M (``x = e_t + (1 − α) Qᵀ x``)
and ``s`` (``x = α 1_U + (1 − α) Q x``), each by fixed-point iteration. For row t of M, ``T``
iterations are the paper's truncated Taylor series ``M ≈ I + Σ_{i=1}^{T} (1 − α)^i Q^i``
(``series_terms`` = T; ``None`` iterates to convergence); ``s`` sums the walks' stationary
distributions and is always solved to convergence. M is never formed: cost O(iterations x
nnz). ``Q`` is the matrix of Eq. (22) in :mod:`recpoison.victims.random_walk`'s orientation,
so ``M(t, k)`` is the expected number of visits to item t of a walk (without restart) started
at k, discounted by ``1 − α``. Every term is non-negative, so the absolute value of Eq. (13)
changes nothing here.
"""

from __future__ import annotations

import numpy as np
import torch

from recpoison.victims.random_walk import BipartiteWalk, solve_fixed_point

#: Fixed-point tolerance of the influence solves when ``series_terms`` is None.
INFLUENCE_TOL = 1e-8
#: Iteration cap of those solves.
INFLUENCE_MAX_ITER = 500


def user_influence(
    walk: BipartiteWalk,
    targets: np.ndarray,
    normal: np.ndarray,
    alpha: float,
    series_terms: int | None = None,
) -> np.ndarray:
    """``π(k, t)`` (Eq. 8 with Eqs. 28-29) of every user k, summed over ``targets``.

    ``normal`` is the boolean mask of the normal users ``U`` over whom Eq. (29) sums.
    Returns a float64 array ``[n_users]``.
    """
    decay = 1.0 - alpha
    if series_terms is None:
        tol, max_iter = INFLUENCE_TOL, INFLUENCE_MAX_ITER
    else:  # exactly T terms of the series (T = 0: M ≈ I)
        tol, max_iter = 0.0, int(series_terms)
    dtype, device = walk.user_degree.dtype, walk.user_degree.device
    row_source = torch.zeros((walk.n_nodes, 1), dtype=dtype, device=device)
    row_source[walk.n_users + torch.as_tensor(targets, device=device), 0] = 1.0
    walk_source = torch.zeros((walk.n_nodes, 1), dtype=dtype, device=device)
    walk_source[: walk.n_users, 0] = alpha * torch.as_tensor(normal, dtype=dtype, device=device)
    m_row, _ = solve_fixed_point(walk.adjoint, row_source, decay, tol, max_iter)
    visits, _ = solve_fixed_point(  # the stationary p_u themselves are never truncated
        walk.forward, walk_source, decay, INFLUENCE_TOL, INFLUENCE_MAX_ITER
    )
    edge_sums = walk.entries.pattern_mm(visits[walk.n_users :])  # Σ_{j∈Ω_k} s_j
    influence = decay * m_row[: walk.n_users, 0] * edge_sums[:, 0]
    return influence.double().cpu().numpy()
