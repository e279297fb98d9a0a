"""The authors' poison-model procedure (Huang et al., NDSS 2021, Algorithm 1 as their public code
runs it), for several target sets at once on stacked replicas.

Replica ``r`` of one stacked NCF poison model attacks target set ``r`` with its own fake users:
its data are the attacker's view plus *its* fake users, so all replicas share the normal users
(rows, seen items) and the fake users' indices, and differ in the fake users' items. One
batched training per step then serves every target of a cell, instead of one training per target
(``benchmarks/full_grid.py`` measures the saving). Everything is per replica and equal to the
one-replica run with the same random state up to floating-point rounding, except Adam's step
counter, which the stacked optimizer shares (a replica that skips a step still counts it; after
pre-training both bias corrections are 1 to float precision).

One step for a group of fake users (``fake_per_step``), per replica (section IV-C):

1. pre-train a *fresh* model from scratch, for the surrogate's epochs, on the view plus the
   finished fake users (positives plus negatives fixed once, see :func:`fixed_negatives`) plus
   the new fake users rating only their targets (no negative);
2. ``rounds`` rounds, each: the users of S (normal users who have not rated a target) in a
   shuffled order, one optimizer step per user on ``λη l_u`` (Eq. 2), skipped when
   ``l_u = -κ``; one step on ``λ ||ŷ_v||²`` over the fake users' non-target items; one epoch of
   ordinary training. Adam's moments carry over from pre-training. Replica ``r`` takes its
   ``j``-th user at the ``j``-th step; a replica that skips (clamped loss, or no ``j``-th user)
   has its parameters and moments restored after the stacked step;
3. the fake users' predicted scores ŷ_v of the round with the best HR_t@K (round 0 = the
   pre-trained model) choose the fillers.

Nothing a step does depends on how many fake users are still to come, so with the same random
states the first ``n`` fake users of a larger attack are those of the attack of size ``n``
whenever ``n`` is a multiple of ``fake_per_step``. :class:`AuthorsProgress` is the state after
some steps; an attack of a larger size may go on from it (``resume_from``) instead of starting
over: the runner does so across a spec's sizes (Table I's 0.5/1/3/5 % on 671 users take 34 steps
instead of 3 + 7 + 20 + 34 = 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from recpoison.attacks.filler_selection import SelectionProbability
from recpoison.attacks.poison_loss import eligible_mask, rank_gaps, seen_mask, user_losses
from recpoison.data.interactions import Interactions
from recpoison.victims.base import Recommender


def fixed_negatives(
    n_items: int, rated: np.ndarray, n_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_negatives`` negatives per rated item of a finished fake user, drawn uniformly with
    replacement from the items it did not rate, once for the rest of the attack (authors)."""
    unrated = np.setdiff1d(np.arange(n_items), rated)
    return rng.choice(unrated, size=len(rated) * n_negatives, replace=True)


@dataclass
class AuthorsProgress:
    """The state of the authors' schedule after ``n_fake`` fake users per target set: what a
    larger attack with the same inputs (``fingerprint``) goes on from. Lists hold one entry per
    target set; ``rngs`` are the random streams as the next step finds them."""

    fingerprint: str | None
    n_fake: int
    rngs: list[np.random.Generator]
    fit_seeds: list[int]
    hr_before: np.ndarray
    n_negatives: int
    selections: list[SelectionProbability]
    fillers: list[np.ndarray]
    ratings: list[np.ndarray]
    negatives: list[list[np.ndarray]]
    traces: list[list[dict[str, Any]]]
    unit: ClassVar[str] = "fake users"

    @property
    def size(self) -> int:
        return self.n_fake

    def continues(self, fingerprint: str | None, n_fake: int, per_step: int) -> bool:
        """Whether an attack of ``n_fake`` fake users with inputs ``fingerprint`` may go on from
        here: same inputs, no more fake users yet, and only whole steps behind."""
        return (
            fingerprint is not None
            and fingerprint == self.fingerprint
            and self.n_fake <= n_fake
            and self.n_fake % per_step == 0
        )


@dataclass
class StackedTargets:
    """What replica ``r`` of a stacked poison model attacks: ``targets[r]`` (``[R, T]`` item
    indices) over the normal users of ``view``, with the fake users ``fake_users`` (the same
    indices in every replica's data). Computes the objective and HR_t per replica and takes the
    authors' per-user optimizer steps."""

    view: Interactions
    targets: np.ndarray
    fake_users: np.ndarray
    top_k: int
    kappa: float
    eta: float
    lam: float
    device: torch.device

    def __post_init__(self) -> None:
        self.eligible = np.stack([eligible_mask(self.view, t) for t in self.targets])  # [R,U,T]
        self.users = [np.flatnonzero(e.any(axis=1)) for e in self.eligible]
        self.targets_t = torch.as_tensor(self.targets, device=self.device)
        n_items = self.view.n_items
        keep = np.ones((len(self.targets), n_items), dtype=bool)
        np.put_along_axis(keep, self.targets, False, axis=1)
        self.keep = torch.as_tensor(keep, device=self.device)  # [R, I] non-target items

    @property
    def n_replicas(self) -> int:
        return len(self.targets)

    def fake_norms(self, model: Recommender) -> torch.Tensor:
        """``||ŷ_v||²`` per replica over its non-target items (differentiable), ``[R]``."""
        if len(self.fake_users) == 0:
            return torch.zeros(self.n_replicas, device=self.device)
        probs = torch.sigmoid(model.scores_with_grad(self.fake_users, logits=True))  # [R,F,I]
        return (probs.pow(2) * self.keep[:, None, :]).sum(dim=(1, 2))

    @torch.no_grad()
    def values(self, model: Recommender, batch_users: int = 256) -> dict[str, np.ndarray]:
        """Per replica: ``fake_norm``, ``target_loss`` (Σ_S l_u), ``G`` (Eq. 4) and the model's
        own HR_t@K (users of S whose gap is <= 0, over |S|, averaged over the targets)."""
        norms = self.fake_norms(model).cpu().numpy()
        total = np.zeros(self.n_replicas)
        hits = np.zeros(self.eligible.shape[::2])  # [R, T]
        normal = np.flatnonzero(self.eligible.any(axis=(0, 2)))
        for start in range(0, len(normal), batch_users):
            users = normal[start : start + batch_users]
            logits = model.score_replicas(users)  # chunked: no autograd graph to keep here
            seen = seen_mask(self.view.matrix, users, self.device)
            gaps = rank_gaps(logits, seen, self.targets_t, self.top_k)
            eligible = torch.as_tensor(self.eligible[:, users], device=self.device)
            losses = user_losses(gaps, eligible, self.kappa)
            total += losses.sum(dim=(1, 2)).double().cpu().numpy()
            hits += ((gaps <= 0) & eligible).sum(dim=1).double().cpu().numpy()
        counts = self.eligible.sum(axis=1)  # [R, T]
        ratios = np.divide(hits, counts, out=np.zeros_like(hits), where=counts > 0)
        hr = np.array(
            [r[c > 0].mean() if (c > 0).any() else 0.0 for r, c in zip(ratios, counts, strict=True)]
        )
        return {"fake_norm": norms, "target_loss": total, "G": norms + self.eta * total, "hr": hr}

    def poison_round(self, model: Recommender, rngs: list[np.random.Generator]) -> None:
        """Step 2 of the module docstring, without the epoch of ordinary training."""
        orders = [rng.permutation(users) for rng, users in zip(rngs, self.users, strict=True)]
        for j in range(max((len(o) for o in orders), default=0)):
            present = np.array([j < len(o) for o in orders])
            users = np.array([o[j] if j < len(o) else 0 for o in orders])
            losses, active = self._user_losses(model, users)
            active &= torch.as_tensor(present, device=self.device)
            if bool(active.any()):
                masked_step(model, self.lam * self.eta * losses[active].sum(), active)
        model.optimizer_step(self.lam * self.fake_norms(model).sum())

    def _user_losses(
        self, model: Recommender, users: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 2 for replica ``r``'s user ``users[r]``: the summed ``l_u`` over its targets
        ``[R]`` (differentiable; the top-K cut found without autograd, then only the K-th item
        and the targets scored with it) and whether any of them is above ``-κ``."""
        user_t = torch.as_tensor(users, device=self.device)
        module = model.module_
        seen = seen_mask(self.view.matrix, users, self.device)  # [R, I]: row r is users[r]'s
        with torch.no_grad():
            logits = module.full_logits(user_t[:, None])[:, 0]  # [R, I]
            ranked = logits.masked_fill(seen, -torch.inf)
            kth = torch.topk(ranked, min(self.top_k, ranked.shape[-1]), dim=-1).indices[:, -1]
        items = torch.cat([kth[:, None], self.targets_t], dim=1)  # [R, 1 + T]
        n_pairs = items.shape[1]
        replica = torch.arange(self.n_replicas, device=self.device)[:, None]
        flat_users = (replica * module.n_users + user_t[:, None]).expand(-1, n_pairs)
        flat_items = replica * module.n_items + items
        pair = module.pair_logits(flat_users.reshape(-1), flat_items.reshape(-1))  # [R, 1 + T]
        gaps = F.logsigmoid(pair[:, :1]) - F.logsigmoid(pair[:, 1:])
        eligible = torch.as_tensor(self.eligible[np.arange(len(users)), users], device=self.device)
        losses = user_losses(gaps, eligible, self.kappa).sum(dim=1)
        return losses, ((gaps > -self.kappa) & eligible).any(dim=1)


def masked_step(model: Recommender, loss: torch.Tensor, active: torch.Tensor) -> None:
    """One optimizer step of ``model`` on ``loss``, undone for the replicas not ``active``.

    Adam moves every parameter with momentum even where the gradient is zero, so a replica that
    skips the step gets its parameters and moments back from before it (the authors' code skips
    the step: ``continue``)."""
    if bool(active.all()):
        model.optimizer_step(loss)
        return
    idle = torch.nonzero(~active).flatten()
    module = model.module_
    saved = []
    for param in module.parameters():
        flat_table = param is module.user_table or param is module.item_table
        state = model.optimizer_.state.get(param, {})
        moments = [state[key] for key in ("exp_avg", "exp_avg_sq") if key in state]
        for tensor in (param.data, *moments):
            # the replica as the first dimension (flat tables are [R * n, d])
            view = tensor.view(module.n_replicas, -1, tensor.shape[1]) if flat_table else tensor
            saved.append((view, view[idle].clone()))
    model.optimizer_step(loss)
    with torch.no_grad():
        for view, rows in saved:
            view[idle] = rows
