"""Gradients of an attacker's utility through the victim's optimality conditions (Li et al. §4).

The victim's factors ``θ = (U, V)`` (normal and fake user rows stacked in ``U``) minimise
``L = ‖R_Ω(M − UVᵀ)‖² + λ_U‖U‖² + λ_V‖V‖²`` (Eq. 4). Differentiating the stationarity conditions
``∇_θ L = 0`` of §4.1 (implicit function theorem) gives, for a fake entry ``(i, j)``,

    dR/dM̃_ij = −(∂∇_θL/∂M̃_ij)ᵀ H⁻¹ ∇_θR = 2 (z_{u_i} · v_j + z_{v_j} · u_i),   H z = ∇_θR,

with ``H`` the Hessian of ``L``. Two ways to get ``z``:

* ``"block"`` — Li et al.'s closed form (§4.1, Eq. 12): keep only the diagonal blocks of ``H``,
  ``2(λ_U I + Σ_U^(i))`` per user and ``2(λ_V I + Σ_V^(j))`` per item, which gives exactly
  ``∂ũ_i/∂M̃_ij = (λ_U I + Σ_U^(i))⁻¹ v_j`` and ``∂v_j/∂M̃_ij = (λ_V I + Σ_V^(j))⁻¹ ũ_i``.
  It ignores how the users' and items' changes feed back into each other.
* ``"cg"`` — the exact implicit gradient: ``H z = ∇_θR`` solved by conjugate gradients
  (:func:`conjugate_gradient`) with Hessian-vector products (:class:`Hessian`, ``O(|Ω| k)``
  each, never a matrix), preconditioned by the same per-row blocks (:class:`RowBlockInverse`).
  This is what a finite difference of the retrained model measures.

``H`` is singular along the rotations ``U → UQ, V → VQ`` (the loss is invariant), but every
utility here depends on ``UVᵀ`` only, so ``∇_θR`` is orthogonal to that null space and CG is fine.

The nuclear-norm victim (§4.2) reuses this machinery: at its solution ``X = U Σ Vᵀ`` of rank ρ,
``A = U Σ^½``, ``B = V Σ^½`` is a stationary point of ``‖R_Ω(M − ABᵀ)‖² + λ(‖A‖² + ‖B‖²)``
(because ``‖X‖_* = min_{ABᵀ=X} (‖A‖² + ‖B‖²)/2``, and the KKT condition Eq. (14) with ``WV = 0``
gives ``R_Ω(M − X) B = λ A``). Where the rank is locally constant (strict complementarity,
``‖W‖₂ < 1``) Eq. (5)'s solution moves like that factored problem's, so its gradient is the one
above with ``λ_U = λ_V = λ``. This is our derivation; the paper defers its own to an extended
version we could not consult.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch

from recpoison.victims.mf import Entries, cholesky_solve, dual_grams, row_grams

logger = logging.getLogger(__name__)

Method = Literal["cg", "block"]
Factors = tuple[torch.Tensor, torch.Tensor]


class HessianSolution(NamedTuple):
    """``z = H⁻¹ rhs``, CG's relative residual, and whether CG fell back to the block form."""

    z: Factors
    residual: float
    fallback: bool


class ImplicitGradient(NamedTuple):
    """``dR/dM̃`` at the requested entries, with the solve's residual and fallback flag."""

    gradient: torch.Tensor
    residual: float
    fallback: bool


class Hessian:
    """Products with the Hessian ``H`` of ``L`` at ``(U, V)``; no matrix is formed.

    With ``e_ij = M_ij − u_i·v_j`` and the direction ``(P, Q)``:
    ``(H[P; Q])_{u_i} = 2 Σ_j (a_ij v_j − e_ij q_j) + 2λ_U p_i`` and
    ``(H[P; Q])_{v_j} = 2 Σ_i (a_ij u_i − e_ij p_i) + 2λ_V q_j``, ``a_ij = v_j·p_i + u_i·q_j``:
    the Gram terms ``(Σ_j v_j v_jᵀ) p_i`` and the cross terms ``(Σ_j v_j q_jᵀ) u_i`` share one
    weight per entry, so a product is two per-entry dot products and four sparse products,
    ``O(|Ω| k)``, with no per-row ``k × k`` matrix. The per-entry gathers go into buffers
    allocated once (a fresh ``|Ω| × k`` tensor per product cost more in page faults than the
    arithmetic). Measured on the bundled data (CPU, one thread, float64, k = 64): 0.034 s per
    product, against 0.20 s with per-row Gram matrices formed once (and 4x that before, when the
    cross term was formed per row as the Grams are).
    """

    def __init__(
        self,
        entries: Entries,
        users: torch.Tensor,
        items: torch.Tensor,
        lambda_u: float,
        lambda_v: float,
    ) -> None:
        self.entries, self.transposed = entries, entries.transpose()
        self.users, self.items = users, items
        self.lambda_u, self.lambda_v = lambda_u, lambda_v
        # the factors at every rating, gathered once: each product reuses them
        self.users_at, self.items_at = users[entries.rows], items[entries.cols]
        residual = entries.values - (self.users_at * self.items_at).sum(1)
        self.residual = Entries(entries.rows, entries.cols, residual, entries.shape)
        self.residual_t = self.residual.transpose()
        self._gathered, self._product = (
            torch.empty_like(self.items_at),
            torch.empty_like(self.items_at),
        )

    def _entry_dots(
        self, at_entries: torch.Tensor, direction: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        """``at_entries[e] · direction[index[e]]`` for every entry ``e``."""
        torch.index_select(direction, 0, index, out=self._gathered)
        return torch.mul(at_entries, self._gathered, out=self._product).sum(1)

    def __call__(self, direction: Factors) -> Factors:
        p, q = direction
        weight = self._entry_dots(self.items_at, p, self.entries.rows) + self._entry_dots(
            self.users_at, q, self.entries.cols
        )
        h_u = self.entries.weighted_mm(weight, self.items) - self.residual.matrix_mm(q)
        h_v = self.transposed.weighted_mm(weight, self.users) - self.residual_t.matrix_mm(p)
        return 2 * h_u + 2 * self.lambda_u * p, 2 * h_v + 2 * self.lambda_v * q


class RowBlockInverse:
    """``x ↦ (2(λ I + Σ_{j∈Ω_i} y_j y_jᵀ))⁻¹ x_i`` for every row ``i`` of one side: the inverse
    of the diagonal blocks of ``H`` (Li et al. Eq. 12), with ``y`` the other side's factors.

    As ALS solves its rows (:func:`recpoison.victims.mf.solve_rows`): a row with at least ``k``
    entries through its ``k × k`` Gram matrix, a shorter one (from rank ``DUAL_FROM_RANK``) by
    the Woodbury identity ``(λI + YᵀY)⁻¹ x = (x − Yᵀ (λI + YYᵀ)⁻¹ Y x) / λ``, an ``n_i × n_i``
    system, so most items of rating data never get a ``k × k`` matrix; a row without entries is
    ``x / 2λ``.
    """

    def __init__(self, entries: Entries, other: torch.Tensor, lam: float) -> None:
        self.lam = lam
        split = entries.split_rows(other.shape[1])
        self.long_rows = split.long_rows
        self.long_factor = None
        if split.long is not None:
            self.long_factor = torch.linalg.cholesky(2 * row_grams(split.long, other, lam))
        self.short = []
        for rows, cols, _ in split.short:
            y = other[cols]  # [b, n, k]
            self.short.append((rows, y, torch.linalg.cholesky(dual_grams(y, lam))))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = x / (2 * self.lam)
        if self.long_factor is not None:
            z[self.long_rows] = cholesky_solve(x[self.long_rows, :, None], self.long_factor)[..., 0]
        for rows, y, factor in self.short:
            x_rows = x[rows]
            inner = cholesky_solve(y @ x_rows[..., None], factor)
            z[rows] = (x_rows - (y.mT @ inner)[..., 0]) / (2 * self.lam)
        return z


class _BlockPreconditioner:
    """The block-diagonal part of ``H`` inverted, users' and items' blocks (Li et al. Eq. 12)."""

    def __init__(self, hessian: Hessian) -> None:
        self.users = RowBlockInverse(hessian.entries, hessian.items, hessian.lambda_u)
        self.items = RowBlockInverse(hessian.transposed, hessian.users, hessian.lambda_v)

    def __call__(self, vector: Factors) -> Factors:
        return self.users(vector[0]), self.items(vector[1])


def _dot(a: Factors, b: Factors) -> torch.Tensor:
    return (a[0] * b[0]).sum() + (a[1] * b[1]).sum()


class CGResult(NamedTuple):
    """CG's solution, its relative residual, and whether CG met non-positive curvature before
    any iterate had brought the residual norm below ``‖rhs‖`` (``A`` not positive definite)."""

    z: Factors
    relative: float
    indefinite: bool


def conjugate_gradient(
    operator: Callable[[Factors], Factors],
    precondition: Callable[[Factors], Factors],
    rhs: Factors,
    max_iter: int,
    tol: float,
) -> CGResult:
    """Preconditioned CG for ``A z = rhs`` on pairs of tensors, stopped at relative residual
    ``tol``, after ``max_iter`` steps, or at non-positive curvature.

    Which iterate is returned: the one of smallest residual norm (round-off and the Hessian's
    rotation null space make late iterates drift: on the finite-difference test problem of
    ``tests/test_pga_sgld.py`` the iterate of lowest ``φ`` below has relative residual 2.7e-4,
    the smallest is under 1e-5), unless no iterate brought the residual norm below ``‖rhs‖`` —
    that norm is not monotone, and on an ill-conditioned Hessian it can stay above ``‖rhs‖``
    for dozens of steps while CG converges. Then the iterate of lowest CG objective
    ``φ(z) = ½ zᵀAz − rhsᵀz = −½ (rhsᵀz + rᵀz)`` (what CG decreases at every step when ``A`` is
    positive definite) is returned, not ``z = 0``: that zero gradient stopped PGA at its second
    step on a 450-user MovieLens subsample at 1 % (docs/fang2020.md).
    """
    z = (torch.zeros_like(rhs[0]), torch.zeros_like(rhs[1]))
    norm0 = float(_dot(rhs, rhs).sqrt())
    if norm0 == 0:
        return CGResult(z, 0.0, False)
    r = rhs
    p = y = precondition(r)
    ry = _dot(r, y)
    best, best_relative = z, 1.0  # by residual norm
    lowest, lowest_objective, lowest_relative = z, 0.0, 1.0  # by φ
    for _ in range(max_iter):
        hp = operator(p)
        curvature = _dot(p, hp)
        if curvature <= 0:  # round-off along a null space, or A not positive definite
            if best_relative >= 1.0:
                return CGResult(best, best_relative, True)
            break
        alpha = ry / curvature
        z = (z[0] + alpha * p[0], z[1] + alpha * p[1])
        r = (r[0] - alpha * hp[0], r[1] - alpha * hp[1])
        relative = float(_dot(r, r).sqrt()) / norm0
        if relative < best_relative:
            best, best_relative = z, relative
        objective = -0.5 * float(_dot(rhs, z) + _dot(r, z))
        if objective < lowest_objective:
            lowest, lowest_objective, lowest_relative = z, objective, relative
        if relative <= tol:
            break
        y = precondition(r)
        ry_new = _dot(r, y)
        p = (y[0] + ry_new / ry * p[0], y[1] + ry_new / ry * p[1])
        ry = ry_new
    if best_relative < 1.0:
        return CGResult(best, best_relative, False)
    return CGResult(lowest, lowest_relative, False)


def solve_hessian(
    entries: Entries,
    users: torch.Tensor,
    items: torch.Tensor,
    lambda_u: float,
    lambda_v: float,
    rhs: Factors,
    method: Method = "cg",
    max_iter: int = 50,
    tol: float = 1e-6,
) -> HessianSolution:
    """``z = H⁻¹ rhs`` by preconditioned CG (``"cg"``, :func:`conjugate_gradient`) or the
    block-diagonal closed form.

    Also returns the relative residual ``‖rhs − Hz‖ / ‖rhs‖`` of CG's solution (NaN for
    ``"block"``); a large one means the victim's fit is far from a minimum or ``max_iter`` is
    too small.

    When CG meets non-positive curvature before it has reduced the residual at all, ``H`` is
    not positive definite at the fit (a victim not yet at a minimum: on ml-latest-small, 100
    ALS sweeps left 7 fake users' fit with a user-gradient norm of 1.9 and curvature −0.004
    along CG's first direction) and the implicit-function gradient is undefined there. The
    solve then falls back to the block-diagonal closed form (Li et al. Eq. 12, positive
    definite by construction) instead of returning ``z = 0``, whose zero gradient made PGA stop
    at its initial profile; ``fallback`` says so and ``residual`` is the closed form's.
    """
    hessian = Hessian(entries, users, items, lambda_u, lambda_v)
    precondition = _BlockPreconditioner(hessian)
    if method == "block":
        return HessianSolution(precondition(rhs), float("nan"), False)
    if method != "cg":
        raise ValueError(f"unknown method {method!r}")
    z, relative, indefinite = conjugate_gradient(hessian, precondition, rhs, max_iter, tol)
    if indefinite:
        norm0 = float(_dot(rhs, rhs).sqrt())
        return _block_fallback(hessian, precondition(rhs), rhs, norm0)
    logger.debug("CG stopped at relative residual %.1e", relative)
    return HessianSolution(z, relative, False)


def _block_fallback(hessian: Hessian, z: Factors, rhs: Factors, norm0: float) -> HessianSolution:
    """The block-diagonal solution ``z`` where CG cannot start (see :func:`solve_hessian`)."""
    hz = hessian(z)
    residual = (rhs[0] - hz[0], rhs[1] - hz[1])
    relative = float(_dot(residual, residual).sqrt()) / norm0
    logger.info(
        "CG met negative curvature at its first step (the victim's fit is not at a minimum); "
        "using the block-diagonal gradient of Li et al. Eq. 12 (relative residual %.2g)",
        relative,
    )
    return HessianSolution(z, relative, True)


def implicit_gradient(
    entries: Entries,
    users: torch.Tensor,
    items: torch.Tensor,
    lambda_u: float,
    lambda_v: float,
    grad_theta: Factors,
    rows: torch.Tensor,
    cols: torch.Tensor,
    method: Method = "cg",
    max_iter: int = 50,
    tol: float = 1e-2,
) -> ImplicitGradient:
    """``dR/dM̃`` at the entries ``(rows, cols)`` of the (stacked) training matrix.

    ``grad_theta = (∂R/∂U, ∂R/∂V)`` is the utility's gradient at the victim's solution
    ``(users, items)`` fitted on ``entries``. CG stops at relative residual ``tol``; the
    default is ample for an ascent direction (on planted data PGA's final utility is the same
    to 0.2 % with 1e-4, 1e-2 and 1e-1). The residual reached, and whether the solve fell back
    to the block form (:func:`solve_hessian`), are returned too.
    """
    (z_u, z_v), residual, fallback = solve_hessian(
        entries, users, items, lambda_u, lambda_v, grad_theta, method, max_iter, tol
    )
    gradient = 2 * ((z_u[rows] * items[cols]).sum(1) + (z_v[cols] * users[rows]).sum(1))
    return ImplicitGradient(gradient, residual, fallback)


# -- attacker utilities (Li et al. §3) and their gradients with respect to θ -------------------
def availability_objective(
    users: torch.Tensor, items: torch.Tensor, clean: Factors, normal: Entries
) -> tuple[float, Factors]:
    """``R^av = ‖R_{Ω^C}(M̂ − M̄)‖²_F`` (Eq. 7) over the normal users and its gradient.

    ``M̂ = UVᵀ`` (first ``normal.shape[0]`` rows of ``users``), ``M̄ = ŪV̄ᵀ`` the clean model's
    prediction, ``Ω`` the normal users' observed entries. ``M̂ − M̄`` is low rank, so the sum over
    all unseen entries is ``‖M̂ − M̄‖²_F − ‖R_Ω(M̂ − M̄)‖²`` computed from ``k × k`` Gram
    matrices — no dense ``m × n`` matrix.
    """
    m = normal.shape[0]
    u, (cu, cv) = users[:m], clean
    gram_v, cross_v = items.T @ items, cv.T @ items
    full = (
        ((u.T @ u) * gram_v).sum()
        - 2 * ((u.T @ cu) * cross_v.T).sum()
        + ((cu.T @ cu) * (cv.T @ cv)).sum()
    )
    rows, cols = normal.rows, normal.cols
    diff = (u[rows] * items[cols]).sum(1) - (cu[rows] * cv[cols]).sum(1)
    value = full - diff.square().sum()
    grad_u = torch.zeros_like(users)
    grad_u[:m] = 2 * (
        u @ gram_v
        - cu @ cross_v
        - torch.zeros_like(u).index_add_(0, rows, diff[:, None] * items[cols])
    )
    grad_v = 2 * (
        items @ (u.T @ u)
        - cv @ (cu.T @ u)
        - torch.zeros_like(items).index_add_(0, cols, diff[:, None] * u[rows])
    )
    return float(value), (grad_u, grad_v)


def integrity_objective(
    users: torch.Tensor,
    items: torch.Tensor,
    n_normal: int,
    targets: torch.Tensor,
    weights: torch.Tensor,
    offset: float,
) -> tuple[float, Factors]:
    """``R^in = Σ_{i normal} Σ_{j∈J0} w(j) M̂_ij`` (Eq. 8), ``M̂ = offset + UVᵀ``; and gradient."""
    u = users[:n_normal]
    user_sum = u.sum(0)
    value = (weights * (items[targets] @ user_sum + offset * n_normal)).sum()
    grad_u = torch.zeros_like(users)
    grad_u[:n_normal] = (weights[:, None] * items[targets]).sum(0)
    grad_v = torch.zeros_like(items)
    grad_v[targets] = weights[:, None] * user_sum
    return float(value), (grad_u, grad_v)
