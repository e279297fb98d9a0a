"""``meta-targeted``: the meta-gradient machinery aimed at target items (an extension).

Not in Aravind's thesis, whose attacks are untargeted (§3.5). Here the attacker's loss is
Huang et al.'s target loss (NDSS 2021, Eqs. 2-3, :mod:`recpoison.attacks.poison_loss`)::

    L_atk(θ_T) = Σ_{u in S} Σ_t max{ min_{i in L_u} log ŷ_ui - log ŷ_ut, -κ }

over the normal users S who have not rated the target t, evaluated at the surrogate's θ_T after
T inner steps on the poisoned pairs, so the attack is comparable on HR_t with every profile
attack. As in Algorithm 5, ``n_fake`` users are appended; each rates the target(s) (as every
fake profile of recpoison does) and all its other entries join the training pairs as negatives
and candidates. Greedily, per meta-gradient, the ``flips_per_step`` candidate entries with the
largest ``-∂L_atk/∂A(u,i)`` (inserting them lowers the target loss most to first order) become
fillers, until each fake user has ``n_fillers`` of them. The real users' sampled negatives are
drawn as for ``meta``; the inner training and memory guard are ``meta``'s.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.base import Attack
from recpoison.attacks.edges import apply_flips
from recpoison.attacks.meta import (
    EdgeProblem,
    MetaAttack,
    check_memory,
    new_users_problem,
)
from recpoison.attacks.meta_gradient import OPTIMIZERS, FunctionalNCF, Params, meta_gradient
from recpoison.attacks.poison_loss import eligible_mask, rank_gaps, seen_mask, user_losses
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state, derive_seed
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)


class MetaTargetedAttack(Attack):
    """Fake users whose fillers are chosen by the meta-gradient of the target loss (see the
    module doc). ``steps``, ``lr``, ``optimizer``, ``negative_ratio``, ``max_memory_gb`` as for
    ``meta``; ``flips_per_step`` fillers per meta-gradient; ``top_k`` and ``kappa`` of the
    target loss (Huang's K = 10, κ = 1)."""

    name = "meta-targeted"
    requires: ClassVar[frozenset[str]] = frozenset({"differentiable"})

    def __init__(
        self,
        *,
        n_fillers: int = 30,
        steps: int = 100,
        lr: float = 0.01,
        optimizer: str = "adam",
        negative_ratio: float = 1.0,
        flips_per_step: int = 1,
        top_k: int = 10,
        kappa: float = 1.0,
        max_memory_gb: float = 16.0,
    ) -> None:
        super().__init__(n_fillers=n_fillers)
        self.steps = steps
        self.lr = lr
        self.optimizer = optimizer
        self.negative_ratio = negative_ratio
        self.flips_per_step = flips_per_step
        self.top_k = top_k
        self.kappa = kappa
        self.max_memory_gb = max_memory_gb

    def _machinery(self) -> MetaAttack:
        """A ``meta`` attack with these inner-training settings (parameter checks, surrogate)."""
        return MetaAttack(
            steps=self.steps,
            lr=self.lr,
            optimizer=self.optimizer,
            negative_ratio=self.negative_ratio,
            flips_per_step=self.flips_per_step,
            max_memory_gb=self.max_memory_gb,
        )

    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> FakeProfiles:
        targets = self.check_inputs(train, targets, n_fake, surrogate)
        if not train.is_implicit:
            raise ConfigError(f"{self.name} needs implicit data; binarize it first")
        machinery = self._machinery()
        machinery.validate(train, 1, surrogate)
        rng = check_random_state(random_state)
        problem = self._problem(train, targets, n_fake, rng)
        model = machinery.surrogate_model(surrogate, problem.data, derive_seed(rng))
        fillers, losses = self._choose_fillers(model, problem, train, targets, n_fake)
        flips = np.column_stack([fillers, np.ones(len(fillers), dtype=np.int64)])
        poisoned = apply_flips(problem.data, flips)
        return FakeProfiles(poisoned.matrix[train.n_users :], targets, {"target_loss": losses})

    def _problem(
        self, train: Interactions, targets: np.ndarray, n_fake: int, rng: np.random.Generator
    ) -> EdgeProblem:
        """Fake users rating the targets, appended as in Algorithm 5."""
        rows = np.repeat(np.arange(n_fake), len(targets))
        seeded = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, np.tile(targets, n_fake))),
            shape=(n_fake, train.n_items),
        )
        return new_users_problem(train, seeded, self.negative_ratio, rng)

    def _choose_fillers(
        self,
        model: FunctionalNCF,
        problem: EdgeProblem,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
    ) -> tuple[np.ndarray, list[float]]:
        device = model.initial["ncf.user_table"].device
        pairs, labels = problem.tensors(device)
        optimizer = OPTIMIZERS[self.optimizer](self.lr)
        check_memory(
            self.name, model, pairs, labels, self.steps, optimizer, True, self.max_memory_gb
        )
        eligible = eligible_mask(problem.data, targets)
        users = np.flatnonzero(eligible.any(axis=1))
        users_t = torch.as_tensor(users, device=device)
        seen = seen_mask(problem.data.matrix, users, device)
        targets_t = torch.as_tensor(targets, device=device)
        eligible_t = torch.as_tensor(eligible[users], device=device)

        def target_loss(params: Params) -> torch.Tensor:
            logits = model.full_logits(params, users_t)
            gaps = rank_gaps(logits, seen, targets_t, self.top_k)
            return user_losses(gaps, eligible_t, self.kappa).sum()

        open_mask = torch.zeros(len(labels), dtype=torch.bool, device=device)
        open_mask[torch.as_tensor(problem.candidates, device=device)] = True
        fake_of_pair = torch.as_tensor(problem.users - train.n_users, device=device)
        counts = np.zeros(n_fake, dtype=np.int64)
        chosen: list[int] = []
        losses: list[float] = []
        budget = n_fake * self.n_fillers
        while len(chosen) < budget:
            grad, loss, _ = meta_gradient(
                model, pairs, labels, self.steps, optimizer, model.initial, target_loss
            )
            losses.append(loss)
            scores = (-(1 - 2 * labels) * grad).masked_fill(~open_mask, -torch.inf)
            order = torch.argsort(scores, descending=True).cpu().numpy()
            step = 0
            for index in order:
                if not open_mask[index]:  # the rest scores -inf
                    break
                fake = int(fake_of_pair[index])
                if counts[fake] >= self.n_fillers:
                    continue
                counts[fake] += 1
                chosen.append(int(index))
                labels[index] = 1.0
                open_mask[index] = False
                step += 1
                if step == self.flips_per_step or len(chosen) == budget:
                    break
            full = torch.as_tensor(counts >= self.n_fillers, device=device)
            open_mask &= ~(full[fake_of_pair.clamp(min=0)] & (fake_of_pair >= 0))
            logger.info("%s: %d/%d fillers, target loss %.4f", self.name, len(chosen), budget, loss)
        picked = np.array(chosen, dtype=np.int64)
        return np.column_stack([problem.users[picked], problem.items[picked]]), losses
