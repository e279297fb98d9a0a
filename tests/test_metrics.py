"""Hand-computed examples for HR_t@K and leave-one-out HR/NDCG, including ties and fake users."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpoison.data import Interactions
from recpoison.errors import ConfigError
from recpoison.metrics import leave_one_out_hr_ndcg, recall_at_k, target_hit_ratio
from recpoison.victims.base import Recommender


class FixedScores(Recommender):
    """A 'model' whose scores are given: ``scores[replica, user, item]``."""

    capabilities = frozenset({"implicit", "explicit"})

    def __init__(self, scores: np.ndarray, **kwargs):
        super().__init__(n_replicas=scores.shape[0], device="cpu", **kwargs)
        self.scores = scores

    def fit(self, train):
        self._check_fit_input(train)
        return self

    def score_replicas(self, users):
        return torch.as_tensor(self.scores[:, users], dtype=torch.float32)


def _data(rows, fake=None):
    matrix = sp.csr_matrix(np.array(rows, dtype=np.float32))
    return Interactions(matrix, None, is_fake=fake)


def test_target_hit_ratio_hand_computed_with_ties_and_fake_user():
    # user 2 is fake and would always "hit": it must never count
    data = _data([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], fake=np.array([False, False, True]))
    scores = np.array([[[0, 3, 2, 1], [5, 0, 1, 1], [0, 0, 9, 9]]], dtype=np.float32)
    model = FixedScores(scores).fit(data)
    result = target_hit_ratio(model, data, [1, 2, 3], ks=(1, 2))
    # eligible: item1 -> user0 only (user1 rated it); items 2, 3 -> users 0 and 1
    np.testing.assert_array_equal(result.eligible, [1, 2, 2])
    # user1 ranks items {0: 5, 2: 1, 3: 1}: items 2 and 3 tie at expected rank 1.5
    np.testing.assert_array_equal(result.hits[0], [[1, 1], [0, 2], [0, 1]])
    assert result.mean(2) == pytest.approx((1 + 1 + 0.5) / 3)


def test_seen_items_never_block_the_target():
    # user 0 rated item 0, which has the top score; it must be excluded from the ranking
    data = _data([[1, 0, 0], [0, 0, 1]])
    scores = np.array([[[10, 1, 2], [0, 1, 5]]], dtype=np.float32)
    model = FixedScores(scores).fit(data)
    result = target_hit_ratio(model, data, [2], ks=(1,))
    assert result.eligible.tolist() == [1]  # user 1 rated the target
    assert result.hits[0, 0, 0] == 1  # item 2 is user 0's best unrated item


def test_target_with_no_eligible_user_is_nan_not_zero():
    data = _data([[1, 0], [1, 0]])
    model = FixedScores(np.zeros((2, 2, 2), dtype=np.float32)).fit(data)
    result = target_hit_ratio(model, data, [0, 1], ks=(1,))
    assert np.isnan(result.ratio()[:, 0, 0]).all()
    # constant scores: one candidate left (item 1), it is each user's top-1
    assert result.ratio()[:, 1, 0].tolist() == [1.0, 1.0]


def test_hit_ratio_per_replica():
    data = _data([[0, 0, 0], [0, 0, 0]])
    scores = np.array([[[3, 2, 1], [3, 2, 1]], [[1, 2, 3], [1, 2, 3]]], dtype=np.float32)
    result = target_hit_ratio(FixedScores(scores).fit(data), data, [2], ks=(1,))
    np.testing.assert_array_equal(result.hits[:, 0, 0], [0, 2])


def test_leave_one_out_ranks_with_expected_tie_rank():
    data = _data([[1, 0, 0, 0], [0, 1, 0, 0]])
    # user 0: test item 2 (score 2) beats both possible negatives, items 1 (1) and 3 (0)
    # user 1: test item 3 (score 1) ties with negative item 2 (1) -> expected rank 0.5
    scores = np.array([[[9, 1, 2, 0], [0, 9, 1, 1]]], dtype=np.float32)
    model = FixedScores(scores).fit(data)
    out = leave_one_out_hr_ndcg(model, data, np.array([2, 3]), k=1, n_negatives=2, random_state=0)
    assert out["users"] == 2
    assert out["hr"][0] == pytest.approx(1.0)
    assert out["ndcg"][0] == pytest.approx((1.0 + 1.0 / np.log2(2.5)) / 2)


def test_leave_one_out_constant_model_is_not_perfect():
    data = _data([[1] + [0] * 120])
    model = FixedScores(np.zeros((1, 1, 121), dtype=np.float32)).fit(data)
    out = leave_one_out_hr_ndcg(model, data, np.array([5]), k=10, n_negatives=99, random_state=1)
    assert out["hr"][0] == 0.0  # 99 ties: expected rank 49.5


def test_negatives_exclude_seen_and_held_out_items():
    data = _data([[1, 1, 0, 0, 0, 0]])
    scores = np.zeros((1, 1, 6), dtype=np.float32)
    scores[0, 0, :2] = 100.0  # seen items would beat the test item if they were sampled
    scores[0, 0, 2] = 1.0
    model = FixedScores(scores).fit(data)
    out = leave_one_out_hr_ndcg(model, data, np.array([2]), k=1, n_negatives=3, random_state=0)
    assert out["hr"][0] == 1.0


def test_too_few_unrated_items_for_negatives_is_an_error():
    data = _data([[1, 1, 0]])
    model = FixedScores(np.zeros((1, 1, 3), dtype=np.float32)).fit(data)
    with pytest.raises(ConfigError, match="unrated items"):
        leave_one_out_hr_ndcg(model, data, np.array([2]), k=1, n_negatives=2)


def test_recall_at_k_full_ranking():
    train = _data([[1, 0, 0, 0], [0, 0, 0, 0]])
    test = _data([[0, 1, 1, 0], [0, 0, 0, 1]])
    scores = np.array([[[9, 3, 1, 2], [4, 3, 2, 1]]], dtype=np.float32)
    model = FixedScores(scores).fit(train)
    # user 0 top-2 over {1, 2, 3}: items 1, 3 -> 1 of 2 test items; user 1 top-2: 0, 1 -> 0 of 1
    assert recall_at_k(model, train, test, k=2)[0] == pytest.approx(0.25)
