"""Fake users optimised against factorization victims: PGA, SGLD (Li 2016) and MF (Huang 2021).

All three attacks optimise the fake users' ratings ``M̃`` through the victim's training problem,
retrained after every step (warm-started), with the utility gradient of
:mod:`recpoison.attacks.kkt`:

* ``pga`` — Algorithm 1: each fake user rates ``n_fillers`` items drawn uniformly at random;
  their ratings follow projected gradient ascent (Eq. 10) in the box ``[−Λ, Λ]``.
* ``sgld`` — Algorithm 2: every fake user rates every item while Langevin dynamics (Eq. 17)
  samples ``p(M̃ | M) ∝ exp(−Σ (M̃_ij − ξ_j)² / 2σ_j² + β R)`` (Eq. 16), ``ξ_j, σ_j²`` fitted on
  the normal users; then the ``n_fillers`` items of largest ``|M̃_ij|`` are kept (Alg. 2 line 9).
* ``mf`` — Huang et al. 2021's "MF attack" baseline: PGA with the integrity goal promoting the
  target items, against an internal ALS surrogate, targets rated at the maximum.

Goals (§3): ``availability`` (Eq. 7), ``integrity`` (Eq. 8), ``hybrid`` (Eq. 9). Ratings are
optimised in the victim's centered space (Li §5 shifts them to ``[−Λ, Λ]``); the output is
snapped to the data's rating values (each fake user has exactly ``n_fillers`` fillers, plus the
targets for the integrity and hybrid goals, rated at the bound of ``sign w(j)``).

Choices the paper leaves open (documented on each class): the step-size sequence of Eq. (10)
(``s_t = step · Λ / ‖∇‖_max``, ``step`` by a backtracking line search), the gradient (``"cg"``,
exact, by default — the closed form of Eq. 12, ``"block"``, gives a zero gradient to every
filler for the integrity goal), and for SGLD the scale of β, a per-item step size and
truncation to the box after each step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.base import Attack
from recpoison.attacks.factorization_problems import DTYPE, ALSProblem, NuclearProblem
from recpoison.attacks.kkt import (
    Factors,
    Method,
    availability_objective,
    implicit_gradient,
    integrity_objective,
)
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state, derive_seed, resolve_device
from recpoison.victims.base import Recommender
from recpoison.victims.mf import ALSMF, Center, Entries, rating_offset
from recpoison.victims.nuclear import NuclearNormMF

logger = logging.getLogger(__name__)

Goal = Literal["availability", "integrity", "hybrid"]
Utility = Callable[[torch.Tensor, torch.Tensor], tuple[float, Factors]]
#: Halvings of PGA's step size tried before an iteration is declared a local maximum.
_MAX_BACKTRACKS = 8


# -- shared machinery ----------------------------------------------------------------------------
class _FactorizationAttack(Attack):
    """Fake users optimised through a factorization victim's training problem (Li et al. §4)."""

    requires: ClassVar[frozenset[str]] = frozenset({"explicit_ratings"})
    #: Sampled unobserved entries per interaction when the data is implicit (MF attack only).
    negatives: int = 0

    def __init__(
        self,
        goal: Goal = "availability",
        *,
        n_fillers: int = 30,
        weights: Sequence[float] | None = None,
        mu: tuple[float, float] = (1.0, 1.0),
        n_iter: int = 30,
        step_size: float = 0.2,
        rank: int = 10,
        lambda_u: float = 10.0,
        lambda_v: float = 10.0,
        fit_iterations: int = 100,
        inner_iterations: int = 20,
        gradient: Method = "cg",
        cg_iterations: int = 20,
        device: str = "auto",
    ) -> None:
        super().__init__(n_fillers=n_fillers)
        self.goal = goal
        self.weights = weights
        self.mu = mu
        self.n_iter = n_iter
        self.step_size = step_size
        self.rank = rank
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.fit_iterations = fit_iterations
        self.inner_iterations = inner_iterations
        self.gradient = gradient
        self.cg_iterations = cg_iterations
        self.device = device

    # -- hooks of the concrete attacks --------------------------------------------------------
    def _dense(self, train: Interactions) -> bool:
        """Whether every fake user rates every item while optimising (then top-B projection)."""
        return False

    def _initial_values(self, run: _Run, rng: np.random.Generator) -> torch.Tensor:
        """Initial ratings of the free entries (centered space)."""
        low, high = run.box
        return torch.as_tensor(rng.uniform(low, high, run.n_free), dtype=DTYPE, device=run.device)

    def _step(
        self,
        run: _Run,
        values: torch.Tensor,
        grad: torch.Tensor,
        t: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, Factors, float]:
        """One step from ``values`` (gradient ``grad``): the new values, the victim refitted on
        them and their utility."""
        raise NotImplementedError

    def _problem(
        self, surrogate: Recommender | None, n_items: int, seed: int
    ) -> tuple[ALSProblem | NuclearProblem, Center]:
        """The victim model to optimise against, and its rating centering."""
        device = resolve_device(self.device)
        if isinstance(surrogate, NuclearNormMF):
            return NuclearProblem(
                surrogate.lam,
                surrogate.max_rank,
                surrogate.oversampling,
                surrogate.power_iterations,
                seed,
            ), surrogate.center
        if isinstance(surrogate, ALSMF):
            return ALSProblem(
                surrogate.rank, surrogate.lambda_u, surrogate.lambda_v, n_items, seed, device
            ), surrogate.center
        if surrogate is not None:
            logger.warning(
                "%s: surrogate %s is not a factorization model; optimising against "
                "an ALS model with this attack's rank/lambda instead (transfer)",
                self.name,
                type(surrogate).__name__,
            )
        return ALSProblem(self.rank, self.lambda_u, self.lambda_v, n_items, seed, device), "scale"

    # -- entry point ---------------------------------------------------------------------------
    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> FakeProfiles:
        """Optimise ``n_fake`` fake users for the goal; ``targets`` may be empty for availability.

        ``surrogate`` (optional) is the victim model the attacker knows (white box, Li §3):
        an :class:`ALSMF` or :class:`NuclearNormMF` whose hyperparameters define the training
        problem attacked; without one, ALS with this attack's ``rank`` and ``lambda_*``.
        ``info`` holds the utility per iteration (``utility_history``), before
        (``utility_initial``) and after (``utility_final``) optimisation, and after the
        projection to valid ratings (``utility_projected``; implicit data: the fake users
        retrained with sampled negatives, as the normal users).
        """
        targets = self._validate(train, targets, n_fake, surrogate)
        started = time.perf_counter()
        rng = check_random_state(random_state)
        problem, center = self._problem(surrogate, train.n_items, derive_seed(rng))
        run = _Run(self, train, targets, n_fake, problem, center, rng)
        values = self._initial_values(run, rng)
        gen = torch.Generator().manual_seed(derive_seed(rng))
        history, residuals, fallbacks = [], [], 0
        users, items = run.solve(values, self.fit_iterations)
        value = run.utility(users, items)[0]
        history.append(value)
        for t in range(self.n_iter):
            if run.converged:
                break
            grad, residual, fallback = implicit_gradient(
                run.entries(values),
                users,
                items,
                problem.lambda_u,
                problem.lambda_v,
                run.utility(users, items)[1],
                run.free_rows,
                run.free_cols,
                self.gradient,
                self.cg_iterations,
            )
            residuals.append(residual)
            fallbacks += fallback
            values, (users, items), value = self._step(run, values, grad, t, gen)
            history.append(value)
            logger.debug("%s iteration %d: utility %.6g", self.name, t, value)
        matrix = run.project(values)
        users, items = run.solve_profiles(matrix, self.fit_iterations, rng)
        info: dict[str, Any] = {
            "goal": run.goal,
            "victim_model": problem.kind,
            "gradient": self.gradient,
            "n_iter": self.n_iter,
            "utility_history": history,
            "utility_initial": history[0],
            "utility_final": history[-1],
            "utility_projected": run.utility(users, items)[0],
            "cg_residual_max": max(residuals, default=float("nan")),
            "cg_fallbacks": fallbacks,
            "converged": run.converged,
            "step_history": run.steps,
            "seconds": time.perf_counter() - started,
        }
        logger.info(
            "%s (%s): utility %.4g -> %.4g (projected %.4g)",
            self.name,
            run.goal,
            history[0],
            history[-1],
            info["utility_projected"],
        )
        return FakeProfiles(matrix, targets, info)

    def _validate(
        self, train: Interactions, targets: np.ndarray, n_fake: int, surrogate: Recommender | None
    ) -> np.ndarray:
        if self.goal not in ("availability", "integrity", "hybrid"):
            raise ConfigError(
                f"{self.name}: goal must be 'availability', 'integrity' or "
                f"'hybrid', not {self.goal!r}"
            )
        if self.n_iter < 0 or self.step_size <= 0 or self.n_fillers < 1:
            raise ConfigError(f"{self.name}: need n_iter >= 0, step_size > 0, n_fillers >= 1")
        if self.gradient not in ("cg", "block"):
            raise ConfigError(
                f"{self.name}: gradient must be 'cg' or 'block', not {self.gradient!r}"
            )
        targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
        if len(targets) == 0 and self.goal == "availability":
            # Attack.check_inputs demands a target; an availability attack (Eq. 7) has none.
            return self.check_inputs(train, np.zeros(1, np.int64), n_fake, surrogate)[:0]
        targets = np.unique(self.check_inputs(train, targets, n_fake, surrogate))
        if self.weights is not None and len(self.weights) != len(targets):
            raise ConfigError(
                f"{self.name}: {len(self.weights)} weights for {len(targets)} distinct targets"
            )
        return targets


class _Run:
    """One ``generate`` call: the attacker's data, the fake entries' layout and the utility."""

    def __init__(
        self,
        attack: _FactorizationAttack,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        problem: ALSProblem | NuclearProblem,
        center: Center,
        rng: np.random.Generator,
    ) -> None:
        self.attack, self.problem, self.n_fake = attack, problem, n_fake
        self.device = resolve_device(attack.device)
        self.implicit = train.is_implicit
        self.dense = attack._dense(train)
        self.goal: Goal = attack.goal
        low, high = train.rating_scale or (0.0, 1.0)
        self.offset = rating_offset(train, center)
        self.box = (low - self.offset, high - self.offset)
        self.half_range = (high - low) / 2.0
        self.allowed = np.unique(np.concatenate([train.matrix.data, [low, high]]))
        self.normal = self._normal_entries(train, rng)
        self.n_items = train.n_items
        uses_targets = self.goal != "availability"
        self.targets = targets if uses_targets else targets[:0]
        weights = (
            np.asarray(attack.weights, dtype=float)
            if attack.weights is not None
            else np.full(len(self.targets), 2.0)
        )  # w(j0) = 2 in Li et al. §5
        self.weights = torch.as_tensor(weights, dtype=DTYPE, device=self.device)
        self.prior: tuple[torch.Tensor, torch.Tensor]  # SGLD: (ξ_j, σ_j²) of the free entries
        self.utility_scale = 1.0  # SGLD: R's scale, set at the first step
        self.step = attack.step_size  # PGA: the current step size of the line search
        self.steps: list[float] = []  # PGA: the step size accepted at each iteration (0: none)
        self.converged = False  # PGA: no ascent step found (a local maximum)
        self.polished = False  # PGA: the victim was just fitted ``fit_iterations`` more sweeps
        self._layout(rng)
        self.clean = problem.solve(self.normal, attack.fit_iterations)

    def _normal_entries(self, train: Interactions, rng: np.random.Generator) -> Entries:
        """The normal users' centered ratings (implicit data: see :class:`MFAttack`)."""
        if not self.implicit:
            return Entries.from_interactions(train, self.offset, DTYPE, self.device)
        return self._with_negatives(train.matrix, rng)

    def _with_negatives(self, matrix: sp.spmatrix, rng: np.random.Generator) -> Entries:
        """The interactions of the 0/1 ``matrix`` (value 1) plus ``negatives`` draws per
        interaction of a uniform item the row lacks (value 0; repeats dropped), centered."""
        coo = sp.coo_matrix(matrix)
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        neg_users = np.repeat(users, self.attack.negatives)
        neg_items = rng.integers(0, matrix.shape[1], len(neg_users))
        keep = np.asarray(sp.csr_matrix(matrix)[neg_users, neg_items]).ravel() == 0
        pairs = np.unique(np.stack([neg_users[keep], neg_items[keep]]), axis=1)
        rows = np.concatenate([users, pairs[0]])
        cols = np.concatenate([items, pairs[1]])
        vals = np.concatenate([np.full(len(users), 1.0), np.zeros(pairs.shape[1])]) - self.offset
        return Entries(
            torch.as_tensor(rows, device=self.device),
            torch.as_tensor(cols, device=self.device),
            torch.as_tensor(vals, dtype=DTYPE, device=self.device),
            matrix.shape,
        )

    def _layout(self, rng: np.random.Generator) -> None:
        """Which entries of the fake rows are observed: free ones, then the fixed targets."""
        m_fake, n = self.n_fake, self.n_items
        if self.dense:
            rows = np.repeat(np.arange(m_fake), n)
            cols = np.tile(np.arange(n), m_fake)
            keep = ~np.isin(cols, self.targets)
            rows, cols = rows[keep], cols[keep]
        else:  # Li Alg. 1: B items uniformly at random per fake user (never a target)
            keys = rng.random((m_fake, n))
            keys[:, self.targets] = np.inf
            cols = np.argpartition(keys, self.attack.n_fillers - 1, axis=1)
            cols = cols[:, : self.attack.n_fillers].ravel()
            rows = np.repeat(np.arange(m_fake), self.attack.n_fillers)
        self.n_free = len(rows)
        target_rows = np.repeat(np.arange(m_fake), len(self.targets))
        target_cols = np.tile(self.targets, m_fake)
        bound = np.where(self.weights.cpu().numpy() >= 0, self.box[1], self.box[0])
        self.fixed_values = torch.as_tensor(np.tile(bound, m_fake), dtype=DTYPE, device=self.device)
        self.rows = torch.as_tensor(np.concatenate([rows, target_rows]), device=self.device)
        self.cols = torch.as_tensor(np.concatenate([cols, target_cols]), device=self.device)
        self.free_rows = self.rows[: self.n_free] + self.normal.shape[0]
        self.free_cols = self.cols[: self.n_free]

    def entries(self, values: torch.Tensor) -> Entries:
        """Normal users' entries stacked over the fake users' (free values, then targets)."""
        fake = Entries(
            self.rows,
            self.cols,
            torch.cat([values, self.fixed_values]),
            (self.n_fake, self.n_items),
        )
        return self.normal.stack(fake)

    def solve(self, values: torch.Tensor, iterations: int) -> Factors:
        return self.problem.solve(self.entries(values), iterations)

    def utility(self, users: torch.Tensor, items: torch.Tensor) -> tuple[float, Factors]:
        """The goal's utility and its gradient with respect to the factors (Eqs. 7-9)."""
        n_normal = self.normal.shape[0]
        targets = torch.as_tensor(self.targets, device=self.device)
        if self.goal == "availability":
            return availability_objective(users, items, self.clean, self.normal)
        if self.goal == "integrity":
            return integrity_objective(users, items, n_normal, targets, self.weights, self.offset)
        mu_av, mu_in = self.attack.mu
        av, (au, ai) = availability_objective(users, items, self.clean, self.normal)
        it, (iu, ii) = integrity_objective(
            users, items, n_normal, targets, self.weights, self.offset
        )
        return mu_av * av + mu_in * it, (mu_av * au + mu_in * iu, mu_av * ai + mu_in * ii)

    def project(self, values: torch.Tensor) -> sp.csr_matrix:
        """Valid fake profiles on the data's rating scale (Li §4.1 and Alg. 2 line 9).

        Dense layouts keep, per fake user, the ``n_fillers`` items of largest ``|M̃_ij|``
        (implicit data: largest ``M̃_ij``, as only a present interaction can be expressed); every
        kept rating is clipped to the scale and snapped to the nearest rating value present in
        the data (implicit: 1). Targets keep their bound rating.
        """
        vals = values.cpu().numpy()
        rows, cols = self.rows[: self.n_free].cpu().numpy(), self.cols[: self.n_free].cpu().numpy()
        chosen = np.ones(len(vals), dtype=bool)
        if self.dense:
            middle = (self.box[0] + self.box[1]) / 2.0
            score = (vals if self.implicit else np.abs(vals - middle)).reshape(self.n_fake, -1)
            top = np.argpartition(-score, self.attack.n_fillers - 1, axis=1)
            chosen = np.zeros(score.shape, dtype=bool)
            np.put_along_axis(chosen, top[:, : self.attack.n_fillers], True, axis=1)
            chosen = chosen.ravel()
        ratings = self._snap(vals[chosen] + self.offset)
        targets = self._snap(self.fixed_values.cpu().numpy() + self.offset)
        return sp.csr_matrix(
            (
                np.concatenate([ratings, targets]),
                (
                    np.concatenate([rows[chosen], self.rows[self.n_free :].cpu().numpy()]),
                    np.concatenate([cols[chosen], self.cols[self.n_free :].cpu().numpy()]),
                ),
            ),
            shape=(self.n_fake, self.n_items),
        )

    def _snap(self, ratings: np.ndarray) -> np.ndarray:
        if self.implicit:
            return np.ones_like(ratings)
        clipped = np.clip(ratings, self.allowed[0], self.allowed[-1])
        return self.allowed[np.abs(clipped[:, None] - self.allowed[None, :]).argmin(1)]

    def solve_profiles(
        self, matrix: sp.csr_matrix, iterations: int, rng: np.random.Generator
    ) -> Factors:
        """Retrain the victim on the normal users plus the projected fake ``matrix``.

        Implicit data: the fake users get sampled negatives as the normal users have (and as an
        implicit victim's negative sampling gives them); without them, ALS would see a fake user
        rate only its fillers, a profile no victim trains on."""
        if self.implicit:
            return self.problem.solve(
                self.normal.stack(self._with_negatives(matrix, rng)), iterations
            )
        fake = sp.coo_matrix(matrix)
        entries = Entries(
            torch.as_tensor(fake.row.astype(np.int64), device=self.device),
            torch.as_tensor(fake.col.astype(np.int64), device=self.device),
            torch.as_tensor(fake.data - self.offset, dtype=DTYPE, device=self.device),
            matrix.shape,
        )
        return self.problem.solve(self.normal.stack(entries), iterations)


# -- the attacks ---------------------------------------------------------------------------------
class PGAAttack(_FactorizationAttack):
    """Projected gradient ascent on the fake ratings (Li et al. 2016, Algorithm 1, §4.1-4.2).

    Each fake user rates ``n_fillers`` (B) items drawn uniformly at random, with ratings drawn
    uniformly in the scale (Alg. 1 line 2); the ratings then follow Eq. (10) for at most
    ``n_iter`` steps with ``s_t = step · Λ / ‖∇R‖_max`` (Eq. 10 leaves ``s_t`` open), ``step``
    starting at ``step_size`` and set by a backtracking line search on the retrained utility
    (halved until the utility rises, doubled after each accepted step; see ``_step``), the
    victim retrained after each step (``fit_iterations`` sweeps from scratch, then
    ``inner_iterations`` warm-started). ``info``: ``step_history`` (the accepted step sizes,
    0 where none was) and ``converged`` (no ascent at any step size from a well-fitted victim).
    A fixed rule stalled: the availability gradient is so uneven across entries that with
    ``s_t = 0.2 Λ / ‖∇R‖_max`` most ratings barely moved and on ml-latest-small PGA shifted
    unrated predictions less than a random attack.

    ``goal``: ``"availability"`` (Eq. 7, ``targets`` may be empty and are not rated),
    ``"integrity"`` (Eq. 8 over the targets with weights ``weights``, default ``w(j) = 2`` as in
    §5; a negative weight demotes), ``"hybrid"`` (Eq. 9 with ``mu = (μ1, μ2)``). For integrity and
    hybrid every fake user also rates each target at the bound of its weight's sign.
    ``gradient``: ``"cg"`` (exact implicit gradient, default) or ``"block"`` (the closed form of
    §4.1 Eq. 12, which is zero on every filler under the integrity goal, see
    :mod:`recpoison.attacks.kkt`), with at most ``cg_iterations`` CG steps (relative residual
    1e-2). ``rank``, ``lambda_u``, ``lambda_v``: the ALS model attacked when no factorization
    ``surrogate`` is given. ``device``: where the attacker's model is trained (float64).
    """

    name = "pga"

    def _step(
        self,
        run: _Run,
        values: torch.Tensor,
        grad: torch.Tensor,
        t: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, Factors, float]:
        """Eq. (10), ``Proj(M̃ + s_t ∇R)`` with ``s_t = step · Λ / ‖∇R‖_max``, accepted only if
        the retrained utility rises; otherwise ``step`` halves (at most
        :data:`_MAX_BACKTRACKS` times), and after an accepted step it doubles, so the step
        size follows the utility instead of stalling (an availability gradient is very uneven
        across entries: with a fixed rule most entries barely move). The current point and
        every proposal are refitted with the same ``inner_iterations`` sweeps from the same
        warm start, so what is compared is the step, not further convergence of the victim's
        fit. When no step size gives ascent the victim is fitted ``fit_iterations`` more sweeps
        (the implicit gradient assumes a stationary fit; on ml-latest-small 50 sweeps are not
        enough for the first step) and the next iteration tries again; no ascent right after
        that is a local maximum: ``run.converged`` (``step_history`` records 0 for both)."""
        start = run.problem.state
        users, items = run.solve(values, self.inner_iterations)
        reference = run.utility(users, items)[0]
        scale = float(grad.abs().max())
        for _ in range(_MAX_BACKTRACKS + 1 if scale > 0 else 0):
            run.problem.state = start
            proposal = (values + run.step * run.half_range / scale * grad).clamp(*run.box)
            proposed = run.solve(proposal, self.inner_iterations)
            utility = run.utility(*proposed)[0]
            if utility > reference:
                run.polished = False
                run.steps.append(run.step)
                run.step *= 2.0
                return proposal, proposed, utility
            run.step /= 2.0
        run.steps.append(0.0)
        run.problem.state = start
        if run.polished:  # no ascent from a well-fitted victim: a local maximum
            run.converged = True
            return values, (users, items), reference
        # The implicit gradient assumes a stationary fit; fit further, then try again.
        run.polished = True
        users, items = run.solve(values, self.fit_iterations)
        return values, (users, items), run.utility(users, items)[0]


class SGLDAttack(_FactorizationAttack):
    """Stochastic gradient Langevin dynamics (Li et al. 2016, Algorithm 2, §4.3).

    Prior (Alg. 2 line 2, as printed): ``ξ_j = (1/m) Σ_i M_ij`` and
    ``σ_j² = (1/m) Σ_i (M_ij − ξ_j)²`` over all ``m`` normal users, unrated entries counting as
    0 in the centered space (an item nobody rated gets the variance ``Λ²/4m``); every fake user
    starts at ``M̃_ij ~ N(ξ_j, σ_j²)`` for every item and follows Eq. (17),
    ``M̃ ← M̃ + (s/2) ∇ log p(M̃ | M) + N(0, s)`` with ``∇ log p = −(M̃ − Ξ) Σ⁻¹ + β ∇R``.

    Three choices the paper leaves open or that its numbers cannot carry over:

    * ``beta`` (0.6, §5) weighs R after rescaling it by one constant so that ``‖∇R‖`` equals
      ``‖∇ log p_0‖`` at the initial sample (RMS over the entries). Eq. (15)'s raw R is a sum over
      every unseen entry, so a fixed β means something different on every data size; after the
      rescaling β = 1 balances the two forces at the start on any data.
    * ``preconditioned=True`` (default) uses the per-item step ``s σ_j²`` (preconditioned
      Langevin, same stationary distribution): Eq. (17) with one ``s`` is only stable for
      ``s < 4 min_j σ_j²`` (about 1e-3 on MovieLens-sized data), which freezes the utility term.
    * Every step is followed by truncation to ``[−Λ, Λ]`` (the box part of ``Proj_M``; without
      it a large β drives ratings far outside the scale, where the retrained model means
      nothing for the rounded profiles).

    After ``n_iter`` steps the ``n_fillers`` items of largest ``|M̃_ij|`` are kept per fake user,
    clipped and rounded to the scale (Alg. 2 line 9). Other parameters as :class:`PGAAttack`
    (``step_size`` is ``s``).
    """

    name = "sgld"

    def __init__(
        self,
        goal: Goal = "availability",
        *,
        beta: float = 0.6,
        preconditioned: bool = True,
        n_fillers: int = 30,
        weights: Sequence[float] | None = None,
        mu: tuple[float, float] = (1.0, 1.0),
        n_iter: int = 30,
        step_size: float = 0.1,
        rank: int = 10,
        lambda_u: float = 10.0,
        lambda_v: float = 10.0,
        fit_iterations: int = 50,
        inner_iterations: int = 10,
        gradient: Method = "cg",
        cg_iterations: int = 20,
        device: str = "auto",
    ) -> None:
        super().__init__(
            goal,
            n_fillers=n_fillers,
            weights=weights,
            mu=mu,
            n_iter=n_iter,
            step_size=step_size,
            rank=rank,
            lambda_u=lambda_u,
            lambda_v=lambda_v,
            fit_iterations=fit_iterations,
            inner_iterations=inner_iterations,
            gradient=gradient,
            cg_iterations=cg_iterations,
            device=device,
        )
        self.beta = beta
        self.preconditioned = preconditioned

    def _dense(self, train: Interactions) -> bool:
        return True

    def _initial_values(self, run: _Run, rng: np.random.Generator) -> torch.Tensor:
        normal = run.normal
        m = normal.shape[0]
        sums = torch.zeros(run.n_items, dtype=DTYPE, device=run.device)
        mean = sums.index_add(0, normal.cols, normal.values) / m
        counts = torch.zeros_like(sums).index_add(0, normal.cols, torch.ones_like(normal.values))
        spread = sums.index_add(0, normal.cols, (normal.values - mean[normal.cols]) ** 2)
        variance = (spread + (m - counts) * mean**2) / m
        variance = variance.clamp_min(run.half_range**2 / (4 * m))
        run.prior = (mean[run.free_cols], variance[run.free_cols])
        noise = torch.as_tensor(rng.standard_normal(run.n_free), dtype=DTYPE, device=run.device)
        return (run.prior[0] + run.prior[1].sqrt() * noise).clamp(*run.box)

    def _step(
        self,
        run: _Run,
        values: torch.Tensor,
        grad: torch.Tensor,
        t: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, Factors, float]:
        """Eq. (17) (per-item step ``s σ_j²`` when ``preconditioned``), the box, a refit."""
        mean, variance = run.prior
        if t == 0:  # R's scale: its gradient's RMS at the start equals the log-prior's
            prior_rms = ((values - mean) / variance).square().mean().sqrt()
            run.utility_scale = float(prior_rms / grad.square().mean().sqrt().clamp_min(1e-300))
        grad = run.utility_scale * grad
        s = self.step_size
        noise = torch.randn(values.shape, generator=gen, dtype=DTYPE).to(values.device)
        if self.preconditioned:
            drift = -(values - mean) + self.beta * variance * grad
            values = values + s / 2 * drift + (s * variance).sqrt() * noise
        else:
            drift = -(values - mean) / variance + self.beta * grad
            values = values + s / 2 * drift + s**0.5 * noise
        values = values.clamp(*run.box)
        users, items = run.solve(values, self.inner_iterations)
        return values, (users, items), run.utility(users, items)[0]

    def _validate(
        self, train: Interactions, targets: np.ndarray, n_fake: int, surrogate: Recommender | None
    ) -> np.ndarray:
        if self.beta < 0:
            raise ConfigError(f"{self.name}: beta must be >= 0, got {self.beta}")
        return super()._validate(train, targets, n_fake, surrogate)


class MFAttack(PGAAttack):
    """The "MF attack" baseline of Huang et al. 2021 (§V-A): PGA (Li et al.) promoting targets.

    Integrity goal on the targets (``w(j) = 2``), each fake user rating the targets at the maximum
    and ``n_fillers`` fillers, optimised against this attack's own ALS model (``rank``,
    ``lambda_u``, ``lambda_v``) fitted on the attacker's data — any ``surrogate`` is ignored, so
    the profiles transfer to any victim. Explicit data: random fillers with optimised ratings, as
    in Li's PGA. Implicit data: following Huang ("initialize a generalized user-item interaction
    matrix ... then implement optimized poisoning attack on it") the ALS model is fitted on 1 for
    every interaction and 0 for ``negatives`` sampled non-interactions per interaction, every fake
    user holds a continuous interaction strength in ``[0, 1]`` for every item, and the
    ``n_fillers`` items of largest strength become its interactions (1.0).
    """

    name = "mf"
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        n_fillers: int = 30,
        n_iter: int = 30,
        step_size: float = 0.2,
        rank: int = 10,
        lambda_u: float = 10.0,
        lambda_v: float = 10.0,
        fit_iterations: int = 50,
        inner_iterations: int = 10,
        gradient: Method = "cg",
        cg_iterations: int = 20,
        negatives: int = 4,
        device: str = "auto",
    ) -> None:
        super().__init__(
            "integrity",
            n_fillers=n_fillers,
            n_iter=n_iter,
            step_size=step_size,
            rank=rank,
            lambda_u=lambda_u,
            lambda_v=lambda_v,
            fit_iterations=fit_iterations,
            inner_iterations=inner_iterations,
            gradient=gradient,
            cg_iterations=cg_iterations,
            device=device,
        )
        self.negatives = negatives

    def _dense(self, train: Interactions) -> bool:
        return train.is_implicit

    def _problem(
        self, surrogate: Recommender | None, n_items: int, seed: int
    ) -> tuple[ALSProblem | NuclearProblem, Center]:
        return super()._problem(None, n_items, seed)
