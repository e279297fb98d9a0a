"""Ranking metrics: the target hit ratio HR_t@K and leave-one-out HR@K / NDCG@K.

Ties are broken by expected rank: an item whose score equals that of ``e`` other candidates is
given rank ``#greater + e / 2`` (0-based), so a constant model never scores a hit by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state
from recpoison.victims.base import Recommender, mask_seen


@dataclass(frozen=True)
class TargetHitRatio:
    """Hits of each target item among eligible normal users, per replica.

    ``hits[r, t, j]`` is the number of eligible users whose top-``ks[j]`` list of replica ``r``
    contains ``targets[t]``; ``eligible[t]`` the number of normal users who had not interacted
    with ``targets[t]`` (the denominator; fake users never count).
    """

    targets: np.ndarray
    ks: tuple[int, ...]
    hits: np.ndarray
    eligible: np.ndarray

    def ratio(self) -> np.ndarray:
        """HR_t@K as ``[replicas, targets, ks]`` (NaN for a target with no eligible user)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.eligible[None, :, None] > 0,
                self.hits / np.maximum(self.eligible, 1)[None, :, None],
                np.nan,
            )

    def mean(self, k: int | None = None) -> float:
        """Mean HR_t@k over replicas and targets (the paper's HR averaged over targets)."""
        j = self.ks.index(k) if k is not None else 0
        return float(np.nanmean(self.ratio()[:, :, j]))


def target_hit_ratio(
    model: Recommender,
    train: Interactions,
    targets: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (10,),
    *,
    batch_size: int = 1024,
) -> TargetHitRatio:
    """HR_t@K (Huang et al. 2021, section III-B and V-A) of every target for every replica.

    For each target ``t`` only *normal* users (``~train.is_fake``) who have not interacted with
    ``t`` in ``train`` count; each one's ranking is over the items they have not interacted with.
    ``train`` is the data the model was trained on (with per-replica data, any one of them: the
    normal users' rows are the same). Top-k runs batched on the model's device.
    """
    targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
    ks = tuple(int(k) for k in ks)
    normal = np.flatnonzero(~train.is_fake)
    rated_target = train.matrix[:, targets].toarray() > 0  # [n_users, T]
    eligible = (~rated_target[normal]).sum(axis=0).astype(np.int64)
    hits = np.zeros((model.n_replicas, len(targets), len(ks)), dtype=np.int64)
    target_index = torch.as_tensor(targets)
    for start in range(0, len(normal), batch_size):
        users = normal[start : start + batch_size]
        scores = mask_seen(model.score_replicas(users).float(), train, users)  # [R, U, I]
        idx = target_index.to(scores.device)
        target_scores = scores[:, :, idx]  # [R, U, T]
        is_eligible = torch.as_tensor(~rated_target[users], device=scores.device)
        for j, k in enumerate(ks):
            hit = _in_top_k(scores, target_scores, k) & is_eligible[None]
            hits[:, :, j] += hit.sum(dim=1).cpu().numpy()
    return TargetHitRatio(targets, ks, hits, eligible)


def _in_top_k(scores: torch.Tensor, target_scores: torch.Tensor, k: int) -> torch.Tensor:
    """Whether each target's expected rank among the finite candidates is below ``k``.

    Exact with ties: a target scoring strictly above the k-th best candidate is a hit, strictly
    below is a miss, and only exact ties with the k-th value need counting.
    """
    k = min(k, scores.shape[-1])
    kth = torch.topk(scores, k, dim=-1).values[..., -1:]  # [R, U, 1]
    hit = target_scores > kth
    tied = (target_scores == kth) & torch.isfinite(target_scores)
    if tied.any():
        r, u, t = torch.nonzero(tied, as_tuple=True)
        row_scores = scores[r, u]  # [n, I]
        value = target_scores[r, u, t][:, None]
        greater = (row_scores > value).sum(dim=1)
        equal_others = (row_scores == value).sum(dim=1) - 1
        hit[r, u, t] = (greater + equal_others / 2.0) < k
    return hit


def leave_one_out_hr_ndcg(
    model: Recommender,
    train: Interactions,
    test_items: np.ndarray,
    k: int = 10,
    n_negatives: int = 99,
    *,
    random_state: RandomState = None,
) -> dict[str, np.ndarray]:
    """HR@k and NDCG@k per replica with the NCF protocol (He et al. 2017).

    Each user with a held-out item (``test_items[u] >= 0``, fake users excluded) ranks that item
    against ``n_negatives`` items drawn uniformly from those the user has not interacted with in
    ``train`` (never the held-out item). Returns ``{"hr": [R], "ndcg": [R], "users": n}``.
    """
    rng = check_random_state(random_state)
    test_items = np.asarray(test_items, dtype=np.int64)
    users = np.flatnonzero((test_items >= 0) & ~train.is_fake[: len(test_items)])
    if len(users) == 0:
        nan = np.full(model.n_replicas, np.nan)
        return {"hr": nan, "ndcg": nan.copy(), "users": 0}
    candidates = np.empty((len(users), n_negatives + 1), dtype=np.int64)
    candidates[:, 0] = test_items[users]
    candidates[:, 1:] = _sample_unrated(train, users, test_items[users], n_negatives, rng)
    hr = np.zeros(model.n_replicas)
    ndcg = np.zeros(model.n_replicas)
    for start in range(0, len(users), 1024):
        block = slice(start, start + 1024)
        scores = model.score_replicas(users[block]).float()  # [R, U, I]
        cand = torch.as_tensor(candidates[block], device=scores.device)
        picked = torch.gather(scores, 2, cand[None].expand(scores.shape[0], -1, -1))
        positive = picked[:, :, :1]
        greater = (picked[:, :, 1:] > positive).sum(dim=2).double()
        ties = (picked[:, :, 1:] == positive).sum(dim=2).double()
        rank = (greater + ties / 2.0).cpu().numpy()  # 0-based
        hit = rank < k
        hr += hit.sum(axis=1)
        ndcg += np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).sum(axis=1)
    return {"hr": hr / len(users), "ndcg": ndcg / len(users), "users": len(users)}


def _sample_unrated(
    train: Interactions,
    users: np.ndarray,
    held_out: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` distinct items per user, none rated in ``train`` and none the held-out item."""
    out = np.empty((len(users), count), dtype=np.int64)
    matrix = train.matrix
    for row, (u, h) in enumerate(zip(users, held_out, strict=True)):
        seen = matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]]
        forbidden = np.union1d(seen, [h])
        available = train.n_items - len(forbidden)
        if available < count:
            raise ConfigError(
                f"user {u} has only {available} unrated items for {count} negatives; "
                "lower n_negatives"
            )
        picks = np.empty(0, dtype=np.int64)
        while len(picks) < count:
            draw = rng.integers(0, train.n_items, size=2 * count)
            draw = draw[~np.isin(draw, forbidden)]
            picks = np.unique(np.concatenate([picks, draw]))
        out[row] = rng.permutation(picks)[:count]
    return out


def recall_at_k(
    model: Recommender, train: Interactions, test: Interactions, k: int = 10
) -> np.ndarray:
    """Full-ranking Recall@k per replica: the share of each user's test items found in their
    top-k over items unrated in ``train``, averaged over normal users with a test item."""
    users = np.flatnonzero((np.diff(test.matrix.indptr) > 0) & ~train.is_fake[: test.n_users])
    recall = np.zeros(model.n_replicas)
    for start in range(0, len(users), 1024):
        block = users[start : start + 1024]
        scores = mask_seen(model.score_replicas(block).float(), train, block)
        top = torch.topk(scores, min(k, scores.shape[-1]), dim=-1).indices.cpu().numpy()
        truth = test.matrix[block].toarray() > 0  # [U, I]
        found = np.take_along_axis(truth[None].repeat(len(recall), 0), top, axis=2).sum(axis=2)
        recall += (found / truth.sum(axis=1)[None]).sum(axis=1)
    return recall / max(len(users), 1)
