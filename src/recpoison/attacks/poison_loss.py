"""The attack objective of Huang et al. (NDSS 2021), section IV-B and IV-C, batched over users.

The extracted text lost the symbols of Eqs. 2-6; they are reconstructed from the prose around
them and from a second account of the same attack (Abdelrehim's course report, Eqs. 2-5):

* Eq. 2, per normal user u and target t:
  ``l_u = max{ min_{i in L_u} log ŷ_ui - log ŷ_ut, -κ }``, where ``L_u`` is u's top-K
  recommendation list (items u has not interacted with, ranked by ŷ_u);
* Eq. 3: ``l = Σ_{u in S} l_u`` over S, the normal users who have not rated t;
* Eq. 4: ``G(ŷ_v) = ||ŷ_v||_2^2 + η · l`` -- the L2 norm relaxes the L0 budget of Eq. 1, and the
  fake user's *predicted* score vector ŷ_v replaces its rating vector y_v (section IV-C, "to
  avoid high order gradient calculation");
* Eq. 6: the poison model is trained on ``ℒ + λ · G``, ℒ its ordinary training loss.

Which items enter ``||ŷ_v||²`` is not stated; like the authors' code we take every item except the
target(s). ``log ŷ`` is computed as ``logsigmoid(logit)``, which is exact and never ``log 0``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recpoison.data.interactions import Interactions
from recpoison.victims.base import Recommender


def eligible_mask(data: Interactions, targets: np.ndarray) -> np.ndarray:
    """``[n_users, T]`` bool: normal (not fake) users who have not interacted with each target
    (the set S of Eq. 3, one column per target)."""
    rated = data.matrix[:, targets].toarray() > 0
    return ~rated & ~data.is_fake[:, None]


def seen_mask(matrix: sp.csr_matrix, users: np.ndarray, device: torch.device) -> torch.Tensor:
    """``[len(users), n_items]`` bool tensor, True where the user has interacted with the item."""
    return torch.as_tensor(matrix[users].toarray() > 0, device=device)


def rank_gaps(
    logits: torch.Tensor, seen: torch.Tensor, targets: torch.Tensor, top_k: int
) -> torch.Tensor:
    """``min_{i in L_u} log ŷ_ui - log ŷ_ut`` per user and target, ``[..., U, T]``.

    ``logits`` ``[..., U, I]`` (differentiable), ``seen`` ``[U, I]`` bool, ``targets`` ``[T]``
    shared by every replica, or ``[R, T]`` with replica ``r``'s own targets (``logits``
    ``[R, U, I]``). ``L_u`` is the top-``top_k`` of the unseen items, the target included, so the
    gap is <= 0 exactly when t is in u's top-K list (up to exact score ties).
    """
    log_scores = F.logsigmoid(logits)
    ranked = log_scores.masked_fill(seen, -torch.inf)
    k = min(top_k, ranked.shape[-1])
    kth = torch.topk(ranked, k, dim=-1).values[..., -1:]  # min_{i in L_u} log ŷ_ui
    if targets.dim() == 2:  # per-replica targets
        index = targets[:, None, :].expand(-1, logits.shape[1], -1)
        return kth - torch.gather(log_scores, 2, index)
    return kth - log_scores[..., targets]


def user_losses(gaps: torch.Tensor, eligible: torch.Tensor, kappa: float) -> torch.Tensor:
    """Eq. 2: ``l_u = max{gap, -κ}`` for the gaps of :func:`rank_gaps` (``[..., U, T]``), and 0
    where the user is not in S (``eligible`` ``[U, T]`` bool)."""
    return torch.where(eligible, gaps.clamp(min=-kappa), 0.0)


def fake_norm(logits: torch.Tensor, keep_items: torch.Tensor) -> torch.Tensor:
    """``||ŷ_v||²`` summed over the fake users' rows of ``logits`` ``[..., F, I]``, over the
    items ``keep_items`` (ŷ = sigmoid(logit); differentiable)."""
    return torch.sigmoid(logits[..., keep_items]).pow(2).sum()


class PoisonObjective:
    """Mini-batch share of ``G`` (Eq. 4) for ``partial_fit(..., extra_loss=self, lam=λ)``.

    Eq. 6 is ``ℒ + λG`` with ℒ "the binary cross entropy over the whole training dataset", a sum
    over its instances: IV-C chooses λ so that ℒ and the attack loss "are roughly in the same
    order of magnitude", which with the authors' λ = 0.01 and η = 100 holds for a summed BCE
    (ML-100K: about 10^4 either way), not for a mean BCE (about 0.3). The victims train on the
    *mean* BCE of mini-batches of ``b`` instances, i.e. on ℒ / b per batch, so over one epoch the
    attack term must add up to ``λG / b``.

    It is spread over ``n_steps`` of the epoch's ``n_b`` batches (every ``stride``-th call): each
    such batch adds ``λ (||ŷ_v||² / n_steps + η w Σ_{u in B} l_u) / b`` for the next
    ``users_per_step`` users ``B`` of a shuffled sweep over S, ``w`` correcting for the last
    chunk so that every user of S weighs once per epoch. Fewer, larger steps than one user per
    batch cost far less (each step scores the chunk and the fake users against every item in one
    call) and sum to the same ``λG / b``. The authors' code instead alternates one optimizer step
    per user on ``λη l_u``, one on ``λ||ŷ_v||²`` and one epoch of ℒ per round.
    """

    def __init__(
        self,
        data: Interactions,
        targets: np.ndarray,
        fake_users: np.ndarray,
        n_instances: int,
        batch_size: int,
        *,
        top_k: int,
        kappa: float,
        eta: float,
        users_per_step: int,
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        self.data = data
        self.fake_users = np.asarray(fake_users, dtype=np.int64)
        self.top_k = top_k
        self.kappa = kappa
        self.eta = eta
        self.rng = rng
        self.device = device
        self.batch_size = batch_size
        n_batches = max(1, math.ceil(n_instances / batch_size))
        self.eligible = eligible_mask(data, targets)
        self.users = np.flatnonzero(self.eligible.any(axis=1))
        n_users = len(self.users)
        self.chunk = min(n_users, max(users_per_step, math.ceil(n_users / n_batches)))
        self.n_steps = math.ceil(n_users / self.chunk) if n_users else 1
        self.stride = max(1, n_batches // self.n_steps)
        # n_steps chunks visit chunk * n_steps >= |S| users: rescale to one visit per user
        self.weight = n_users / (self.chunk * self.n_steps) if n_users else 0.0
        self.targets_t = torch.as_tensor(targets, device=device)
        keep = np.setdiff1d(np.arange(data.n_items), targets)
        self.keep_items = torch.as_tensor(keep, device=device)
        self._queue = np.empty(0, dtype=np.int64)
        self._calls = 0

    def next_users(self) -> np.ndarray:
        """The next chunk of the shuffled sweep over S (reshuffled when exhausted)."""
        if len(self._queue) < self.chunk:
            self._queue = np.concatenate([self._queue, self.rng.permutation(self.users)])
        batch, self._queue = self._queue[: self.chunk], self._queue[self.chunk :]
        return batch

    def __call__(self, model: Recommender) -> torch.Tensor:
        call, self._calls = self._calls, self._calls + 1
        if call % self.stride:
            return torch.zeros((), device=self.device)
        users = self.next_users()
        logits = model.scores_with_grad(self.fake_users, logits=True)
        loss = fake_norm(logits, self.keep_items) / self.n_steps
        if len(users):
            loss = loss + self.eta * self.weight * self.user_terms(model, users).sum()
        return loss / self.batch_size

    def user_terms(self, model: Recommender, users: np.ndarray) -> torch.Tensor:
        """Eq. 2 for ``users`` (``[R, U, T]``, differentiable), at the cost of two pairs per user.

        The top-K cut is found on scores computed without autograd; only the K-th item's and the
        target's logits are recomputed with it. The value and the gradient are those of
        :func:`rank_gaps` on the full score matrix (the gradient of a top-k value flows to the
        selected entry only), without back-propagating through every item.
        """
        with torch.no_grad():
            full = model.scores_with_grad(users, logits=True)  # [R, U, I]
            ranked = full.masked_fill(seen_mask(self.data.matrix, users, self.device), -torch.inf)
            kth = torch.topk(ranked, min(self.top_k, ranked.shape[-1]), dim=-1).indices[..., -1]
        n_rep, n_users, n_targets = kth.shape[0], len(users), len(self.targets_t)
        user_index = torch.as_tensor(users, device=self.device)
        pair_users = torch.cat([user_index.repeat(n_rep), user_index.repeat_interleave(n_targets)])
        pair_items = torch.cat([kth.reshape(-1), self.targets_t.repeat(n_users)])
        logits = model.forward_scores(pair_users, pair_items, logits=True)  # [R, pairs]
        own = torch.arange(n_rep, device=self.device)
        kth_logits = logits[:, : n_rep * n_users].view(n_rep, n_rep, n_users)[own, own]
        target_logits = logits[:, n_rep * n_users :].view(n_rep, n_users, n_targets)
        gaps = F.logsigmoid(kth_logits)[..., None] - F.logsigmoid(target_logits)
        eligible = torch.as_tensor(self.eligible[users], device=self.device)
        return user_losses(gaps, eligible, self.kappa)

    @torch.no_grad()
    def value(self, model: Recommender, batch_users: int = 256) -> dict[str, float]:
        """The full objective on the current model -- ``||ŷ_v||²``, ``l = Σ_S l_u`` and ``G`` --
        and, from the same scores, the model's own HR_t@K (users of S whose gap is <= 0, over
        |S|, averaged over targets; equal to :func:`recpoison.metrics.target_hit_ratio` up to
        exact score ties)."""
        norm = float(
            fake_norm(model.scores_with_grad(self.fake_users, logits=True), self.keep_items)
        )
        total = 0.0
        hits = np.zeros(self.eligible.shape[1])
        for start in range(0, len(self.users), batch_users):
            users = self.users[start : start + batch_users]
            logits = model.scores_with_grad(users, logits=True)
            seen = seen_mask(self.data.matrix, users, self.device)
            eligible = torch.as_tensor(self.eligible[users], device=self.device)
            gaps = rank_gaps(logits, seen, self.targets_t, self.top_k)
            gaps = gaps.reshape(-1, *gaps.shape[-2:])  # [R, U, T]
            total += float(user_losses(gaps, eligible, self.kappa).sum())
            hit = (gaps <= 0) & eligible
            hits += hit.sum(dim=1).double().mean(dim=0).cpu().numpy()  # mean over replicas
        counts = self.eligible.sum(axis=0)
        hr = float(np.mean(hits[counts > 0] / counts[counts > 0])) if counts.any() else 0.0
        return {"fake_norm": norm, "target_loss": total, "G": norm + self.eta * total, "hr": hr}
