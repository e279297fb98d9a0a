"""The Interactions contract: immutability, id maps, fake users."""

import numpy as np
import pytest
import scipy.sparse as sp

from recpoison.data import FakeProfiles, Interactions, planted
from recpoison.errors import DataError


def test_from_triples_remaps_ids_and_keeps_latest_duplicate():
    data = Interactions.from_triples(
        users=np.array([30, 10, 30, 10]),
        items=np.array(["b", "a", "b", "c"]),
        ratings=np.array([1.0, 2.0, 5.0, 3.0]),
        timestamps=np.array([1, 2, 3, 4]),
        rating_scale=(1, 5),
        name="toy",
    )
    assert (data.n_users, data.n_items, data.n_ratings) == (2, 3, 3)
    assert data.user_ids.tolist() == [10, 30]
    assert data.item_ids.tolist() == ["a", "b", "c"]
    assert data.matrix[1, 1] == 5.0  # the later duplicate wins
    assert data.timestamps.tolist() == [2, 4, 3]


def test_zero_explicit_rating_is_rejected():
    with pytest.raises(DataError, match="rating of 0"):
        Interactions.from_triples(
            np.array([1]), np.array([1]), np.array([0.0]), rating_scale=(0, 5)
        )


def test_with_fake_users_returns_new_object_and_marks_fakes():
    data = planted(n_users=20, n_items=30, ratings_per_user=5, random_state=0)
    fake = FakeProfiles(sp.csr_matrix(np.eye(2, 30, dtype=np.float32) * 5), np.array([0]))
    poisoned = data.with_fake_users(fake)
    assert data.n_users == 20 and data.n_fake == 0  # original untouched
    assert poisoned.n_users == 22 and poisoned.n_fake == 2
    assert poisoned.user_ids[-2:].tolist() == [20, 21]
    assert len(poisoned.timestamps) == poisoned.n_ratings
    assert poisoned.real_users().n_ratings == data.n_ratings
    np.testing.assert_array_equal(poisoned.real_users().timestamps, data.timestamps)


def test_fake_profiles_with_wrong_item_count_are_rejected():
    data = planted(n_users=10, n_items=30, ratings_per_user=5, random_state=0)
    with pytest.raises(DataError, match="items"):
        data.with_fake_users(FakeProfiles(sp.csr_matrix((1, 29), dtype=np.float32), np.array([0])))


def test_string_user_ids_get_fresh_fake_ids():
    data = Interactions.from_triples(np.array(["u1", "fake-0"]), np.array([1, 2]))
    poisoned = data.with_fake_users(
        FakeProfiles(sp.csr_matrix(np.ones((1, 2), np.float32)), np.array([0]))
    )
    assert poisoned.user_ids[-1] == "fake-1"


def test_interactions_is_frozen():
    data = planted(n_users=10, n_items=20, ratings_per_user=3, random_state=0)
    with pytest.raises(AttributeError):
        data.rating_scale = None  # type: ignore[misc]
