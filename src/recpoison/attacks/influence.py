"""Influence of users on a target item for MF top-N recommenders (Fang et al. 2020, §4.3).

The attacker's model is Eq. (1): ``min Σ_E (r_ui − x_uᵀy_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)``, fitted by
ALS on the raw ratings (:class:`FittedMF`). Removing the rating ``(k, j)`` moves the solution by
``Δθ ≈ H⁻¹ ∇_θ ℓ((k,j), θ*)`` (Eq. 11-12 with ``ζ = −1/|E|``: the ``1/|E|`` of the averaged
objective cancels against its Hessian), so

    Φ((k,j),(o,t)) = ∇_θ r̂_otᵀ H⁻¹ ∇_θ ℓ((k,j))                              (Eq. 12)
    φ((k,j),t) = Σ_o |Φ((k,j),(o,t))|,   π(k,t) = Σ_{j∈Ω_k} φ((k,j),t)        (Eqs. 13, 8)
    F(S,t) = Σ_{k∈S} π(k,t)                                                    (Eq. 9)

with ``ℓ = (r_kj − x_kᵀy_j)²``, ``∇_{x_k}ℓ = −2e_kj y_j``, ``∇_{y_j}ℓ = −2e_kj x_k`` and
``∇ r̂_ot = (y_t at x_o, x_o at y_t)``. ``H`` is never formed. Two ways to apply ``H⁻¹``:

* ``"block"`` (default): the per-row diagonal blocks ``2(λI + Σ_{j∈Ω_k} y_j y_jᵀ)`` of the
  users and ``2(λI + Σ_{u∈Ω^t} x_u x_uᵀ)`` of the target — the same block structure Fang et al.
  use for the attack's own gradient (Eqs. 20-21, ``∂x_u/∂w = 0``) and Li et al.'s Eq. (12).
  ``Φ`` is then nonzero only for ``o = k`` or ``j = t``:
  ``Φ = −e_kj y_tᵀA_k⁻¹y_j [o=k] − e_kt x_oᵀB_t⁻¹x_k [j=t]``, so ``π`` for every user costs one
  block solve per user (``d × d``, or its Woodbury form for a user with fewer than ``d``
  ratings), the target's one item block, and one pass over the ratings: ``O(|E| d + m d³)``,
  linear in the number of users, as the paper's complexity claim needs.
* ``"cg"``: the exact Hessian, ``H⁻¹ ∇r̂_ot`` for a batch of users ``o`` at once by conjugate
  gradients with Hessian-vector products (``torch.func``), preconditioned by the blocks above.
  One solve per user ``o`` (the absolute value of Eq. 13 forbids summing over ``o`` first), so
  ``O(m · iterations · |E| d)``: quadratic in the users, for small data and for checking.

Algorithm 1 is :func:`greedy_influential_users`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from recpoison.attacks.kkt import RowBlockInverse
from recpoison.errors import ConfigError
from recpoison.victims.mf import Entries, als, cholesky_solve, initial_items

logger = logging.getLogger(__name__)

InfluenceMethod = Literal["block", "cg"]
DTYPE = torch.float64
#: Largest ``users_in_batch × ratings × d`` floats held at once by the exact (``"cg"``) method.
_CG_BUDGET = 1 << 24


@dataclass(frozen=True)
class FittedMF:
    """Eq. (1) fitted by ALS: the ratings ``entries`` (raw values), factors and ``lam``."""

    entries: Entries
    users: torch.Tensor
    items: torch.Tensor
    lam: float

    @classmethod
    def fit(
        cls,
        entries: Entries,
        rank: int,
        lam: float,
        iterations: int,
        seed: int = 0,
        warm_items: torch.Tensor | None = None,
    ) -> FittedMF:
        """ALS from random item factors (or ``warm_items``) for ``iterations`` sweeps."""
        start = (
            initial_items(entries.shape[1], rank, seed, DTYPE, entries.values.device)
            if warm_items is None
            else warm_items
        )
        users, items, _ = als(entries, start[None], lam, lam, iterations, record=False)
        return cls(entries, users[0], items[0], lam)

    @property
    def residuals(self) -> torch.Tensor:
        """``e_kj = r_kj − x_kᵀy_j`` per rating."""
        e = self.entries
        return e.values - (self.users[e.rows] * self.items[e.cols]).sum(1)

    def loss_gradient(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``∇_θ`` of Eq. (1) at ``(users, items)``, flattened (for Hessian-vector products)."""
        e = self.entries
        residual = e.values - (users[e.rows] * items[e.cols]).sum(1)
        g_u = -2 * torch.zeros_like(users).index_add_(0, e.rows, residual[:, None] * items[e.cols])
        g_v = -2 * torch.zeros_like(items).index_add_(0, e.cols, residual[:, None] * users[e.rows])
        return torch.cat(
            [(g_u + 2 * self.lam * users).ravel(), (g_v + 2 * self.lam * items).ravel()]
        )


def _block_factors(model: FittedMF) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors of ``λI + Σ_j y_j y_jᵀ`` per user and ``λI + Σ_u x_u x_uᵀ`` per item."""
    eye = torch.eye(model.users.shape[1], dtype=DTYPE, device=model.users.device)
    user_gram = model.entries.row_outer(model.items, model.items) + model.lam * eye
    item_gram = model.entries.transpose().row_outer(model.users, model.users) + model.lam * eye
    return torch.linalg.cholesky(user_gram), torch.linalg.cholesky(item_gram)


def rating_influence(
    model: FittedMF, target: int, method: InfluenceMethod = "block", **cg: float
) -> np.ndarray:
    """``φ((k,j),t)`` (Eq. 13) for every rating of ``model.entries``, in their order."""
    if method == "block":
        return _block_rating_influence(model, target)
    if method == "cg":
        phi = np.zeros(model.entries.nnz)
        for _, block in influence_columns(model, target, **cg):
            phi += np.abs(block).sum(1)
        return phi
    raise ConfigError(f"influence method must be 'block' or 'cg', not {method!r}")


def user_influence(
    model: FittedMF, target: int, method: InfluenceMethod = "block", **cg: float
) -> np.ndarray:
    """``π(k,t)`` (Eq. 8) for every user row ``k`` of the model."""
    phi = rating_influence(model, target, method, **cg)
    rows = model.entries.rows.cpu().numpy()
    return np.bincount(rows, weights=phi, minlength=model.entries.shape[0])


def _block_rating_influence(model: FittedMF, target: int) -> np.ndarray:
    """The ``"block"`` method: ``A_k⁻¹ y_t`` for every user as ALS solves its rows
    (:class:`~recpoison.attacks.kkt.RowBlockInverse`, the inverse of ``2A_k``), and the target's
    one item block ``B_t`` from its raters alone."""
    e = model.entries
    users, items = model.users, model.items
    residual = model.residuals
    y_t = items[target]
    # a_k = A_k⁻¹ y_t for every user: Φ((k,j),(k,t)) = −e_kj a_kᵀ y_j
    a = 2 * RowBlockInverse(e, items, model.lam)(y_t.expand(users.shape[0], -1))
    own = -residual * (a[e.rows] * items[e.cols]).sum(1)
    phi = own.abs()
    on_target = torch.nonzero(e.cols == target).ravel()
    if len(on_target):
        raters = e.rows[on_target]
        x = users[raters]
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        # c_k = B_t⁻¹ x_k: Φ((k,t),(o,t)) = −e_kt x_oᵀ c_k for every user o
        c = torch.cholesky_solve(x.T, torch.linalg.cholesky(model.lam * eye + x.T @ x))
        others = -residual[on_target] * (users @ c)  # [users, raters]
        others[raters, torch.arange(len(raters))] += own[on_target]  # o = k: both terms
        phi[on_target] = others.abs().sum(0)
    return phi.cpu().numpy()


# -- the exact Hessian ---------------------------------------------------------------------------
def influence_columns(
    model: FittedMF, target: int, max_iter: int = 100, tol: float = 1e-8
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``Φ((k,j),(o,t))`` with the exact Hessian: ``(users o, [ratings, len(o)] block)`` pairs.

    ``v_o = H⁻¹ ∇r̂_ot`` for a batch of users by block-preconditioned CG, then
    ``Φ = −2e_kj (v_o[x_k]·y_j + v_o[y_j]·x_k)``.
    """
    e = model.entries
    m, n, d = e.shape[0], e.shape[1], model.users.shape[1]
    batch = max(1, _CG_BUDGET // max(1, e.nnz * d))
    residual = model.residuals
    hvp = _hessian_vector_product(model)
    precondition = _block_preconditioner(model)
    out = []
    for start in range(0, m, batch):
        users = np.arange(start, min(start + batch, m))
        rhs = torch.zeros(len(users), (m + n) * d, dtype=DTYPE)
        b = torch.arange(len(users))
        rhs.view(len(users), m + n, d)[b, torch.as_tensor(users)] = model.items[target]
        rhs.view(len(users), m + n, d)[b, m + target] += model.users[users]
        v = _batched_cg(hvp, precondition, rhs, max_iter, tol).view(len(users), m + n, d)
        v_u, v_v = v[:, :m], v[:, m:]
        block = (
            -2
            * residual[None]
            * (
                (v_u[:, e.rows] * model.items[e.cols]).sum(-1)
                + (v_v[:, e.cols] * model.users[e.rows]).sum(-1)
            )
        )
        out.append((users, block.T.cpu().numpy()))
    return out


def _hessian_vector_product(model: FittedMF) -> Callable[[torch.Tensor], torch.Tensor]:
    """``P ↦ H P`` for a batch of flattened directions ``[B, (m + n) d]`` (forward-over-grad)."""
    m, d = model.users.shape
    theta = torch.cat([model.users.ravel(), model.items.ravel()])

    def gradient(flat: torch.Tensor) -> torch.Tensor:
        return model.loss_gradient(flat[: m * d].view(m, d), flat[m * d :].view(-1, d))

    def product(direction: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(gradient, (theta,), (direction,))[1]

    return torch.func.vmap(product)


def _block_preconditioner(model: FittedMF) -> Callable[[torch.Tensor], torch.Tensor]:
    """The inverse of the diagonal blocks ``2(λI + Σ)`` of ``H``, for batched directions."""
    user_factor, item_factor = _block_factors(model)
    d = model.users.shape[1]
    factors = torch.cat([user_factor, item_factor])  # [m + n, d, d]

    def apply(r: torch.Tensor) -> torch.Tensor:
        blocks = r.view(r.shape[0], -1, d)[..., None]
        return (cholesky_solve(blocks, factors)[..., 0] / 2).reshape(r.shape)

    return apply


def _batched_cg(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    precondition: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    max_iter: int,
    tol: float,
) -> torch.Tensor:
    """Preconditioned CG on every row of ``rhs`` at once (per-row step sizes)."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    y = precondition(r)
    p = y.clone()
    ry = (r * y).sum(1)
    norm0 = rhs.norm(dim=1).clamp_min(1e-300)
    for _ in range(max_iter):
        hp = hvp(p)
        alpha = ry / (p * hp).sum(1).clamp_min(1e-300)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * hp
        if float((r.norm(dim=1) / norm0).max()) <= tol:
            break
        y = precondition(r)
        ry_new = (r * y).sum(1)
        p = y + (ry_new / ry.clamp_min(1e-300))[:, None] * p
        ry = ry_new
    logger.debug("influence CG: relative residual %.1e", float((r.norm(dim=1) / norm0).max()))
    return x


# -- Algorithm 1 ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Algorithm 1's output: users in the order chosen and ``F(S_i, t)`` after each choice."""

    users: np.ndarray
    objective: np.ndarray


def set_influence(pi: np.ndarray, selected: np.ndarray) -> float:
    """``F(S,t) = Σ_{k∈S} π(k,t)`` (Eq. 9) for the boolean mask ``selected``."""
    return float(pi[selected].sum())


def greedy_select(
    objective: Callable[[np.ndarray], float],
    marginal_gains: Callable[[np.ndarray], np.ndarray],
    n_users: int,
    budget: int,
    rng: np.random.Generator,
) -> Selection:
    """Algorithm 1 for a set function: ``budget`` times, add the user of largest marginal gain
    ``F(S ∪ {k}) − F(S)`` (``marginal_gains(selected)``, recomputed after every choice, one value
    per user), ties broken at random (§4.3.2). ``objective(selected)`` is ``F(S)``."""
    if budget < 1:
        raise ConfigError(f"the influential user budget must be >= 1, got {budget}")
    selected = np.zeros(n_users, dtype=bool)
    tie_break = rng.random(n_users)
    chosen, path = [], []
    for _ in range(min(budget, n_users)):
        gains = np.where(selected, -np.inf, marginal_gains(selected))
        best = np.flatnonzero(gains == gains.max())
        pick = int(best[np.argmax(tie_break[best])])
        selected[pick] = True
        chosen.append(pick)
        path.append(objective(selected))
    return Selection(np.asarray(chosen, dtype=np.int64), np.asarray(path))


def influential_users(pi: np.ndarray, budget: int, rng: np.random.Generator) -> Selection:
    """Algorithm 1 on ``F(S,t)`` of Eq. (9), from the user influences ``pi`` (Eq. 8).

    ``F`` is additive, so the marginal gain of ``k`` is ``π(k,t)`` whatever ``S`` is and the
    greedy path is exactly the top-``budget`` users by ``π`` (ties in random order). The loop is
    kept as published: it is what gives Theorem 2's (1 − 1/e) bound for any monotone
    submodular ``F``, and a non-additive ``F`` plugs into :func:`greedy_select` unchanged.
    Users of zero influence (for example outside the attacker's view) are never preferred to
    users of positive influence.
    """
    return greedy_select(
        lambda selected: set_influence(pi, selected),
        lambda selected: pi,
        len(pi),
        budget,
        rng,
    )
