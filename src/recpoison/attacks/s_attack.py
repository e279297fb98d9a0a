"""The S-attack family on MF top-N recommenders (Fang, Gong, Liu, WWW 2020, §4, §5.1.2, §7.2).

Algorithm 2: the fake users are optimised one after the other, each inserted (with its final,
discrete ratings) before the next is optimised. For fake user ``v``:

1. The attacker's MF model (Eq. 14: Eq. (1) on the current data plus ``v``, who rates every
   item with the relaxed ratings ``w_v ∈ [0, r_max]``, §4.1) is fitted by ALS on the raw
   ratings, warm-started from the previous fit.
2. The loss of Eq. (6), ``Σ_{u∈S} H_u Σ_{i∈Γ_u} g(r̂_ui − r̂_ut) + η‖w_v‖₁`` with the
   Wilcoxon-Mann-Whitney surrogate ``g(x) = 1/(1 + exp(−x/b))`` and ``Γ_u`` the top-N items
   ``u`` has not rated (the target excluded: it is what is compared), is differentiated with
   respect to ``w_v`` through the stationarity conditions of Eq. (14) (Eqs. 15-21):
   ``gradient="block"`` is Eqs. (20)-(21) as printed — ``∂x_u/∂w_v = 0`` and
   ``∂y_i/∂w_vi = (λI + Σ_{u∈Ω^i} x_u x_uᵀ + z zᵀ)⁻¹ z`` — which is the block-diagonal solve of
   :func:`recpoison.attacks.kkt.implicit_gradient`; ``gradient="cg"`` (default) is the exact
   implicit gradient of the same conditions (every factor moves; what a finite difference of
   the refitted model measures, tested).
3. ``n_iter`` projected subgradient steps (§4.4, [3]) ``w ← Proj_[0, r_max](w − s_t G)`` with
   ``s_t = step_size · r_max / (‖G‖_∞ √(t + 1))`` (the paper leaves ``s_t`` open: a diminishing,
   scale-free rule), the model refitted after each step; the iterate of lowest loss is kept.
4. The ``n_fillers`` items of largest ``w_vi`` become the fillers (ties at random), ``r_vt =
   r_max``, filler ratings ``~ N(μ_i, σ_i²)`` of the normal users' ratings, rounded to the scale
   (Algorithm 2, steps 5-7).

The variants differ in ``S`` and ``H`` (§5.1.2, §7.2): ``u-tna`` all normal users, ``s-tna-rand``
``n_influential`` (Δ) random users, ``s-tna-inf`` the Δ users of Algorithm 1
(:mod:`recpoison.attacks.influence`), ``weighting`` all users weighted by ``|U| π(k,t)/Σπ``
(Eq. 31 times ``|U|``, see :class:`WeightingAttack`). ``H_u = 1`` except for ``weighting``.

Two deviations, measured on planted data (mean HR@10 over 8 targets at 5 %, random attack
0.136): ``b = 1`` instead of §5.1.4's 0.01 — predictions are on the rating scale, where a target
outside a top-N list trails its items by 0.1-1 star, and with b = 0.01 ``g`` is flat there
(``g' ≈ e^{-100}/b``): the loss did not move and the fillers were the random tie-break (b = 0.1:
0.177, b = 1: 0.211 for U-TNA); and the exact gradient by default — Eqs. (20)-(21) hold the
fake user's ``z`` and the target's ``y_t`` fixed, so they cannot see that rating an item pulls
``z`` and through it ``y_t``; U-TNA with them scored 0.128.

Choices where the paper is silent, all documented here: ``w_v`` starts at 0 (a fake user who has
rated only the target; the ℓ1 term then keeps it sparse); the target's rating is fixed at
``r_max`` while optimising (Algorithm 2 step 6 sets it so anyway); λ is not printed in the paper
(default 10, the library's ALS default); one target per call (the runner attacks each target of a
set separately, as the paper does). Nothing a fake user's optimisation reads depends on how many
are still to come, so sizes share their work (:mod:`recpoison.attacks.prefix`): an attack of 34
fake users goes on from the state an attack of 20 left.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.influence import (
    DTYPE,
    FittedMF,
    InfluenceMethod,
    influential_users,
    user_influence,
)
from recpoison.attacks.kkt import Factors, Method, implicit_gradient
from recpoison.attacks.prefix import SequentialAttack, SequentialProgress, StepHook
from recpoison.attacks.ratings import RatingSampler, max_rating
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, derive_seed, resolve_device
from recpoison.victims.base import Recommender
from recpoison.victims.mf import Entries

logger = logging.getLogger(__name__)

UserSet = Literal["all", "random", "influence", "weights"]


def wmw_loss(
    model: FittedMF,
    users: np.ndarray,
    weights: torch.Tensor,
    target: int,
    seen: sp.csr_matrix,
    top_n: int,
    b: float,
) -> tuple[float, Factors]:
    """``Σ_u H_u Σ_{i∈Γ_u} g(r̂_ui − r̂_ut)`` (Eq. 6 / Eq. 30 without ℓ1) and its gradient
    with respect to the factors; ``Γ_u`` (top ``top_n`` of the items ``u`` has not rated in
    ``seen``, never the target) is held fixed while differentiating, as Eq. (15) does."""
    x = model.users[users]
    scores = x @ model.items.T
    rated = seen[users].tocoo()
    scores[rated.row, rated.col] = -torch.inf
    scores[:, target] = -torch.inf
    top = torch.topk(scores, top_n, dim=1).indices  # Γ_u
    delta = torch.gather(scores, 1, top) - (x @ model.items[target])[:, None]
    g = torch.sigmoid(delta / b)
    value = float((weights[:, None] * g).sum())
    slope = weights[:, None] * g * (1 - g) / b  # ∂g/∂δ (Eq. 15)
    y_gap = model.items[top] - model.items[target]  # [|S|, N, d]
    grad_u = torch.zeros_like(model.users)
    grad_u[users] = (slope[..., None] * y_gap).sum(1)
    grad_v = torch.zeros_like(model.items)
    grad_v.index_add_(0, top.ravel(), (slope[..., None] * x[:, None, :]).reshape(-1, x.shape[1]))
    grad_v[target] -= (slope.sum(1)[:, None] * x).sum(0)
    return value, (grad_u, grad_v)


class SAttack(SequentialAttack):
    """S-TNA-Inf, the S-attack (Fang et al. 2020, Algorithm 2 with Algorithm 1); see the module
    docstring for the algorithm and every reconstructed choice.

    Defaults from §5.1.4: ``rank`` d = 64 (the attacker's MF; Figure 1 varies it independently
    of the victim's), ``n_influential`` Δ = 400, ``eta`` η = 0.01, ``top_n`` N = 10,
    ``n_fillers`` n = 20; ``b`` = 1 (not 0.01, see the module docstring). ``lam`` λ of
    Eq. (1); ``fit_iterations`` ALS sweeps of the first fit, ``inner_iterations`` warm sweeps
    after each step; ``n_iter`` subgradient steps per
    fake user; ``gradient`` ``"cg"`` (exact, default) or ``"block"`` (Eqs. 20-21); ``influence``
    ``"block"`` or ``"cg"`` (:mod:`recpoison.attacks.influence`). ``info`` holds the users in
    ``S``, ``F(S,t)`` along Algorithm 1's path, and per fake user the loss before and after.
    """

    name = "s-tna-inf"
    requires: ClassVar[frozenset[str]] = frozenset({"explicit_ratings"})
    user_set: ClassVar[UserSet] = "influence"

    def __init__(
        self,
        *,
        n_fillers: int = 20,
        n_influential: int = 400,
        eta: float = 0.01,
        b: float = 1.0,
        top_n: int = 10,
        rank: int = 64,
        lam: float = 10.0,
        n_iter: int = 10,
        step_size: float = 0.5,
        fit_iterations: int = 20,
        inner_iterations: int = 2,
        gradient: Method = "cg",
        influence: InfluenceMethod = "block",
        cg_iterations: int = 20,
        device: str = "auto",
    ) -> None:
        super().__init__(n_fillers=n_fillers)
        self.n_influential = n_influential
        self.eta = eta
        self.b = b
        self.top_n = top_n
        self.rank = rank
        self.lam = lam
        self.n_iter = n_iter
        self.step_size = step_size
        self.fit_iterations = fit_iterations
        self.inner_iterations = inner_iterations
        self.gradient = gradient
        self.influence = influence
        self.cg_iterations = cg_iterations
        self.device = device

    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
        resume_from: SequentialProgress | None = None,
        on_step: StepHook | None = None,
    ) -> FakeProfiles:
        """``n_fake`` fake users promoting the one item of ``targets`` (Algorithm 2), going on
        from ``resume_from`` (an earlier call's ``progress_``) when it was made with the same
        inputs and fewer fake users; ``on_step`` gets the state after each fake user, and the
        state after the last one is left in ``progress_``."""
        started = time.perf_counter()
        targets = self._validate(train, targets, n_fake, surrogate)
        target = int(targets[0])
        progress = self._resume_or_start(train, targets, n_fake, random_state, resume_from)
        state, rng = progress.state, progress.rng
        device = state["base"].values.device
        weights = torch.as_tensor(state["weights"], dtype=DTYPE, device=device)
        seen = train.real_users().matrix
        sampler = RatingSampler.fit(train, per_item=True)
        r_max = max_rating(train)
        free = np.setdiff1d(np.arange(train.n_items), targets)
        for v in range(progress.n_fake, n_fake):
            w, state["items"], history = self._optimise(
                state["base"], state["items"], free, target, r_max, state["users"], weights, seen
            )
            keys = np.lexsort((rng.random(len(free)), -w))  # largest w_vi, ties at random
            fillers = free[keys[: self.n_fillers]]
            ratings = sampler.sample(fillers, rng).astype(np.float32)
            state["base"] = state["base"].stack(
                _profile_row(fillers, ratings, target, r_max, train.n_items, device)
            )
            progress.fillers.append(fillers)
            progress.ratings.append(ratings)
            state["loss_initial"].append(history[0])
            state["loss_final"].append(min(history))
            logger.debug(
                "%s fake user %d: loss %.4g -> %.4g", self.name, v, history[0], min(history)
            )
            if on_step is not None:
                on_step(progress)
        info = {
            **state["info"],
            "loss_initial": state["loss_initial"],
            "loss_final": state["loss_final"],
        }
        return self._finish(progress, train, targets, started, info)

    def _start(
        self, train: Interactions, targets: np.ndarray, rng: np.random.Generator
    ) -> dict[str, Any]:
        """The state before the first fake user: the attacker's MF fitted on the normal users'
        raw ratings, and the users (and weights) of the loss."""
        device = resolve_device(self.device)
        base = Entries.from_interactions(train.real_users(), 0.0, DTYPE, device)
        model = FittedMF.fit(base, self.rank, self.lam, self.fit_iterations, derive_seed(rng))
        users, weights, info = self._loss_users(model, int(targets[0]), rng)
        return {
            "base": base,
            "items": model.items,
            "users": users,
            "weights": weights,
            "info": info,
            "loss_initial": [],
            "loss_final": [],
        }

    def _optimise(
        self,
        base: Entries,
        items: torch.Tensor,
        free: np.ndarray,
        target: int,
        r_max: float,
        users: np.ndarray,
        weights: torch.Tensor,
        seen: sp.csr_matrix,
    ) -> tuple[np.ndarray, torch.Tensor, list[float]]:
        """Projected subgradient descent on Eq. (6) for one fake user: ``(best w_v, the last
        item factors, loss per step)``."""
        device = base.values.device
        row = base.shape[0]
        cols = torch.as_tensor(np.append(free, target), device=device)
        free_cols = cols[:-1]
        fake_rows = torch.full((len(free),), row, device=device)
        w = torch.zeros(len(free), dtype=DTYPE, device=device)
        best, best_loss, history = w, np.inf, []
        for t in range(self.n_iter + 1):
            values = torch.cat([w, torch.tensor([r_max], dtype=DTYPE, device=device)])
            fake = Entries(torch.zeros_like(cols), cols, values, (1, base.shape[1]))
            model = FittedMF.fit(
                base.stack(fake), self.rank, self.lam, self.inner_iterations, warm_items=items
            )
            items = model.items
            value, grad_theta = wmw_loss(model, users, weights, target, seen, self.top_n, self.b)
            loss = value + self.eta * float(w.sum())
            history.append(loss)
            if loss < best_loss:
                best, best_loss = w, loss
            if t == self.n_iter:
                break
            implicit = implicit_gradient(
                model.entries,
                model.users,
                model.items,
                self.lam,
                self.lam,
                grad_theta,
                fake_rows,
                free_cols,
                self.gradient,
                self.cg_iterations,
            )
            # ∂‖w‖₁ = 1 on w ≥ 0 (the projection keeps w ≥ 0)
            subgradient = implicit.gradient + self.eta
            scale = float(subgradient.abs().max())
            if scale > 0:
                step = self.step_size * r_max / (scale * (t + 1) ** 0.5)
                w = (w - step * subgradient).clamp(0.0, r_max)
        return best.cpu().numpy(), items, history

    def _validate(
        self, train: Interactions, targets: np.ndarray, n_fake: int, surrogate: Recommender | None
    ) -> np.ndarray:
        targets = self.check_inputs(train, targets, n_fake, surrogate)
        if len(np.unique(targets)) != 1:
            raise ConfigError(
                f"{self.name} promotes one target item per call, got {len(targets)}; "
                "attack each target separately (the runner does)"
            )
        if self.gradient not in ("block", "cg"):
            raise ConfigError(
                f"{self.name}: gradient must be 'block' or 'cg', not {self.gradient!r}"
            )
        if min(self.n_fillers, self.n_influential, self.top_n, self.rank) < 1:
            raise ConfigError(f"{self.name}: n_fillers, n_influential, top_n and rank must be >= 1")
        if self.b <= 0 or self.lam <= 0 or self.eta < 0 or self.step_size <= 0:
            raise ConfigError(f"{self.name}: need b > 0, lam > 0, eta >= 0 and step_size > 0")
        if self.n_iter < 0 or self.inner_iterations < 1 or self.fit_iterations < 1:
            raise ConfigError(
                f"{self.name}: need n_iter >= 0, inner_iterations >= 1 and fit_iterations >= 1"
            )
        return targets[:1]

    # -- S and H ----------------------------------------------------------------------------------
    def _loss_users(
        self, model: FittedMF, target: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The users of the loss, their weights ``H_u`` and what to report about them."""
        m = model.entries.shape[0]
        if self.user_set == "all":
            return np.arange(m), np.ones(m), {"n_loss_users": m}
        if self.user_set == "random":
            users = np.sort(rng.choice(m, size=min(self.n_influential, m), replace=False))
            return users, np.ones(len(users)), {"n_loss_users": len(users)}
        pi = user_influence(model, target, self.influence)
        if self.user_set == "weights":
            total = pi.sum()
            weights = m * pi / total if total > 0 else np.ones(m)  # Eq. (31) times |U|
            return np.arange(m), weights, {"n_loss_users": m}
        selection = influential_users(pi, self.n_influential, rng)
        users = selection.users
        return (
            users,
            np.ones(len(users)),
            {
                "n_loss_users": len(users),
                "influence_path": selection.objective.tolist(),
                "influence_share": float(selection.objective[-1] / max(pi.sum(), 1e-300)),
            },
        )


def _profile_row(
    fillers: np.ndarray,
    ratings: np.ndarray,
    target: int,
    r_max: float,
    n_items: int,
    device: torch.device,
) -> Entries:
    """One inserted fake user (Algorithm 2 step 8) as a one-row block of raw ratings."""
    cols = torch.as_tensor(np.append(fillers, target), device=device)
    values = torch.as_tensor(np.append(ratings, r_max), dtype=DTYPE, device=device)
    return Entries(torch.zeros_like(cols), cols, values, (1, n_items))


class UTNAAttack(SAttack):
    """U-TNA (§5.1.2): the S-attack with ``S`` = every normal user (``n_influential`` unused)."""

    name = "u-tna"
    user_set = "all"


class STNARandAttack(SAttack):
    """S-TNA-Rand (§5.1.2): ``S`` = ``n_influential`` (Δ) normal users drawn at random."""

    name = "s-tna-rand"
    user_set = "random"


class WeightingAttack(SAttack):
    """Weighting (§7.2, Eqs. 30-31): every normal user in the loss, weighted by
    ``H_k = |U| π(k,t) / Σ_u π(u,t)`` (``n_influential`` unused).

    Eq. (31) normalises the weights to sum to 1, which makes the WMW term ``|U|`` times smaller
    than U-TNA's while ``η‖w‖₁`` keeps its size: on planted data (300 users) the ℓ1 term then
    dominates and the attack is no better than a random one (HR@10 0.128 against 0.136). The
    factor ``|U|`` (mean weight 1) is the same as dividing η by ``|U|``: the relative weights
    are Eq. (31)'s and the balance with the ℓ1 term is U-TNA's."""

    name = "weighting"
    user_set = "weights"
