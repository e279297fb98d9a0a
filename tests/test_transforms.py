"""Transforms: binarize, k-core, splits, subsampling and item statistics."""

import numpy as np
import pytest
import scipy.sparse as sp

from recpoison.data import (
    FakeProfiles,
    Interactions,
    binarize,
    default_unpopular_threshold,
    holdout_split,
    item_popularity,
    item_rating_stats,
    k_core,
    leave_one_out,
    subsample_ratings,
    subsample_users,
    unpopular_items,
)
from recpoison.errors import ConfigError


def with_fakes(data: Interactions, n_fake: int = 5) -> Interactions:
    """``data`` plus ``n_fake`` fake users who all rate items 0..3 with the top rating."""
    top = 1.0 if data.is_implicit else data.rating_scale[1]
    matrix = sp.lil_matrix((n_fake, data.n_items), dtype=np.float32)
    matrix[:, :4] = top
    return data.with_fake_users(FakeProfiles(matrix.tocsr(), targets=np.array([0])))


def ratings_of(data: Interactions) -> dict:
    """{(original user, original item): (rating, timestamp)} for comparing transformed data."""
    frame = data.to_frame()
    stamps = frame["timestamp"] if "timestamp" in frame else [None] * len(frame)
    return {
        (u, i): (r, t)
        for u, i, r, t in zip(frame["user"], frame["item"], frame["rating"], stamps, strict=True)
    }


def test_binarize(tiny_explicit):
    data = binarize(tiny_explicit)
    assert data.is_implicit and data.n_ratings == tiny_explicit.n_ratings
    assert set(data.matrix.data.tolist()) == {1.0}
    assert tiny_explicit.rating_scale == (1.0, 5.0) and tiny_explicit.matrix.data.max() > 1


@pytest.mark.parametrize("k", [1, 3, 10])
def test_k_core_postcondition_on_random_data(k):
    rng = np.random.default_rng(k)
    chance = rng.uniform(0.05, 0.6, (100, 1)) * rng.uniform(0.1, 1, (1, 80))  # skewed users/items
    dense = (rng.random((100, 80)) < chance).astype(np.float32)
    data = Interactions(sp.csr_matrix(dense), None, np.arange(int(dense.sum())))
    core = k_core(data, k)
    assert core.n_ratings > 0
    assert core.matrix.getnnz(axis=1).min() >= k
    assert core.matrix.getnnz(axis=0).min() >= k
    kept = ratings_of(core)
    assert kept.items() <= ratings_of(data).items()  # ratings, timestamps and original ids kept
    # maximal: every rating between two kept ids survives
    users, items = set(core.user_ids.tolist()), set(core.item_ids.tolist())
    assert {key for key in ratings_of(data) if key[0] in users and key[1] in items} == set(kept)


def test_k_core_keeps_fake_flags_and_rejects_bad_k(tiny_explicit):
    data = with_fakes(tiny_explicit)
    core = k_core(data, 2)
    assert core.n_fake == 5
    assert np.array_equal(core.user_ids[core.is_fake], data.user_ids[data.is_fake])
    for bad in (0, 2.5):
        with pytest.raises(ConfigError, match="positive integer"):
            k_core(data, bad)


def test_leave_one_out_holds_out_latest(tiny_explicit):
    train, test_items = leave_one_out(tiny_explicit, random_state=0)
    assert train.matrix.shape == tiny_explicit.matrix.shape
    assert train.n_ratings == tiny_explicit.n_ratings - tiny_explicit.n_users
    assert test_items.dtype == np.int64 and (test_items >= 0).all()
    for user in range(tiny_explicit.n_users):
        row = slice(tiny_explicit.matrix.indptr[user], tiny_explicit.matrix.indptr[user + 1])
        latest = tiny_explicit.matrix.indices[row][np.argmax(tiny_explicit.timestamps[row])]
        assert test_items[user] == latest
        assert train.matrix[user, test_items[user]] == 0  # the test item is not in train
    assert ratings_of(train).items() <= ratings_of(tiny_explicit).items()


def test_leave_one_out_ties_are_seeded_and_fakes_never_held_out(tiny_implicit):
    data = with_fakes(tiny_implicit.replace(timestamps=None))
    data = data.select_users(np.r_[True, data.matrix.getnnz(axis=1)[1:] > 0])
    _, first = leave_one_out(data, random_state=7)
    _, again = leave_one_out(data, random_state=7)
    _, other = leave_one_out(data, random_state=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first[data.is_fake] == -1).all()
    single = Interactions(sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0]], dtype=np.float32)))
    _, held = leave_one_out(single, random_state=0)
    assert held[0] == -1 and held[1] in (0, 1)


def test_holdout_split(tiny_explicit):
    data = with_fakes(tiny_explicit)
    train, test = holdout_split(data, test_fraction=0.2, random_state=1)
    assert train.matrix.shape == test.matrix.shape == data.matrix.shape
    assert test.n_ratings == round(0.2 * tiny_explicit.n_ratings)
    assert train.n_ratings + test.n_ratings == data.n_ratings
    assert train.matrix.multiply(test.matrix).nnz == 0
    assert test.matrix[data.is_fake].nnz == 0  # fake ratings never go to test
    assert ratings_of(train).items() | ratings_of(test).items() == ratings_of(data).items()
    again, _ = holdout_split(data, test_fraction=0.2, random_state=1)
    assert (again.matrix != train.matrix).nnz == 0
    with pytest.raises(ConfigError, match="below 1"):
        holdout_split(data, test_fraction=1.0)


def test_subsampling(tiny_explicit):
    half = subsample_ratings(tiny_explicit, 0.5, random_state=0)
    assert half.matrix.shape == tiny_explicit.matrix.shape
    assert half.n_ratings == round(0.5 * tiny_explicit.n_ratings)
    assert ratings_of(half).items() <= ratings_of(tiny_explicit).items()
    users = subsample_users(tiny_explicit, 0.25, random_state=0)
    assert users.n_users == 15 and users.n_items == tiny_explicit.n_items
    assert ratings_of(users).items() <= ratings_of(tiny_explicit).items()
    assert users.n_ratings == 15 * 8  # whole rows kept
    same = subsample_users(tiny_explicit, 0.25, random_state=0)
    np.testing.assert_array_equal(users.user_ids, same.user_ids)
    assert subsample_ratings(tiny_explicit, 1.0).n_ratings == tiny_explicit.n_ratings
    for bad in (0, -0.1, 1.5, "half"):
        with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
            subsample_users(tiny_explicit, bad)
        with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
            subsample_ratings(tiny_explicit, bad)


def test_item_popularity_ignores_fake_users(tiny_explicit):
    data = with_fakes(tiny_explicit)
    popularity = item_popularity(data)
    np.testing.assert_array_equal(popularity, tiny_explicit.matrix.getnnz(axis=0))
    assert data.matrix.getnnz(axis=0)[0] == popularity[0] + 5


def test_item_rating_stats():
    matrix = sp.csr_matrix(np.array([[1, 5, 0, 0], [3, 0, 0, 0], [5, 0, 0, 0]], dtype=np.float32))
    data = Interactions(matrix, (1.0, 5.0))
    data = data.with_fake_users(FakeProfiles(sp.csr_matrix(np.full((2, 4), 5.0)), np.array([2])))
    mean, std = item_rating_stats(data)
    values = np.array([1, 5, 3, 5])  # real ratings only
    np.testing.assert_allclose(mean, [3.0, 5.0, values.mean(), values.mean()])
    np.testing.assert_allclose(std, [np.std([1, 3, 5]), values.std(), values.std(), values.std()])
    assert (std > 0).all()


def test_unpopular_items_and_default_threshold(tiny_explicit):
    popularity = item_popularity(tiny_explicit)
    threshold = default_unpopular_threshold(tiny_explicit)
    chosen = unpopular_items(tiny_explicit, threshold)
    rated = popularity[popularity > 0]
    assert len(chosen) >= 0.1 * len(rated)
    assert ((popularity[chosen] >= 1) & (popularity[chosen] < threshold)).all()
    assert set(chosen) == set(np.flatnonzero((popularity >= 1) & (popularity < threshold)))
    for name, paper in [("ml-100k", 6), ("ml-1m", 10), ("lastfm", 12)]:
        assert default_unpopular_threshold(tiny_explicit.replace(name=name)) == paper
    with pytest.raises(ConfigError, match=">= 2"):
        unpopular_items(tiny_explicit, 1)


def test_transforms_never_mutate(tiny_explicit):
    before = tiny_explicit.matrix.copy(), tiny_explicit.timestamps.copy()
    binarize(tiny_explicit)
    k_core(tiny_explicit, 3)
    leave_one_out(tiny_explicit, random_state=0)
    holdout_split(tiny_explicit, random_state=0)
    subsample_ratings(tiny_explicit, 0.5, random_state=0)
    assert (tiny_explicit.matrix != before[0]).nnz == 0
    np.testing.assert_array_equal(tiny_explicit.timestamps, before[1])
