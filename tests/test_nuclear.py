"""Nuclear-norm matrix completion by soft-impute (Li et al. 2016 Eq. 3)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpoison.data import Interactions, planted
from recpoison.errors import ConfigError
from recpoison.victims import make_victim
from recpoison.victims.mf import Entries
from recpoison.victims.nuclear import NuclearNormMF, low_rank_values, top_singular


@pytest.fixture(scope="module")
def low_rank() -> tuple[Interactions, np.ndarray, np.ndarray]:
    """A rank-2 40 x 30 matrix on a 1-5 scale, 60 % of its entries observed."""
    rng = np.random.default_rng(0)
    truth = 3.0 + rng.normal(size=(40, 2)) @ rng.normal(size=(2, 30)) * 0.6
    observed = rng.random(truth.shape) < 0.6
    rows, cols = np.nonzero(observed)
    data = Interactions(
        sp.csr_matrix((truth[rows, cols], (rows, cols)), shape=truth.shape),
        rating_scale=(-10.0, 16.0),
    )  # midpoint 3: ``center="scale"`` removes it
    return data, truth, observed


def test_recovers_a_low_rank_matrix_from_partial_entries(low_rank):
    data, truth, observed = low_rank
    model = NuclearNormMF(
        lam=0.2, max_rank=10, iterations=150, tol=1e-10, dtype="float64", random_state=0
    ).fit(data)
    prediction = model.score(np.arange(40))
    error = np.sqrt(np.mean((prediction - truth)[~observed] ** 2))
    assert error < 0.05 * truth[~observed].std()
    assert model.rank_[0] == 2


def test_objective_decreases_and_matches_eq3(low_rank):
    data, _, _ = low_rank
    model = NuclearNormMF(
        lam=1.0, max_rank=10, iterations=40, tol=0.0, dtype="float64", random_state=0
    ).fit(data)
    history = model.objective_history_[:, 0]
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1]))
    rows, cols = np.nonzero(data.matrix.toarray())
    x = model.score(np.arange(40)) - model.offset_[0]
    residual = data.matrix.toarray()[rows, cols] - model.offset_[0] - x[rows, cols]
    expected = (residual**2).sum() + 2.0 * np.linalg.svd(x, compute_uv=False).sum()
    assert history[-1] == pytest.approx(expected, rel=1e-8)


def test_sparse_plus_low_rank_svd_is_exact_when_wide_enough():
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(rng.random((12, 9)) < 0.5)
    entries = Entries(
        torch.as_tensor(rows),
        torch.as_tensor(cols),
        torch.as_tensor(rng.normal(size=len(rows))),
        (12, 9),
    )
    factors = (
        torch.as_tensor(np.linalg.qr(rng.normal(size=(12, 2)))[0]),
        torch.tensor([3.0, 1.0], dtype=torch.float64),
        torch.as_tensor(np.linalg.qr(rng.normal(size=(9, 2)))[0]),
    )
    residual = entries.values - low_rank_values(factors, entries.rows, entries.cols)
    u, s, v = top_singular(
        entries,
        residual,
        factors,
        width=9,
        power_iterations=1,
        gen=torch.Generator().manual_seed(0),
    )
    low = (factors[0] * factors[1]) @ factors[2].T
    z = low.numpy().copy()
    z[rows, cols] = entries.values.numpy()  # X + R_Ω(M − X) = M on Ω, X elsewhere
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(z, compute_uv=False), atol=1e-10)
    np.testing.assert_allclose((u * s) @ v.T, z, atol=1e-10)


def test_rank_cap_and_shared_replicas():
    data = planted(n_users=60, n_items=40, ratings_per_user=10, random_state=0)
    model = make_victim(
        "nuclear-norm", lam=0.5, max_rank=3, iterations=20, n_replicas=2, random_state=0
    ).fit(data)
    assert model.rank_.tolist() == [3, 3]
    assert model.user_vectors_.shape == (2, 60, 3)
    assert model.score_replicas(np.arange(4)).shape == (2, 4, 40)
    np.testing.assert_array_equal(model.singular_values_[0], model.singular_values_[1])
    top = model.recommend(np.arange(60), k=5)
    assert not (data.matrix.toarray() > 0)[np.arange(60)[:, None], top].any()


@pytest.mark.parametrize("params", [{"lam": 0.0}, {"max_rank": 0}, {"center": "x"}])
def test_bad_parameters_are_config_errors(params, tiny_explicit):
    with pytest.raises(ConfigError):
        NuclearNormMF(iterations=1, **params).fit(tiny_explicit)
