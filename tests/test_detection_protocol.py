"""The leak-free detection protocol: training set, evaluation, removing / emptying flagged users."""

import math

import numpy as np
import pytest

from recpoison.attacks import make_attack
from recpoison.data import planted
from recpoison.detectors.protocol import (
    MAX_GROUPS,
    DetectionResult,
    build_training_set,
    detection_rates,
    empty_flagged,
    evaluate_detector,
    remove_flagged,
)
from recpoison.errors import ConfigError

EVAL_TARGETS = np.array([3, 11])
N_FAKE = 12


@pytest.fixture(scope="module")
def setting():
    clean = planted(n_users=200, n_items=120, ratings_per_user=15, random_state=3)
    attack = make_attack("random", n_fillers=15)
    profiles = attack.generate(clean, EVAL_TARGETS, N_FAKE, random_state=0)
    return clean, clean.with_fake_users(profiles), attack


def test_training_set_is_leak_free(setting):
    clean, poisoned, attack = setting
    # same int seed as the evaluated attack: the protocol's stream is tagged, so it differs
    training = build_training_set(clean, attack, EVAL_TARGETS, n_train_fake=60, random_state=0)
    # no evaluated target among the training targets, nor rated by any training fake user
    assert not np.isin(training.targets, EVAL_TARGETS).any()
    assert len(training.targets) == len(EVAL_TARGETS)
    assert not np.isin(training.fake.indices, EVAL_TARGETS).any()
    # no evaluated fake user: training fakes are fresh rows, none equal to an evaluated one
    evaluated = poisoned.matrix[poisoned.is_fake].toarray()
    fresh = training.fake.toarray()
    assert not (fresh[:, None, :] == evaluated[None, :, :]).all(axis=2).any()
    # normal training users are real users of the clean data, sampled without repetition
    assert len(np.unique(training.normal_users)) == 60
    assert training.normal_users.max() < clean.n_users
    assert not np.isin(training.normal_ids, poisoned.user_ids[poisoned.is_fake]).any()
    # the clean data given to the builder holds no fake user: passing poisoned data is refused
    with pytest.raises(ConfigError, match="fake users"):
        build_training_set(poisoned, attack, EVAL_TARGETS, n_train_fake=60, random_state=0)


def test_training_set_is_reproducible(setting):
    clean, _, attack = setting
    a = build_training_set(clean, attack, EVAL_TARGETS, n_train_fake=40, random_state=5)
    b = build_training_set(clean, attack, EVAL_TARGETS, n_train_fake=40, random_state=5)
    assert (a.fake != b.fake).nnz == 0
    np.testing.assert_array_equal(a.normal_users, b.normal_users)
    np.testing.assert_array_equal(a.targets, b.targets)


def test_training_groups_match_the_evaluated_attack_size(setting):
    clean, _, attack = setting
    training = build_training_set(
        clean, attack, EVAL_TARGETS, n_train_fake=60, group_size=N_FAKE, random_state=1
    )
    groups = list(training.groups())
    assert len(groups) == 5
    for data, users, labels in groups:
        # each group's data: the clean users plus this group's 12 fake users only
        assert data.n_users == clean.n_users + N_FAKE and data.n_fake == N_FAKE
        assert labels.tolist() == [0] * N_FAKE + [1] * N_FAKE
        np.testing.assert_array_equal(data.is_fake[users], labels.astype(bool))
    # one fake user per group would mean 60 passes over the data: capped at MAX_GROUPS groups
    capped = build_training_set(
        clean, attack, EVAL_TARGETS, n_train_fake=150, group_size=1, random_state=1
    )
    assert capped.group_size == math.ceil(150 / MAX_GROUPS)


@pytest.mark.parametrize("bad", [1, 201])
def test_impossible_training_sizes_are_config_errors(setting, bad):
    clean, _, attack = setting
    with pytest.raises(ConfigError, match="training fake users"):
        build_training_set(clean, attack, EVAL_TARGETS, n_train_fake=bad)


def test_evaluate_detector_result(setting):
    clean, poisoned, attack = setting
    result = evaluate_detector(
        "svm-tia",
        {"tau": 7},
        clean,
        poisoned,
        attack,
        N_FAKE,
        EVAL_TARGETS,
        n_train_fake=60,
        random_state=0,
    )
    assert isinstance(result, DetectionResult)
    assert result.flagged.shape == (poisoned.n_users,) and result.flagged.dtype == bool
    assert (result.fpr, result.fnr) == detection_rates(result.flagged, poisoned.is_fake)
    assert result.fnr <= 0.25 and result.fpr <= 0.05
    info = result.info
    assert info["n_train_fake"] == info["n_train_normal"] == 60
    assert info["train_group_size"] == N_FAKE
    assert not set(info["train_targets"]) & set(EVAL_TARGETS.tolist())
    assert 0 <= info["fpr_unseen"] <= 1 and info["n_flagged"] == int(result.flagged.sum())
    # phase-1 rates are reported beside the final ones (Huang et al. Table VIII)
    assert info["fpr_svm"] >= result.fpr and info["fnr_svm"] <= result.fnr


def test_evaluate_detector_is_deterministic(setting):
    clean, poisoned, attack = setting
    runs = [
        evaluate_detector(
            "svm-features",
            {},
            clean,
            poisoned,
            attack,
            N_FAKE,
            EVAL_TARGETS,
            n_train_fake=40,
            random_state=9,
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].flagged, runs[1].flagged)


def test_evaluate_detector_checks_the_fake_count(setting):
    clean, poisoned, attack = setting
    with pytest.raises(ConfigError, match="marks 12 fake users, expected 5"):
        evaluate_detector("ttest", {}, clean, poisoned, attack, 5, EVAL_TARGETS)


def test_detection_rates_by_hand():
    flagged = np.array([True, False, False, True, True])
    is_fake = np.array([True, True, False, False, False])
    # normal users 2, 3, 4: two flagged -> FPR 2/3; fake users 0, 1: one missed -> FNR 1/2
    assert detection_rates(flagged, is_fake) == (pytest.approx(2 / 3), 0.5)
    fpr, fnr = detection_rates(flagged, np.zeros(5, dtype=bool))
    assert fpr == 0.6 and math.isnan(fnr)


def test_remove_flagged_drops_the_users(setting):
    _, poisoned, _ = setting
    flagged = np.zeros(poisoned.n_users, dtype=bool)
    flagged[[0, 5, poisoned.n_users - 1]] = True
    cleaned = remove_flagged(poisoned, flagged)
    assert cleaned.n_users == poisoned.n_users - 3
    assert cleaned.n_fake == poisoned.n_fake - 1
    assert not np.isin(poisoned.user_ids[flagged], cleaned.user_ids).any()
    with pytest.raises(ConfigError, match="shape"):
        remove_flagged(poisoned, flagged[:-1])


def test_empty_flagged_keeps_the_shape_and_labels(setting):
    _, poisoned, _ = setting
    flagged = np.zeros(poisoned.n_users, dtype=bool)
    flagged[[2, 7, poisoned.n_users - 2]] = True
    emptied = empty_flagged(poisoned, flagged)
    assert emptied.matrix.shape == poisoned.matrix.shape
    np.testing.assert_array_equal(emptied.is_fake, poisoned.is_fake)
    np.testing.assert_array_equal(emptied.user_ids, poisoned.user_ids)
    lengths = np.diff(emptied.matrix.indptr)
    assert (lengths[flagged] == 0).all()
    np.testing.assert_array_equal(lengths[~flagged], np.diff(poisoned.matrix.indptr)[~flagged])
    # the kept users' ratings and timestamps are unchanged
    np.testing.assert_array_equal(
        emptied.matrix[~flagged].toarray(), poisoned.matrix[~flagged].toarray()
    )
    np.testing.assert_array_equal(emptied.timestamps, remove_flagged(poisoned, flagged).timestamps)
