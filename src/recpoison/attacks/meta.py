"""Meta-gradient edge attacks on neural collaborative filtering (Aravind, thesis chapter 3).

* ``meta`` (Algorithm 1, §3.7): per meta-gradient, train the surrogate for T steps from its
  initialisation θ_0 on the pairs ``A⁺ ∪ A⁻``, back-propagate ``L_train(θ_T)`` to the labels
  ``A(u, i)`` (:mod:`recpoison.attacks.meta_gradient`), and insert the sampled non-edge with the
  largest ``∂L_train/∂A(u,i)`` (``L_atk = -L_train``, §3.5: inserting it raises the training
  loss most to first order). The entry becomes a positive of ``A⁺`` and leaves ``A⁻``; it can
  never be chosen again, so no edge is inserted twice, and only user-item entries exist, so the
  graph stays bipartite (§3.3).
* ``meta-approx`` (Algorithm 3, §3.9): the same with the approximate meta-gradient.
* ``meta-surrogate`` (Algorithm 4, §3.10): ``meta`` computed on the given surrogate architecture;
  the victim evaluated afterwards may be another one (the runner's ``surrogate:``).

Choices where the thesis is silent (documented in the README section):

* ``A⁻`` is a uniform sample of the real users' non-edges, ``negative_ratio`` times as many as the
  interactions (Table 4.19: 100,000 for MovieLens-100K's 100,000 ratings), drawn once; it is both
  the training negatives and the candidate set (§3.7, Algorithm 1 line 13: ``∇_{A⁻}``).
* Every meta-gradient retrains from the same θ_0 (Algorithm 1 line 6), the surrogate's own
  initialisation (its ``random_state``), so with the victim as surrogate the attacker starts from
  the victim's initialisation ("same parameters as target model", §3.8).
* The inner training defaults to Adam (lr 0.01, T = 100). Plain steps (``optimizer="sgd"``,
  Algorithm 1 as written) from NCF's N(0, 0.01) initialisation barely leave the saddle at zero
  in 100 steps (train AUROC 0.51-0.64 on planted data, against 0.97 for Adam; the thesis reports
  trying both, §4.4).
* ``flips_per_step`` > 1 inserts that many best entries per meta-gradient: a speed option,
  1 (one flip per meta-gradient) as published.
* Nothing a meta-gradient does depends on the budget still to spend, so with the same random
  state a budget's flips are the first flips of every larger one: a larger budget goes on from
  the state a smaller one left (``resume_from``, :class:`~recpoison.attacks.prefix.FlipProgress`,
  whole meta-gradients only) and ``on_step`` receives the state after each meta-gradient (the
  runner's checkpoints). The thesis's 2-10 % budgets then cost the meta-gradients of 10 %.
* Peak memory is estimated before starting (``meta_gradient.estimate_peak_bytes``, one probe
  step); above ``max_memory_gb`` the attack refuses with a ConfigError.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.base import EdgeAttack, EdgePerturbation
from recpoison.attacks.edges import apply_flips
from recpoison.attacks.meta_gradient import (
    OPTIMIZERS,
    FunctionalNCF,
    Optimizer,
    PairData,
    Params,
    approx_meta_gradient,
    estimate_peak_bytes,
    flip_scores,
    meta_gradient,
)
from recpoison.attacks.prefix import FlipProgress, StepHook, progress_fingerprint
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state, derive_seed
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)

GIB = 2**30


@dataclass
class EdgeProblem:
    """The attacker's training pairs ``A⁺ ∪ A⁻`` and which of them may be flipped.

    ``data`` is the graph the victim will train on (the attacker's input, plus any appended
    users); ``users``, ``items``, ``labels`` the pairs and their current ``A(u, i)``;
    ``candidates`` the indices of the pairs that may be inserted (sampled non-edges)."""

    data: Interactions
    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    candidates: np.ndarray

    def tensors(self, device: torch.device) -> tuple[PairData, torch.Tensor]:
        """The pairs and their labels as tensors on ``device``."""
        pairs = PairData(
            torch.as_tensor(self.users, device=device), torch.as_tensor(self.items, device=device)
        )
        return pairs, torch.as_tensor(self.labels, dtype=torch.float32, device=device)


def check_memory(
    name: str,
    model: FunctionalNCF,
    pairs: PairData,
    labels: torch.Tensor,
    steps: int,
    optimizer: Optimizer,
    exact: bool,
    max_memory_gb: float,
) -> int:
    """The estimated peak bytes of one meta-gradient; a ConfigError above ``max_memory_gb``."""
    peak = estimate_peak_bytes(model, pairs, labels, steps, optimizer, exact)
    if peak > max_memory_gb * GIB:
        raise ConfigError(
            f"{name}: one meta-gradient on {len(labels)} pairs with T={steps} needs about "
            f"{peak / GIB:.1f} GiB (max_memory_gb={max_memory_gb}); lower steps or "
            "negative_ratio, subsample the data, or use meta-approx"
        )
    return peak


class MetaAttack(EdgeAttack):
    """Meta-Attack (Algorithm 1): insert the non-edges with the largest meta-gradient.

    ``steps`` (T) and ``lr`` of the surrogate's inner training with ``optimizer`` (``"adam"`` or
    ``"sgd"``); ``negative_ratio`` sampled negatives per interaction; ``flips_per_step`` flips per
    meta-gradient; ``max_memory_gb`` the most the meta-gradient may use. The surrogate (through
    the API default a GMF with the victims' defaults; in a spec, its ``surrogate:`` or else the
    victim's architecture) must be a differentiable NCF victim (gmf, mlp, neumf).
    ``info`` records, per meta-gradient, the surrogate's training loss and accuracy on
    ``A⁺ ∪ A⁻`` at θ_T (``P^S_j`` of Algorithm 1) and the estimated peak memory, and how many
    flips the call resumed from (``resumed_from``); ``progress_`` holds the state of its whole
    meta-gradients (see the module doc).
    """

    name = "meta"
    requires: ClassVar[frozenset[str]] = frozenset({"differentiable"})
    #: Exact meta-gradient (Algorithm 1) or the approximation of Algorithm 3.
    exact: ClassVar[bool] = True

    def __init__(
        self,
        *,
        steps: int = 100,
        lr: float = 0.01,
        optimizer: str = "adam",
        negative_ratio: float = 1.0,
        flips_per_step: int = 1,
        max_memory_gb: float = 16.0,
    ) -> None:
        self.steps = steps
        self.lr = lr
        self.optimizer = optimizer
        self.negative_ratio = negative_ratio
        self.flips_per_step = flips_per_step
        self.max_memory_gb = max_memory_gb

    # -- entry point ---------------------------------------------------------------------------
    def perturb(
        self,
        train: Interactions,
        budget: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
        resume_from: FlipProgress | None = None,
        on_step: StepHook | None = None,
    ) -> EdgePerturbation:
        """``budget`` insertions, going on from ``resume_from`` when it was made with the same
        inputs and no more flips; ``on_step`` is called with the state after each whole
        meta-gradient."""
        self.validate(train, budget, surrogate)
        fingerprint = self._fingerprint(train, surrogate, random_state)
        if resume_from is None or not resume_from.continues(fingerprint, budget):
            resume_from = FlipProgress(fingerprint)
        rng = check_random_state(random_state)
        started = time.perf_counter()
        problem = self._problem(train, rng)
        if budget > len(problem.candidates):
            raise ConfigError(
                f"{self.name}: a budget of {budget} flips exceeds the {len(problem.candidates)} "
                "candidate non-edges; lower the budget or raise negative_ratio / new_users"
            )
        model = self.surrogate_model(surrogate, problem.data, derive_seed(rng))
        start = self._start(model, problem, rng)
        flips, info = self._attack(model, problem, budget, start, resume_from, on_step)
        info["appended_users"] = problem.data.n_users - train.n_users
        info["seeded_edges"] = problem.data.n_ratings - train.n_ratings
        info["seconds"] = round(time.perf_counter() - started, 3)
        return EdgePerturbation(apply_flips(problem.data, flips), flips, info)

    def grows_by_prefix(self) -> bool:
        return True

    def _fingerprint(
        self, train: Interactions, surrogate: Recommender | None, random_state: RandomState
    ) -> str | None:
        """What a resumable state must have been made from: these parameters, the surrogate's
        (its ``random_state`` too: it seeds θ_0), the data and the random state."""
        surrogate_params = {} if surrogate is None else surrogate.get_params()
        attack_params = {
            **self.get_params(),
            "surrogate_seed": surrogate_params.get("random_state"),
        }
        no_targets = np.zeros(0, dtype=np.int64)
        return progress_fingerprint(
            attack_params, surrogate_params, train, no_targets, [random_state]
        )

    # -- the pieces subclasses change ------------------------------------------------------------
    def _problem(self, train: Interactions, rng: np.random.Generator) -> EdgeProblem:
        """``A⁺`` = every interaction; ``A⁻`` = sampled non-edges of real users (candidates)."""
        users, items, _ = train.triples()
        n_neg = round(self.negative_ratio * len(users))
        real = np.flatnonzero(~train.is_fake)
        neg_users, neg_items = sample_non_edges(train, real, n_neg, rng)
        return _pairs(train, users, items, neg_users, neg_items, candidates_from=len(users))

    def _start(
        self, model: FunctionalNCF, problem: EdgeProblem, rng: np.random.Generator
    ) -> Params:
        """θ_0 of every inner training: the surrogate's initialisation."""
        return model.initial

    # -- machinery -------------------------------------------------------------------------------
    def validate(self, train: Interactions, budget: int, surrogate: Recommender | None) -> None:
        if not train.is_implicit:
            raise ConfigError(f"{self.name} flips implicit edges; binarize the data first")
        if train.n_ratings == 0:
            raise ConfigError(f"{self.name}: the data has no interactions")
        if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
            raise ConfigError(f"{self.name}: the budget must be a number of flips >= 1")
        checks = [
            (isinstance(self.steps, int) and self.steps >= 1, "steps must be an integer >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.negative_ratio > 0, "negative_ratio must be > 0"),
            (
                isinstance(self.flips_per_step, int) and self.flips_per_step >= 1,
                "flips_per_step must be an integer >= 1",
            ),
            (self.max_memory_gb > 0, "max_memory_gb must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.name}: {message}")
        if surrogate is None and "surrogate" in self.requires:
            raise ConfigError(f"{self.name} needs a surrogate victim (set `surrogate:`)")
        if surrogate is not None and "differentiable" not in surrogate.capabilities:
            raise ConfigError(
                f"{self.name} needs a differentiable NCF surrogate (gmf, mlp or neumf); "
                f"{surrogate.name} is not"
            )

    def surrogate_model(
        self, surrogate: Recommender | None, data: Interactions, seed: int
    ) -> FunctionalNCF:
        """The surrogate's architecture and initialisation (one replica) on ``data``'s shape."""
        if surrogate is None:
            from recpoison.victims import make_victim

            surrogate = make_victim("gmf", random_state=seed, device="cpu")
        if not hasattr(surrogate, "initial_module"):
            raise ConfigError(f"{self.name}: surrogate {surrogate.name} is not an NCF victim")
        params: dict[str, Any] = {"n_replicas": 1}
        if surrogate.get_params().get("random_state") is None:
            params["random_state"] = seed
        if surrogate.get_params().get("seeds") is not None:
            params["seeds"] = list(surrogate.get_params()["seeds"])[:1]
        module = surrogate.clone(**params).initial_module(data.n_users, data.n_items)
        return FunctionalNCF(module)

    def _attack(
        self,
        model: FunctionalNCF,
        problem: EdgeProblem,
        budget: int,
        start: Params,
        resume_from: FlipProgress,
        on_step: StepHook | None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The flips of ``budget`` insertions after those of ``resume_from`` (left unchanged):
        one meta-gradient per ``flips_per_step`` (the last one possibly partial, which stays out
        of ``progress_``)."""
        device = start["ncf.user_table"].device
        pairs, labels = problem.tensors(device)
        optimizer = OPTIMIZERS[self.optimizer](self.lr)
        peak = check_memory(
            self.name, model, pairs, labels, self.steps, optimizer, self.exact, self.max_memory_gb
        )
        open_mask = torch.zeros(len(labels), dtype=torch.bool, device=device)
        open_mask[torch.as_tensor(problem.candidates, device=device)] = True
        progress = FlipProgress(
            resume_from.fingerprint,
            list(resume_from.picked),
            list(resume_from.losses),
            list(resume_from.accuracies),
        )
        if progress.picked:
            done = torch.as_tensor(np.concatenate(progress.picked), device=device)
            labels[done] = 1.0
            open_mask[done] = False
        chosen = list(progress.picked)
        losses, accuracies = list(progress.losses), list(progress.accuracies)
        n_done = progress.size
        while n_done < budget:
            grad, loss, accuracy = self._gradient(model, pairs, labels, optimizer, start)
            losses.append(loss)
            accuracies.append(accuracy)
            scores = flip_scores(grad, labels).masked_fill(~open_mask, -torch.inf)
            k = min(self.flips_per_step, budget - n_done)
            best = torch.topk(scores, k).indices
            labels[best] = 1.0
            open_mask[best] = False
            chosen.append(best.cpu().numpy())
            n_done += k
            if k == self.flips_per_step:  # a whole meta-gradient: larger budgets share it
                progress = FlipProgress(
                    progress.fingerprint, list(chosen), losses[:], accuracies[:]
                )
                if on_step is not None:
                    on_step(progress)
            logger.info(
                "%s: %d/%d flips, surrogate L_train %.4f, accuracy %.4f",
                self.name,
                n_done,
                budget,
                loss,
                accuracy,
            )
        picked = np.concatenate(chosen)
        flips = np.column_stack(
            [problem.users[picked], problem.items[picked], np.ones(len(picked), dtype=np.int64)]
        ).astype(np.int64)
        info = {
            "surrogate_loss": losses,
            "surrogate_accuracy": accuracies,
            "estimated_peak_gb": round(peak / GIB, 4),
            "pairs": len(problem.users),
            "candidates": len(problem.candidates),
            "resumed_from": resume_from.size,
        }
        self.progress_ = progress
        return flips, info

    def _gradient(
        self,
        model: FunctionalNCF,
        pairs: PairData,
        labels: torch.Tensor,
        optimizer: Optimizer,
        start: Params,
    ) -> tuple[torch.Tensor, float, float]:
        compute = meta_gradient if self.exact else approx_meta_gradient
        grad, loss, logits = compute(model, pairs, labels, self.steps, optimizer, start)
        accuracy = float(((logits > 0).float() == labels).float().mean())
        return grad, loss, accuracy


class MetaApproxAttack(MetaAttack):
    """Meta-Approx (Algorithm 3): the approximate meta-gradient, memory of one inner step."""

    name = "meta-approx"
    exact = False


class MetaSurrogateAttack(MetaAttack):
    """Surrogate Meta-Attack (Algorithm 4): ``meta`` on an explicitly given surrogate model,
    whose architecture and initialisation may differ from the victim's."""

    name = "meta-surrogate"
    requires: ClassVar[frozenset[str]] = frozenset({"surrogate", "differentiable"})


# -- helpers ---------------------------------------------------------------------------------
def _pairs(
    data: Interactions,
    pos_users: np.ndarray,
    pos_items: np.ndarray,
    neg_users: np.ndarray,
    neg_items: np.ndarray,
    candidates_from: int,
) -> EdgeProblem:
    """The problem whose pairs are the positives then the negatives; candidates are the pairs
    from index ``candidates_from`` on."""
    users = np.concatenate([pos_users, neg_users]).astype(np.int64)
    items = np.concatenate([pos_items, neg_items]).astype(np.int64)
    labels = np.concatenate([np.ones(len(pos_users)), np.zeros(len(neg_users))])
    return EdgeProblem(data, users, items, labels, np.arange(candidates_from, len(users)))


def new_users_problem(
    train: Interactions, rows: sp.csr_matrix, negative_ratio: float, rng: np.random.Generator
) -> EdgeProblem:
    """Algorithm 5's pairs: ``rows`` appended as new users; every interaction is a positive;
    the negatives are sampled non-edges of the real users (``negative_ratio`` per interaction of
    ``train``) plus *every* empty entry of the new users, which alone are the candidates."""
    real = np.flatnonzero(~train.is_fake)
    neg_users, neg_items = sample_non_edges(
        train, real, round(negative_ratio * train.n_ratings), rng
    )
    data = append_users(train, rows)
    pos_users, pos_items, _ = data.triples()
    new_users, new_items = np.nonzero(rows.toarray() == 0)
    return _pairs(
        data,
        pos_users,
        pos_items,
        np.concatenate([neg_users, new_users + train.n_users]),
        np.concatenate([neg_items, new_items]),
        candidates_from=len(pos_users) + len(neg_users),
    )


def sample_non_edges(
    data: Interactions, users: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct non-edges (user, item) drawn uniformly among those of ``users``."""
    n_items = data.n_items
    sub = data.matrix[users]
    taken = np.repeat(users, np.diff(sub.indptr)) * n_items + sub.indices
    n_free = len(users) * n_items - len(taken)
    if count > n_free:
        raise ConfigError(
            f"cannot sample {count} negatives: only {n_free} non-edges; lower negative_ratio"
        )
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < count:
        draws = users[rng.integers(0, len(users), size=2 * count + 16)] * n_items + rng.integers(
            0, n_items, size=2 * count + 16
        )
        draws = draws[~np.isin(draws, taken)]
        keys = np.concatenate([keys, draws])
        keys = keys[np.sort(np.unique(keys, return_index=True)[1])]  # first draws, in order
    keys = keys[:count]
    return keys // n_items, keys % n_items


def append_users(data: Interactions, rows: sp.csr_matrix) -> Interactions:
    """``data`` with ``rows`` appended as new users (``is_fake`` True)."""
    return data.with_fake_users(FakeProfiles(rows, np.zeros(0, dtype=np.int64)))
