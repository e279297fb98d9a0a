"""Poisoning the random-walk recommender: the Fang et al. (ACSAC 2018) attack and S-Graph.

Reconstructed from Fang, Gong, Liu (WWW 2020) §4 and §7.1, which optimise "the attack proposed
by [10]" (Fang, Yang, Gong, Liu, ACSAC 2018); the choices the seed leaves open are marked
(R1)-(R8).

Per fake user v, in sequence (each one is inserted into the graph before the next is
optimised, §4): v rates the target(s) ``r_max`` and has relaxed edge weights ``w_v ∈ [0, r_max]``
to every other item (§4.1); they minimise the WMW surrogate of the hit ratio (Eq. 6 with the
walk's probabilities as predictions)

    ``L(w_v) = Σ_{u∈S} Σ_{i∈Γ_u} g((p_ui − p_ut) / s_u) + η ‖w_v‖₁``,
    ``g(x) = 1 / (1 + exp(−x / b))``

where ``p_u`` is the stationary distribution of the walk from u on the graph with v's weighted
edges (Eqs. 22-23), ``Γ_u`` u's current top-N unrated items, ``s_u`` their mean probability
(R8). ``S`` is every normal user for ``graph-attack`` (Fang et al. 2018) and the Δ most
influential ones for ``s-graph`` (Eqs. 24-29, Algorithm 1,
:mod:`recpoison.attacks.graph_influence`). The n items with the largest ``w_v``
become the fillers, rated ``N(μ_i, σ_i²)`` of the normal users' ratings rounded to the scale, and
the target ``r_max`` (Algorithm 2, steps 5-7). Nothing a fake user's optimisation reads depends
on how many are still to come, so sizes share their work (:mod:`recpoison.attacks.prefix`).

Reconstructed choices:

- (R1) Gradients through the fixed point by implicit differentiation: with ``p = α e + (1 − α)
  T(w) p`` and the adjoint ``λ = ∂L/∂p + (1 − α) T(w)ᵀ λ`` (one more fixed-point solve),
  ``dL/dw = (1 − α) ∂/∂w [λᵀ T(w) p]`` at fixed ``p, λ`` — a closed form in w, see
  :meth:`FakeUserGraph.weight_vjp`. Unrolling the power iteration would give the same gradient
  at convergence but keep every iterate for the backward pass (memory x iterations); this needs
  two ``[nodes, |S|]`` blocks. Checked against finite differences in the tests.
- (R2) ``Γ_u`` is recomputed from the current ``p_u`` at every step and held fixed inside the
  step's gradient (a subgradient of the piecewise objective).
- (R3) Only normal users who have not rated a target enter S (others can never be hit: the
  hit ratio and ``Γ_u`` range over unrated items); with several targets each term counts for the
  targets the user has not rated.
- (R4) Projected subgradient descent: steps of ``step_size · r_max / √(k+1)`` along the
  subgradient normalised by its largest entry (so the largest move is known whatever the scale of
  the probabilities, ~1e-4), projected onto ``[0, r_max]``; the best iterate is kept.
- (R5) ``w_v`` starts uniform, with the total weight of ``n`` mean ratings spread over the items.
- (R6) Defaults: ``η = 0.01``, N = 10 (§5.1.4), Δ = 400 (§7.1), α as the victim's default.
- (R7) ``∂‖w‖₁`` is 1 on the feasible set (``w ≥ 0``, the seed's ``w/|w|``).
- (R8) g compares probabilities in units of the user's mean top-N probability ``s_u``:
  ``g((p_ui − p_ut) / s_u)`` with ``b = 0.1``. The seed's ``b = 0.01`` is set for MF ratings
  (§5.1.4); stationary probabilities are ~1e-4, where g with ``b = 0.01`` is linear and the loss
  measures probability mass instead of rank. Measured on planted data (300 users, 9 fake users,
  4 targets): raw probabilities with ``b = 0.01`` HR@10 0.000-0.02; relative with b = 0.01 /
  0.03 / 0.1 / 0.3 / 1: 0.04 / 0.05 / 0.13 / 0.10 / 0.01.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from recpoison.attacks.graph_influence import user_influence
from recpoison.attacks.influence import influential_users
from recpoison.attacks.prefix import SequentialAttack, SequentialProgress, StepHook
from recpoison.attacks.ratings import RatingSampler, assemble_profiles, max_rating
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, resolve_device
from recpoison.victims.base import Recommender, mask_seen
from recpoison.victims.mf import torch_dtype
from recpoison.victims.random_walk import (
    DEFAULT_ALPHA,
    BipartiteWalk,
    HalfSteps,
    check_walk_params,
    restart_vectors,
    safe_degree,
    solve_fixed_point,
)

logger = logging.getLogger(__name__)


@dataclass
class FakeUserGraph:
    """The attacker's graph plus one fake user v whose edge weights ``w`` ``[n_items]`` vary.

    Node order: the users of ``walk``, then v, then the items. Transitions follow Eq. (23) on the
    graph with v's edges: items now have degree ``d_i + w_i``, v has degree ``Σ w``.
    """

    walk: BipartiteWalk

    @property
    def n_users(self) -> int:
        return self.walk.n_users + 1

    @property
    def n_nodes(self) -> int:
        return self.walk.n_nodes + 1

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.walk.n_users
        return x[:n], x[n : n + 1], x[n + 1 :]

    def _degrees(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The items' degrees ``d_i + w_i`` and v's degree ``Σ w``."""
        return safe_degree(self.walk.item_degree + w), w.sum().clamp_min(1e-30)

    def forward(self, w: torch.Tensor) -> HalfSteps:
        """``T(w)`` (see :attr:`~recpoison.victims.random_walk.BipartiteWalk.forward`); v is the
        last user node."""
        walk, n = self.walk, self.walk.n_users
        d_items, d_fake = self._degrees(w)
        inverse_items = 1.0 / d_items[:, None]

        def to_users(p_items: torch.Tensor) -> torch.Tensor:
            scaled = p_items * inverse_items
            return torch.cat([walk.entries.matrix_mm(scaled), w[None] @ scaled])

        def to_items(p_users: torch.Tensor) -> torch.Tensor:
            moved = walk.transposed.matrix_mm(p_users[:n] * walk.inverse_user_degree)
            return moved.addmm_(w[:, None], p_users[n:] / d_fake)

        return HalfSteps(self.n_users, to_users, to_items)

    def adjoint(self, w: torch.Tensor) -> HalfSteps:
        """``T(w)ᵀ``."""
        walk, n = self.walk, self.walk.n_users
        d_items, d_fake = self._degrees(w)
        inverse_items = 1.0 / d_items[:, None]

        def to_users(lam_items: torch.Tensor) -> torch.Tensor:
            at_users = walk.entries.matrix_mm(lam_items) * walk.inverse_user_degree
            return torch.cat([at_users, (w[None] @ lam_items) / d_fake])

        def to_items(lam_users: torch.Tensor) -> torch.Tensor:
            gathered = walk.transposed.matrix_mm(lam_users[:n]).addmm_(w[:, None], lam_users[n:])
            return gathered.mul_(inverse_items)

        return HalfSteps(self.n_users, to_users, to_items)

    def weight_vjp(self, lam: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``∂/∂w [Σ_b λ_bᵀ T(w) p_b]`` at fixed ``λ, p`` ``[nodes, B]``, in closed form.

        Three terms of ``λᵀ T(w) p`` depend on w (item degrees ``d'_i = d_i + w_i``, fake degree
        ``D = Σ w``): ``Σ_i a_i / d'_i`` (items to users, ``a_i = Σ_b (Rᵀλ_U)_ib p_ib``),
        ``Σ_i w_i c_i / d'_i`` (items to v, ``c_i = Σ_b λ_vb p_ib``) and ``Σ_i w_i e_i / D``
        (v to items, ``e_i = Σ_b λ_ib p_vb``).
        """
        lam_users, lam_fake, lam_items = self._split(lam)
        _, p_fake, p_items = self._split(p)
        d_items, d_fake = self._degrees(w)
        a = (self.walk.transposed.matrix_mm(lam_users) * p_items).sum(1)
        c = (lam_fake * p_items).sum(1)
        e = (lam_items * p_fake).sum(1)
        base = self.walk.item_degree
        return (c * base - a) / d_items**2 + (e - (w @ e) / d_fake) / d_fake


def wmw(x: torch.Tensor, width: float) -> torch.Tensor:
    """The Wilcoxon-Mann-Whitney surrogate ``g(x) = 1 / (1 + exp(−x / b))`` (Eq. 5)."""
    return torch.sigmoid(x / width)


@dataclass
class Objective:
    """The relaxed objective of one fake user (Eq. 6 on the walk), evaluated with its gradient.

    ``users`` are S (normal users, node indices), ``eligible[t, b]`` whether user ``users[b]``
    has not rated ``targets[t]`` (R3), ``data`` the current graph's ratings (for ``Γ_u``).
    """

    graph: FakeUserGraph
    data: Interactions
    users: np.ndarray
    eligible: np.ndarray
    targets: np.ndarray
    alpha: float
    top_n: int
    width: float
    eta: float
    tol: float
    max_iter: int
    batch_size: int

    #: With S in one batch, the solutions of the previous call start the next solves.
    warm: tuple[torch.Tensor, torch.Tensor] | None = None

    def value_and_grad(self, w: torch.Tensor) -> tuple[float, torch.Tensor]:
        """``L(w)`` and ``dL/dw`` (R1), summed over batches of S (memory ``batch x nodes``).

        When S fits in one batch, each solve starts from the previous call's solution (the
        weights change little between steps), which saves most of the iterations.
        """
        decay = 1.0 - self.alpha
        total = float(self.eta * w.sum())
        grad = torch.full_like(w, self.eta)
        single = len(self.users) <= self.batch_size
        for start in range(0, len(self.users), self.batch_size):
            block = slice(start, start + self.batch_size)
            p_start, lam_start = self.warm if single and self.warm else (None, None)
            p = self.stationary(self.users[block], w, p_start)
            loss, dp = self.ranking_loss(p, self.users[block], self.eligible[:, block])
            lam, _ = solve_fixed_point(
                self.graph.adjoint(w),
                dp,
                decay,
                self.tol,
                self.max_iter,
                lam_start,
            )
            if single:
                self.warm = (p, lam)
            total += loss
            grad += decay * self.graph.weight_vjp(lam, p, w)
        return total, grad

    def stationary(
        self, users: np.ndarray, w: torch.Tensor, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``p_u`` of ``users`` on the graph with v's weights ``w``, ``[nodes, B]``."""
        source = restart_vectors(self.graph.n_nodes, users, self.alpha, w)
        p, _ = solve_fixed_point(
            self.graph.forward(w),
            source,
            1.0 - self.alpha,
            self.tol,
            self.max_iter,
            start,
        )
        return p

    def ranking_loss(
        self, p: torch.Tensor, users: np.ndarray, eligible: np.ndarray
    ) -> tuple[float, torch.Tensor]:
        """``Σ_b Σ_t Σ_{i∈Γ_b} g((p_bi − p_bt) / s_b)`` over eligible pairs (R8, ``s_b`` the
        mean probability of ``Γ_b``) and its gradient in ``p``."""
        offset = self.graph.n_users
        items = p[offset:].T.detach().clone().requires_grad_(True)  # [B, I]
        ranked = mask_seen(items.detach().clone(), self.data, users)
        top = torch.topk(ranked, min(self.top_n, ranked.shape[1]), dim=1).indices  # Γ_b (R2)
        target_p = items[:, torch.as_tensor(self.targets, device=items.device)]  # [B, T]
        top_p = items.gather(1, top)  # [B, N]
        unit = top_p.mean(1).clamp_min(torch.finfo(items.dtype).tiny)  # (R8)
        delta = (top_p[:, None, :] - target_p[:, :, None]) / unit[:, None, None]  # [B, T, N]
        mask = torch.as_tensor(eligible.T, dtype=items.dtype, device=items.device)
        loss = (wmw(delta, self.width) * mask[:, :, None]).sum()
        loss.backward()
        dp = torch.zeros_like(p)
        dp[offset:] = items.grad.T
        return float(loss.detach()), dp


class GraphAttack(SequentialAttack):
    """Fang et al. (ACSAC 2018) attack on the random-walk recommender (module docstring).

    Parameters: ``n_fillers`` n; ``alpha`` the restart probability the attacker assumes;
    ``top_n`` N (length of ``Γ_u``); ``width`` b; ``eta`` η; ``steps`` projected subgradient
    steps per fake user and ``step_size`` their size as a fraction of ``r_max`` (R4);
    ``tol`` / ``max_iter`` the fixed-point solves; ``batch_size`` users of S per solve;
    ``dtype``, ``device``. ``info["objective"]`` holds, per fake user, the objective at the
    start and at the best step.
    """

    name: ClassVar[str] = "graph-attack"

    def __init__(
        self,
        *,
        n_fillers: int = 20,
        alpha: float = DEFAULT_ALPHA,
        top_n: int = 10,
        width: float = 0.1,
        eta: float = 0.01,
        steps: int = 10,
        step_size: float = 0.5,
        tol: float = 1e-5,
        max_iter: int = 100,
        batch_size: int = 1024,
        dtype: str = "float32",
        device: str = "auto",
    ) -> None:
        super().__init__(n_fillers=n_fillers)
        self.alpha = alpha
        self.top_n = top_n
        self.width = width
        self.eta = eta
        self.steps = steps
        self.step_size = step_size
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.dtype = dtype
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
        """``n_fake`` fake users, optimised one after the other (each sees the previous ones),
        going on from ``resume_from`` (an earlier call's ``progress_``) when it was made with the
        same inputs and fewer fake users; ``on_step`` gets the state after each fake user, and
        the state after the last one is left in ``progress_``."""
        start = time.perf_counter()
        targets = self.check_inputs(train, targets, n_fake, surrogate)
        self._check_params()
        progress = self._resume_or_start(train, targets, n_fake, random_state, resume_from)
        state = progress.state
        sampler = RatingSampler.fit(train, per_item=True)
        r_max = max_rating(train)
        free = np.setdiff1d(np.arange(train.n_items), targets)
        for _ in range(progress.n_fake, n_fake):
            weights, values = self._optimise(
                state["graph_data"], state["users"], state["eligible"], targets, free, r_max
            )
            picked = free[np.argsort(-weights[free], kind="stable")[: self.n_fillers]]
            progress.fillers.append(picked)
            progress.ratings.append(sampler.sample(picked, progress.rng))
            state["objective"].append(values)
            state["graph_data"] = state["graph_data"].with_fake_users(
                assemble_profiles(
                    train, targets, picked[None], progress.ratings[-1][None], rate_target=True
                )
            )
            if on_step is not None:
                on_step(progress)
        info = {
            "n_influential": len(state["users"]),
            "objective": state["objective"],
            **state["selection"],
        }
        return self._finish(progress, train, targets, start, info)

    def _start(
        self, train: Interactions, targets: np.ndarray, rng: np.random.Generator
    ) -> dict[str, Any]:
        """The state before the first fake user: the users of the loss on the clean graph."""
        dtype, device = torch_dtype(self.dtype), resolve_device(self.device)
        users, eligible, selection = self.influential_users(train, targets, dtype, device, rng)
        return {
            "graph_data": train,
            "users": users,
            "eligible": eligible,
            "selection": selection,
            "objective": [],
        }

    def influential_users(
        self,
        train: Interactions,
        targets: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """S: every normal user who has not rated a target (R3); eligibility ``[T, |S|]``."""
        users = np.flatnonzero(~train.is_fake)
        eligible = train.matrix[users][:, targets].toarray().T == 0
        keep = eligible.any(axis=0)
        return users[keep], eligible[:, keep], {}

    def _optimise(
        self,
        data: Interactions,
        users: np.ndarray,
        eligible: np.ndarray,
        targets: np.ndarray,
        free: np.ndarray,
        r_max: float,
    ) -> tuple[np.ndarray, list[float]]:
        """Projected subgradient descent on one fake user's weights (R4, R5)."""
        dtype, device = torch_dtype(self.dtype), resolve_device(self.device)
        walk = BipartiteWalk.from_interactions(data, dtype, device)
        objective = Objective(
            FakeUserGraph(walk),
            data,
            users,
            eligible,
            targets,
            self.alpha,
            self.top_n,
            self.width,
            self.eta,
            self.tol,
            self.max_iter,
            self.batch_size,
        )
        movable = torch.zeros(data.n_items, dtype=torch.bool, device=device)
        movable[torch.as_tensor(free, device=device)] = True
        mean = float(data.matrix.data.mean()) if data.n_ratings else r_max
        w = torch.full((data.n_items,), self.n_fillers * mean / max(len(free), 1), dtype=dtype)
        w = w.to(device)
        w[~movable] = r_max  # the targets
        best_w, best, first = w.clone(), math.inf, math.nan
        for k in range(self.steps + 1):
            value, grad = objective.value_and_grad(w)
            first = value if k == 0 else first
            if value < best:
                best, best_w = value, w.clone()
            if k == self.steps:
                break
            grad = torch.where(movable, grad, torch.zeros_like(grad))
            scale = grad.abs().max()
            if not float(scale) > 0:
                break
            move = self.step_size * r_max / math.sqrt(k + 1)
            w = torch.where(movable, (w - move * grad / scale).clamp(0.0, r_max), w)
        logger.debug("%s: objective %.6g -> %.6g", self.name, first, best)
        return best_w.double().cpu().numpy(), [first, best]

    def _check_params(self) -> None:
        check_walk_params(self.alpha, self.tol, self.max_iter)
        if self.top_n < 1 or self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"{self.name}: need top_n >= 1, steps >= 0 and batch_size >= 1")
        if self.width <= 0 or self.eta < 0 or self.step_size <= 0:
            raise ConfigError(f"{self.name}: need width > 0, eta >= 0 and step_size > 0")


class SGraphAttack(GraphAttack):
    """S-Graph (Fang et al. 2020 §7.1): the graph attack optimised over Δ influential users.

    ``delta`` Δ (400 in the paper); ``series_terms`` the order T of the Taylor series of M
    (``None``: solved to convergence). S is chosen once, on the attacker's clean data, by
    Algorithm 1 over the users who have not rated a target (R3); ``info["influence_path"]``
    holds F(S, t) along the greedy path.
    """

    name: ClassVar[str] = "s-graph"

    def __init__(
        self,
        *,
        delta: int = 400,
        series_terms: int | None = None,
        n_fillers: int = 20,
        alpha: float = DEFAULT_ALPHA,
        top_n: int = 10,
        width: float = 0.1,
        eta: float = 0.01,
        steps: int = 10,
        step_size: float = 0.5,
        tol: float = 1e-5,
        max_iter: int = 100,
        batch_size: int = 1024,
        dtype: str = "float32",
        device: str = "auto",
    ) -> None:
        super().__init__(
            n_fillers=n_fillers,
            alpha=alpha,
            top_n=top_n,
            width=width,
            eta=eta,
            steps=steps,
            step_size=step_size,
            tol=tol,
            max_iter=max_iter,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
        )
        self.delta = delta
        self.series_terms = series_terms

    def influential_users(
        self,
        train: Interactions,
        targets: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        if self.delta < 1 or (self.series_terms is not None and self.series_terms < 0):
            raise ConfigError(f"{self.name}: need delta >= 1 and series_terms >= 0")
        users, eligible, _ = super().influential_users(train, targets, dtype, device, rng)
        walk = BipartiteWalk.from_interactions(train, dtype, device)
        influence = user_influence(walk, targets, ~train.is_fake, self.alpha, self.series_terms)
        selection = influential_users(influence[users], self.delta, rng)  # Algorithm 1
        chosen = users[selection.users]
        keep = np.searchsorted(users, chosen)
        return chosen, eligible[:, keep], {"influence_path": selection.objective.tolist()}
