"""ALS matrix factorization victim (Li et al. 2016 §2, Fang et al. 2020 §3.1)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpoison.data import Interactions, planted
from recpoison.errors import ConfigError
from recpoison.victims import make_victim
from recpoison.victims.mf import (
    ALSMF,
    DUAL_FROM_RANK,
    Entries,
    als,
    initial_items,
    solve_rows,
)


@pytest.fixture(scope="module")
def small() -> Interactions:
    return planted(n_users=80, n_items=50, n_factors=3, ratings_per_user=10, random_state=3)


def test_row_update_matches_a_dense_normal_equation_solve(small):
    entries = Entries.from_interactions(small, 3.0, torch.float64, torch.device("cpu"))
    items = initial_items(small.n_items, 4, seed=0, dtype=torch.float64, device=torch.device("cpu"))
    lam = 2.5
    users = solve_rows(entries, items[None], lam)[0].numpy()
    dense = small.matrix.toarray()
    v = items.numpy()
    for u in (0, 17, 79):
        rated = np.flatnonzero(dense[u])
        gram = lam * np.eye(4) + v[rated].T @ v[rated]
        expected = np.linalg.solve(gram, v[rated].T @ (dense[u, rated] - 3.0))
        np.testing.assert_allclose(users[u], expected, rtol=1e-10, atol=1e-12)


def test_rows_shorter_than_the_rank_are_solved_exactly_in_their_dual_form():
    """Rows of every length from 0 to beyond k (the dual n x n solves below k, the k x k Gram
    solves from k on) equal the dense normal-equation solution, for each of two replicas."""
    rng = np.random.default_rng(0)
    k, lam = DUAL_FROM_RANK + 2, 0.7
    n_rows, n_cols = k + 4, 3 * k
    rows, cols = [], []
    for r in range(n_rows):  # row r has r entries: 0 (no entry) .. k + 3
        rows += [r] * r
        cols += list(rng.choice(n_cols, size=r, replace=False))
    values = rng.normal(size=len(rows))
    entries = Entries(
        torch.as_tensor(rows), torch.as_tensor(cols), torch.as_tensor(values), (n_rows, n_cols)
    )
    other = torch.as_tensor(rng.normal(size=(2, n_cols, k)))
    split = entries.split_rows(k)
    assert split.long_rows.tolist() == list(range(k, n_rows))
    assert [len(r) for r, _, _ in split.short] == [1] * (k - 1)
    assert entries.split_rows(DUAL_FROM_RANK - 1).all_long
    solved = solve_rows(entries, other, lam).numpy()
    dense = sp.csr_matrix((values, (rows, cols)), shape=(n_rows, n_cols)).toarray()
    for replica in range(2):
        y = other[replica].numpy()
        for r in range(n_rows):
            observed = np.flatnonzero(dense[r])
            gram = lam * np.eye(k) + y[observed].T @ y[observed]
            expected = np.linalg.solve(gram, y[observed].T @ dense[r, observed])
            np.testing.assert_allclose(solved[replica, r], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("table_in_cache", "budget"),
    [(1 << 40, 1 << 25), (0, 1 << 25), (0, 100)],
    ids=["sparse-product", "bucketed", "bucketed-in-chunks"],
)
def test_row_outer_products_equal_a_loop_over_rows_on_either_path(
    monkeypatch, table_in_cache, budget
):
    """Both ways of summing per-row outer products (the sparse product with the table of outer
    products, and the bucketed matmuls a large table switches to, also a few rows at a time)
    give each row's ``Σ_j left_j right_jᵀ``: rows of 0 .. 40 entries, unsorted, two replicas."""
    monkeypatch.setattr("recpoison.victims.mf._OUTER_TABLE_IN_CACHE", table_in_cache)
    monkeypatch.setattr("recpoison.victims.mf._GRAM_BUDGET", budget)
    rng = np.random.default_rng(1)
    n_rows, n_cols, k = 41, 60, 5
    rows = np.concatenate([np.full(r, r) for r in range(n_rows)])
    cols = np.concatenate([rng.choice(n_cols, size=r, replace=False) for r in range(n_rows)])
    shuffle = rng.permutation(len(rows))
    entries = Entries(
        torch.as_tensor(rows[shuffle]),
        torch.as_tensor(cols[shuffle]),
        torch.ones(len(rows), dtype=torch.float64),
        (n_rows, n_cols),
    )
    left = torch.as_tensor(rng.normal(size=(n_cols, 2, k)))
    right = torch.as_tensor(rng.normal(size=(n_cols, 2, k)))
    outer = entries.row_outer(left, right).numpy()
    assert outer.shape == (n_rows, 2, k, k)
    for r in range(n_rows):
        observed = cols[rows == r]
        for replica in range(2):
            expected = left[observed, replica].numpy().T @ right[observed, replica].numpy()
            np.testing.assert_allclose(outer[r, replica], expected, rtol=1e-12, atol=1e-12)


def test_objective_decreases_monotonically_and_matches_its_definition(small):
    model = ALSMF(
        rank=5, lambda_u=1.0, lambda_v=2.0, iterations=25, tol=0.0, dtype="float64", random_state=0
    ).fit(small)
    history = model.objective_history_[:, 0]
    assert len(history) == 25
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
    assert history[-1] < 0.9 * history[0]
    users, items, ratings = small.triples()
    u, v = model.user_factors_[0], model.item_factors_[0]
    residual = ratings - model.offset_[0] - (u[users] * v[items]).sum(1)
    expected = (residual**2).sum() + 1.0 * (u**2).sum() + 2.0 * (v**2).sum()
    assert history[-1] == pytest.approx(expected, rel=1e-10)


def test_batched_replicas_equal_single_fits_and_differ_by_seed(small):
    batched = ALSMF(
        rank=4, iterations=10, tol=0.0, dtype="float64", n_replicas=3, random_state=7
    ).fit(small)
    single = ALSMF(rank=4, iterations=10, tol=0.0, dtype="float64", random_state=7).fit(small)
    assert batched.user_factors_.shape == (3, small.n_users, 4)
    assert batched.item_factors_.shape == (3, small.n_items, 4)
    np.testing.assert_allclose(batched.user_factors_[0], single.user_factors_[0], atol=1e-10)
    assert not np.allclose(batched.user_factors_[0], batched.user_factors_[1])
    again = ALSMF(
        rank=4, iterations=10, tol=0.0, dtype="float64", n_replicas=3, random_state=7
    ).fit(small)
    np.testing.assert_array_equal(again.item_factors_, batched.item_factors_)


def test_per_replica_datasets(small):
    other = planted(n_users=80, n_items=50, n_factors=3, ratings_per_user=10, random_state=4)
    model = ALSMF(rank=4, iterations=5, center="mean", n_replicas=2, random_state=0)
    model.fit([small, other])
    assert model.offset_ == pytest.approx([small.matrix.data.mean(), other.matrix.data.mean()])
    assert model.score_replicas(np.arange(5)).shape == (2, 5, 50)
    with pytest.raises(ConfigError):
        ALSMF(n_replicas=3).fit([small, other])


def test_scores_are_offset_plus_factor_products_and_recommendations_skip_seen(small):
    model = make_victim("als-mf", rank=4, iterations=5, random_state=0).fit(small)
    assert model.offset_[0] == 3.0  # "scale": the middle of the 1-5 scale, Li et al. §5
    scores = model.score(np.array([0, 1]))
    expected = 3.0 + model.user_factors_[0, :2] @ model.item_factors_[0].T
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    top = model.recommend(np.arange(small.n_users), k=10)
    seen = small.matrix.toarray() > 0
    assert not seen[np.arange(small.n_users)[:, None], top].any()


def test_als_fits_planted_data_better_than_the_mean():
    data = planted(n_users=200, n_items=100, ratings_per_user=20, random_state=0)
    users, items, ratings = data.triples()
    test = np.random.default_rng(0).random(len(ratings)) < 0.2
    train = data.replace(
        matrix=sp.csr_matrix(
            (ratings[~test], (users[~test], items[~test])), shape=data.matrix.shape
        ),
        timestamps=None,
    )
    model = ALSMF(rank=4, lambda_u=2.0, lambda_v=2.0, random_state=0).fit(train)
    pred = model.score(users[test])[np.arange(test.sum()), items[test]]
    model_rmse = np.sqrt(np.mean((pred - ratings[test]) ** 2))
    mean_rmse = np.sqrt(np.mean((ratings[~test].mean() - ratings[test]) ** 2))
    assert model_rmse < 0.8 * mean_rmse


def test_als_function_stops_at_tolerance(small):
    entries = Entries.from_interactions(small, 3.0, torch.float64, torch.device("cpu"))
    items = initial_items(small.n_items, 3, seed=1, dtype=torch.float64, device=torch.device("cpu"))
    _, _, history = als(entries, items[None], 1.0, 1.0, iterations=500, tol=1e-6)
    assert 2 < len(history) < 500


@pytest.mark.parametrize(
    "params", [{"lambda_u": 0.0}, {"rank": 0}, {"center": "median"}, {"dtype": "float16"}]
)
def test_bad_parameters_are_config_errors(small, params):
    with pytest.raises(ConfigError):
        ALSMF(iterations=1, **params).fit(small)


def test_implicit_data_is_refused(tiny_implicit):
    with pytest.raises(ConfigError, match="explicit"):
        ALSMF(iterations=1).fit(tiny_implicit)


def test_per_replica_seeds_pair_the_blocks_of_a_batched_fit():
    """Seeds repeated per dataset (as the runner passes them) give every dataset's replicas the
    clean model's initialisations: on equal data the blocks are equal, replica for replica."""
    data = planted(n_users=40, n_items=30, n_factors=3, ratings_per_user=8, random_state=0)
    seeds = [11, 12]
    clean = ALSMF(rank=3, iterations=5, n_replicas=2, random_state=seeds).fit(data)
    batched = ALSMF(rank=3, iterations=5, n_replicas=4, random_state=seeds * 2)
    batched.fit([data] * 4)
    scores = batched.score_replicas(np.arange(40))
    torch.testing.assert_close(scores[2:], scores[:2])
    torch.testing.assert_close(scores[:2], clean.score_replicas(np.arange(40)))
    assert not torch.allclose(scores[0], scores[1])
