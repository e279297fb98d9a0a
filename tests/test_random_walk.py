"""The random-walk recommender: Eqs. (22)-(23) against a dense solve, batching, replicas."""

import numpy as np
import pytest
import torch

from recpoison.data import binarize
from recpoison.errors import ConfigError
from recpoison.victims import make_victim
from recpoison.victims.random_walk import BipartiteWalk, restart_vectors, solve_fixed_point


def dense_stationary(data, users, alpha):
    """``α (I − (1 − α) Qᵀ)⁻¹ e_u`` with Q the row-stochastic transition matrix of Eq. (23)."""
    ratings = data.matrix.toarray().astype(np.float64)
    n_users, n_items = ratings.shape
    adjacency = np.zeros((n_users + n_items, n_users + n_items))
    adjacency[:n_users, n_users:] = ratings
    adjacency[n_users:, :n_users] = ratings.T
    q = adjacency / adjacency.sum(1, keepdims=True)
    m = np.linalg.inv(np.eye(n_users + n_items) - (1 - alpha) * q.T)
    return alpha * m[:, users]


@pytest.mark.parametrize("alpha", [0.3, 0.7])
def test_scores_are_the_stationary_distribution(tiny_explicit, alpha):
    users = np.array([0, 5, 17])
    model = make_victim(
        "random-walk", alpha=alpha, dtype="float64", tol=1e-13, max_iter=2000, device="cpu"
    )
    scores = model.fit(tiny_explicit).score_replicas(users)[0].numpy()
    expected = dense_stationary(tiny_explicit, users, alpha)
    np.testing.assert_allclose(scores, expected[tiny_explicit.n_users :].T, atol=1e-10)
    np.testing.assert_allclose(expected.sum(0), 1.0)  # the dense reference is a distribution


def test_a_sweep_contracts_the_error_by_the_square_of_the_decay(tiny_explicit):
    """Block Gauss-Seidel: the item half's L1 error shrinks by (1 − α)² per sweep (exactly the
    bound, T being column-stochastic), where the power iteration (tol = 0) only reaches (1 − α)
    per iteration of the same cost."""
    alpha, users = 0.3, np.array([0, 5, 17])
    walk = BipartiteWalk.from_interactions(tiny_explicit, torch.float64, torch.device("cpu"))
    exact = dense_stationary(tiny_explicit, users, alpha)[tiny_explicit.n_users :]
    source = restart_vectors(walk.n_nodes, users, alpha, walk.user_degree)

    def item_errors(tol):
        solves = [solve_fixed_point(walk.forward, source, 1 - alpha, tol, k) for k in range(1, 9)]
        return np.array([np.abs(x[walk.n_users :].numpy() - exact).sum(0).max() for x, _ in solves])

    sweeps, power = item_errors(1e-300), item_errors(0.0)
    assert np.all(sweeps[1:] <= (1 - alpha) ** 2 * sweeps[:-1] * (1 + 1e-9))
    assert sweeps[-1] < 0.1 * power[-1]  # after 8 of each: about 0.7⁸ = 0.06 of it
    assert np.any(power[1:] > (1 - alpha) ** 2 * power[:-1])


def test_ratings_weight_the_transitions(tiny_explicit):
    """Explicit ratings change the walk; the binarized graph walks uniformly."""
    explicit = make_victim("random-walk", device="cpu").fit(tiny_explicit).score(np.arange(5))
    implicit = make_victim("random-walk", device="cpu").fit(binarize(tiny_explicit))
    assert not np.allclose(explicit, implicit.score(np.arange(5)), atol=1e-6)


def test_batches_and_replicas_agree(tiny_explicit):
    users = np.arange(tiny_explicit.n_users)
    one = make_victim("random-walk", batch_size=1024, device="cpu").fit(tiny_explicit)
    small = make_victim("random-walk", batch_size=7, n_replicas=3, device="cpu")
    scores = small.fit(tiny_explicit).score_replicas(users)
    assert scores.shape == (3, tiny_explicit.n_users, tiny_explicit.n_items)
    torch.testing.assert_close(scores[0], one.score_replicas(users)[0])
    assert torch.equal(scores[0], scores[2])  # deterministic: identical replicas


def test_recommendations_exclude_rated_items(tiny_explicit):
    model = make_victim("random-walk", device="cpu").fit(tiny_explicit)
    top = model.recommend(np.arange(10), k=5)
    for user, items in enumerate(top):
        assert not np.isin(items, tiny_explicit.matrix[user].indices).any()


@pytest.mark.parametrize("params", [{"alpha": 0.0}, {"alpha": 1.0}, {"max_iter": 0}])
def test_bad_parameters_are_config_errors(tiny_explicit, params):
    with pytest.raises(ConfigError, match="random-walk"):
        make_victim("random-walk", **params).fit(tiny_explicit)
