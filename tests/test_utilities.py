"""Evaluation helpers: RMSE and Li et al. 2016's availability / integrity / hybrid utilities."""

import numpy as np
import pytest
import scipy.sparse as sp

from recpoison.data import FakeProfiles, Interactions, planted
from recpoison.errors import ConfigError
from recpoison.utilities import (
    availability_utility,
    evaluate_explicit,
    hybrid_utility,
    integrity_utility,
    pair_predictions,
    rmse,
    ttest_detectability,
    unseen_entries,
)
from recpoison.victims.mf import ALSMF


@pytest.fixture(scope="module")
def split() -> tuple[Interactions, Interactions]:
    data = planted(n_users=120, n_items=60, ratings_per_user=12, random_state=0)
    users, items, ratings = data.triples()
    test = np.random.default_rng(0).random(len(ratings)) < 0.2

    def part(mask: np.ndarray) -> Interactions:
        matrix = sp.csr_matrix((ratings[mask], (users[mask], items[mask])), shape=(120, 60))
        return Interactions(matrix, data.rating_scale)

    return part(~test), part(test)


@pytest.fixture(scope="module")
def poisoned(split) -> tuple[ALSMF, ALSMF]:
    """A clean model, and a 2-replica model on the data plus 10 fake users rating items 0-9."""
    train, _ = split
    clean = ALSMF(rank=4, iterations=15, dtype="float64", random_state=0).fit(train)
    fake = sp.csr_matrix(np.tile(np.r_[np.full(10, 5.0), np.zeros(50)], (10, 1)))
    data = train.with_fake_users(FakeProfiles(fake, np.arange(10)))
    model = ALSMF(rank=4, iterations=15, dtype="float64", n_replicas=2, random_state=1).fit(data)
    return clean, model


def _dense(model: ALSMF, users: np.ndarray) -> np.ndarray:
    return model.score_replicas(users).cpu().numpy()


def test_rmse_per_replica_matches_a_direct_computation(split):
    train, test = split
    model = ALSMF(rank=4, iterations=15, n_replicas=2, random_state=0).fit(train)
    users, items, ratings = test.triples()
    pred = _dense(model, np.arange(120))[:, users, items]
    expected = np.sqrt(((pred - ratings) ** 2).mean(axis=1))
    np.testing.assert_allclose(rmse(model, test), expected, rtol=1e-5)
    report = evaluate_explicit(model, test)
    assert report["rmse"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert report["rmse_mean"] == pytest.approx(expected.mean(), rel=1e-5)
    assert report["n_test"] == test.n_ratings


def test_rmse_refuses_mismatched_or_implicit_test_data(split, tiny_implicit):
    train, _ = split
    model = ALSMF(rank=2, iterations=2).fit(train)
    with pytest.raises(ConfigError):
        rmse(model, tiny_implicit)
    with pytest.raises(ConfigError):
        rmse(model, planted(n_users=10, n_items=30, ratings_per_user=3, random_state=0))


def test_availability_utility_is_rmse_of_the_shift_on_unseen_entries(poisoned):
    clean, model = poisoned
    assert availability_utility(clean, clean) == pytest.approx([0.0])
    before = _dense(clean, np.arange(120))[0]
    after = _dense(model, np.arange(120))
    unseen = clean.train_.matrix.toarray() == 0
    expected = np.sqrt((((after - before) ** 2) * unseen).sum(axis=(1, 2)) / unseen.sum())
    shift = availability_utility(clean, model)
    assert shift.shape == (2,)
    np.testing.assert_allclose(shift, expected, rtol=1e-10)
    assert np.all(shift > 0)


def test_pair_predictions_pick_entries_of_the_score_matrix(poisoned):
    _, model = poisoned
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 120, 700), rng.integers(0, 60, 700)  # unsorted, repeated
    expected = _dense(model, np.arange(120))[:, users, items]
    np.testing.assert_allclose(pair_predictions(model, users, items), expected, rtol=1e-12)


def test_unseen_entries_are_distinct_unrated_normal_entries(poisoned):
    _, model = poisoned
    data = model.train_  # 120 normal users + 10 fake users
    users, items = unseen_entries(data, 500, np.random.default_rng(0))
    assert len(users) == 500 and users.max() < 120  # never a fake user
    assert np.all(data.matrix[users, items] == 0)
    assert len(set(zip(users.tolist(), items.tolist(), strict=True))) == 500
    # the sample estimates the RMS shift between two models over all unrated entries
    other = ALSMF(rank=4, iterations=15, dtype="float64", random_state=0).fit(data)
    gap = pair_predictions(model, users, items) - pair_predictions(other, users, items)
    sampled = np.sqrt((gap**2).mean(axis=1))
    assert sampled == pytest.approx(availability_utility(other, model), rel=0.25)


def test_integrity_and_hybrid_utilities(poisoned):
    clean, model = poisoned
    before = _dense(clean, np.arange(120))[0]
    after = _dense(model, np.arange(120))
    change = (after - before).mean(axis=1)  # [R, items], over normal users
    promoted = integrity_utility(clean, model, [0, 1, 2])
    np.testing.assert_allclose(promoted, change[:, :3].mean(axis=1), rtol=1e-10)
    assert np.all(promoted > 0)  # the fake users rated 0-9 at 5
    weighted = integrity_utility(clean, model, [0, 20], weights=[2.0, -1.0])
    np.testing.assert_allclose(weighted, 2 * change[:, 0] - change[:, 20], rtol=1e-10)
    hybrid = hybrid_utility(clean, model, [0, 20], mu=(1.0, -1.0), weights=[2.0, -1.0])
    np.testing.assert_allclose(hybrid, availability_utility(clean, model) - weighted, rtol=1e-10)
    with pytest.raises(ConfigError):
        integrity_utility(clean, model, [0, 1], weights=[1.0])


def test_ttest_detectability_flags_uniformly_random_fake_users(split):
    train, _ = split
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(20), 12)
    cols = np.concatenate([rng.choice(60, 12, replace=False) for _ in range(20)])
    fake = sp.csr_matrix(
        (rng.integers(1, 6, len(rows)).astype(float), (rows, cols)), shape=(20, 60)
    )
    result = ttest_detectability(train.with_fake_users(FakeProfiles(fake, np.array([0]))))
    assert result["p_value"] < 0.05 and result["statistic"] < 0
