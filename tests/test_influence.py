"""Influence of users on a target item (Fang et al. 2020 Eqs. 8-13) and Algorithm 1."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from recpoison.attacks.influence import (
    FittedMF,
    greedy_select,
    influence_columns,
    influential_users,
    rating_influence,
    user_influence,
)
from recpoison.data import planted
from recpoison.errors import ConfigError
from recpoison.victims.mf import Entries

F64 = torch.float64


def _fitted(n_users: int, n_items: int, per_user: int, rank: int, lam: float) -> FittedMF:
    data = planted(n_users, n_items, n_factors=3, ratings_per_user=per_user, random_state=0)
    entries = Entries.from_interactions(data, 0.0, F64, torch.device("cpu"))
    return FittedMF.fit(entries, rank, lam, 2000, seed=0)


def _dense_phi(model: FittedMF, target: int, block_diagonal: bool) -> np.ndarray:
    """Eq. (12) with the Hessian formed densely (tiny sizes only): ``[ratings, users]``."""
    m, d = model.users.shape
    theta = torch.cat([model.users.ravel(), model.items.ravel()])

    def loss(flat):
        u, v = flat[: m * d].view(m, d), flat[m * d :].view(-1, d)
        e = model.entries
        pred = (u[e.rows] * v[e.cols]).sum(1)
        return ((e.values - pred) ** 2).sum() + model.lam * (flat**2).sum()

    hessian = torch.autograd.functional.hessian(loss, theta)
    if block_diagonal:
        mask = torch.zeros_like(hessian)
        for block in range(len(theta) // d):
            mask[block * d : (block + 1) * d, block * d : (block + 1) * d] = 1
        hessian = hessian * mask
    e = model.entries
    residual = model.residuals
    grad_loss = torch.zeros(e.nnz, len(theta), dtype=F64)  # ∇ℓ((k,j)) per rating
    for n, (k, j) in enumerate(zip(e.rows.tolist(), e.cols.tolist(), strict=True)):
        grad_loss[n, k * d : (k + 1) * d] = -2 * residual[n] * model.items[j]
        grad_loss[n, (m + j) * d : (m + j + 1) * d] = -2 * residual[n] * model.users[k]
    grad_pred = torch.zeros(m, len(theta), dtype=F64)  # ∇r̂_ot per user o
    for o in range(m):
        grad_pred[o, o * d : (o + 1) * d] = model.items[target]
        grad_pred[o, (m + target) * d : (m + target + 1) * d] = model.users[o]
    return (grad_loss @ torch.linalg.solve(hessian, grad_pred.T)).numpy()


def test_cg_influence_is_eq12_with_the_exact_hessian():
    model = _fitted(12, 10, 5, 2, 1.0)
    target = 3
    columns = influence_columns(model, target, max_iter=200, tol=1e-12)
    phi = np.concatenate([block for _, block in columns], axis=1)
    np.testing.assert_allclose(phi, _dense_phi(model, target, False), atol=1e-8)
    expected = np.abs(phi).sum(1)
    np.testing.assert_allclose(rating_influence(model, target, "cg", tol=1e-12), expected)


@pytest.mark.parametrize("rank", [2, 14])  # 14: users' blocks by Woodbury (5 ratings < d)
def test_block_influence_is_eq12_with_the_block_diagonal_hessian(rank):
    model = _fitted(12, 10, 5, rank, 1.0)
    for target in (0, 3):
        dense = np.abs(_dense_phi(model, target, True)).sum(1)
        np.testing.assert_allclose(rating_influence(model, target, "block"), dense, atol=1e-10)
    pi = user_influence(model, 3, "block")
    rows = model.entries.rows.numpy()
    np.testing.assert_allclose(pi, np.bincount(rows, rating_influence(model, 3), minlength=12))


def test_influence_ranks_users_like_refitting_without_them():
    """Removing a user, estimated (Eq. 12 summed over its ratings) vs refitted, on tiny data:
    Σ_{o≠k} |Δr̂_ot| over the other users, rank-correlated over users."""
    model = _fitted(40, 30, 8, 3, 2.0)
    target = 12
    rows = model.entries.rows.numpy()
    phi = np.concatenate([block for _, block in influence_columns(model, target)], axis=1)
    before = (model.users @ model.items[target]).numpy()
    estimate, truth = np.zeros(40), np.zeros(40)
    e = model.entries
    for k in range(40):
        estimate[k] = np.abs(np.delete(phi[rows == k].sum(0), k)).sum()
        keep = e.rows != k
        without = Entries(e.rows[keep], e.cols[keep], e.values[keep], e.shape)
        refit = FittedMF.fit(without, 3, 2.0, 300, warm_items=model.items)
        after = (refit.users @ refit.items[target]).numpy()
        truth[k] = np.abs(np.delete(after - before, k)).sum()
    assert spearmanr(estimate, truth).statistic > 0.7
    assert spearmanr(user_influence(model, target, "cg"), truth).statistic > 0.7
    assert spearmanr(user_influence(model, target, "block"), truth).statistic > 0.6


def test_algorithm1_path_is_monotone_and_is_the_top_delta_of_pi():
    rng = np.random.default_rng(0)
    pi = np.round(rng.random(50), 1)  # many ties
    selection = influential_users(pi, 12, np.random.default_rng(1))
    assert len(set(selection.users)) == 12
    assert np.all(np.diff(selection.objective) >= 0)
    np.testing.assert_allclose(selection.objective, np.cumsum(pi[selection.users]))
    assert pi[selection.users].min() >= np.sort(pi)[-12]  # additive F: greedy = top-Δ
    other = influential_users(pi, 12, np.random.default_rng(2))
    assert np.sort(pi[other.users]).tolist() == np.sort(pi[selection.users]).tolist()


def test_algorithm1_recomputes_marginal_gains_of_a_submodular_objective():
    """With a coverage objective the second pick is not the second-best single user."""
    covers = [{0, 1, 2, 3}, {0, 1, 2}, {4, 5}]

    def covered(selected):
        return set().union(*(covers[k] for k in np.flatnonzero(selected)))

    def gains(selected):
        have = covered(selected)
        return np.array([len(c - have) for c in covers], dtype=float)

    selection = greedy_select(
        lambda s: float(len(covered(s))), gains, 3, 2, np.random.default_rng(0)
    )
    assert selection.users.tolist() == [0, 2]
    assert selection.objective.tolist() == [4.0, 6.0]
    with pytest.raises(ConfigError, match="budget"):
        greedy_select(lambda s: 0.0, gains, 3, 0, np.random.default_rng(0))
