"""Detectors: accuracy on planted explicit data, the TIA phase, the t-test, estimator behaviour."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from sklearn.base import clone

from recpoison.attacks import make_attack
from recpoison.data import FakeProfiles, Interactions, planted
from recpoison.detectors import DETECTORS, make_detector
from recpoison.detectors.protocol import evaluate_detector
from recpoison.detectors.svm_features import SVMFeaturesDetector
from recpoison.detectors.svm_tia import SVMTIADetector
from recpoison.detectors.ttest import TTestDetector, ttest_detectability, user_statistic
from recpoison.errors import ConfigError

N_FAKE = 15
TARGETS = np.array([5])


@pytest.fixture(scope="module")
def scenario():
    """300 planted users rating 20 items (1-5) plus 15 random-attack users (random items, ratings
    drawn around the global mean, so far from the item means) promoting item 5."""
    clean = planted(n_users=300, n_items=200, ratings_per_user=20, random_state=0)
    attack = make_attack("random", n_fillers=20)
    poisoned = clean.with_fake_users(attack.generate(clean, TARGETS, N_FAKE, random_state=7))
    return clean, poisoned, attack


def run(scenario, name, **params):
    clean, poisoned, attack = scenario
    return evaluate_detector(
        name, params, clean, poisoned, attack, N_FAKE, TARGETS, n_train_fake=100, random_state=0
    )


@pytest.mark.parametrize("name", ["svm-features", "svm-tia", "ttest"])
def test_detectors_catch_random_attack_with_few_false_positives(scenario, name):
    result = run(scenario, name, **({"tau": 9} if name == "svm-tia" else {}))
    assert result.fnr <= 0.2
    assert result.fpr <= 0.07


def test_tia_lowers_fpr_without_raising_fnr(scenario):
    # tau slightly below the attack size (15 users), as Huang et al. set it
    result = run(scenario, "svm-tia", tau=9)
    assert result.info["fpr_svm"] > 0  # phase 1 flags some normal users ...
    assert result.fpr < result.info["fpr_svm"]  # ... and TIA releases some of them
    assert result.fnr == result.info["fnr_svm"]
    assert result.info["tia_targets"] == TARGETS.tolist()


def test_target_item_analysis_by_hand():
    # 4 users x 3 items, max score 5. Suspicious: u0, u1, u2. Max-score counts among them:
    # i0: u0, u1 -> 2; i1: u2 -> 1; i2: 0. With tau = 1 only i0 (> 1) is a target, so u0 and u1
    # stay flagged, u2 (no max score on i0) is released and u3 (not suspicious) is never flagged.
    ratings = np.array([[5, 1, 0], [5, 0, 2], [3, 5, 0], [5, 5, 5]], dtype=np.float32)
    data = Interactions(sp.csr_matrix(ratings), rating_scale=(1.0, 5.0))
    flagged, targets = SVMTIADetector(tau=1).target_item_analysis(
        data, np.array([True, True, True, False])
    )
    assert targets.tolist() == [0]
    assert flagged.tolist() == [True, True, False, False]


def test_tau_is_a_count_or_a_fraction():
    assert SVMTIADetector(tau=7).tau_count(1000) == 7
    assert SVMTIADetector(tau=0.004).tau_count(1000) == 4
    with pytest.raises(ConfigError, match="tau must be > 0"):
        SVMTIADetector(tau=0).tau_count(1000)


def test_feature_path_predict_matches_decision_function_and_clones():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(3, 1, (60, 3))])
    y = np.repeat([0, 1], 60)
    for detector in (
        SVMFeaturesDetector(random_state=0),
        SVMTIADetector(random_state=0),
        TTestDetector(),
    ):
        fitted = clone(detector).fit(X, y)
        np.testing.assert_array_equal(fitted.predict(X), fitted.decision_function(X) > 0)
        assert (fitted.predict(X) == y).mean() > 0.85
        assert fitted.get_params() == detector.get_params()


def test_borderline_smote_applies_to_unbalanced_training():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (150, 2)), rng.normal(2.5, 1, (20, 2))])
    y = np.repeat([0, 1], [150, 20])
    detector = SVMFeaturesDetector(random_state=0).fit(X, y)
    assert detector.smote_applied_
    assert "smote" in detector.model_.named_steps
    assert detector.predict(X)[y == 1].mean() > 0.7
    assert not SVMFeaturesDetector(smote_ratio=None, random_state=0).fit(X, y).smote_applied_


def test_too_few_training_users_of_a_class_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 2 normal and 2 fake"):
        SVMFeaturesDetector().fit(np.zeros((5, 2)), [0, 0, 0, 0, 1])


@pytest.mark.parametrize("name", ["svm-features", "svm-tia"])
def test_feature_detectors_refuse_implicit_data(tiny_implicit, name):
    labels = np.arange(tiny_implicit.n_users) % 2
    with pytest.raises(ConfigError, match="explicit ratings"):
        make_detector(name).fit_profiles(tiny_implicit, labels)


def test_fit_profiles_and_flag_on_interactions(scenario):
    _, poisoned, _ = scenario
    # Train and flag on the same data (labels known): an in-sample check of the data-level API.
    detector = make_detector("svm-features", random_state=0).fit_profiles(poisoned)
    flagged = detector.flag(poisoned)
    assert flagged.shape == (poisoned.n_users,) and flagged.dtype == bool
    assert flagged[poisoned.is_fake].mean() > 0.8


def test_ttest_detectability_separates_random_attack_from_normal_users(scenario):
    _, poisoned, _ = scenario
    attacked = ttest_detectability(poisoned)
    assert attacked["statistic"] < 0  # random items are less popular than normal users' items
    assert attacked["p_value"] < 1e-6
    # 15 *normal* users marked fake: no detectable difference
    decoy = poisoned.real_users()
    decoy = decoy.replace(is_fake=np.arange(decoy.n_users) < N_FAKE)
    assert ttest_detectability(decoy)["p_value"] > 0.05


def test_ttest_detectability_without_fake_users_is_nan(tiny_explicit):
    result = ttest_detectability(tiny_explicit)
    assert np.isnan(result["statistic"]) and np.isnan(result["p_value"])


def test_ttest_detector_works_on_implicit_data_with_popularity(tiny_implicit):
    # 6 extra users each rating the 6 least popular items: far below normal popularity
    counts = np.bincount(tiny_implicit.matrix.indices, minlength=tiny_implicit.n_items)
    rare = np.argsort(counts)[:6]
    fake = sp.csr_matrix(
        (np.ones(36), (np.repeat(np.arange(6), 6), np.tile(rare, 6))),
        shape=(6, tiny_implicit.n_items),
    )
    data = tiny_implicit.with_fake_users(FakeProfiles(fake, rare[:1]))
    detector = TTestDetector(alpha=0.01).fit_profiles(data)
    assert detector.side_.tolist() == [-1.0]  # fake users sit below: a lower-tail test
    assert detector.flag(data)[data.is_fake].all()
    assert detector.flag(data)[~data.is_fake].mean() <= 0.05


def test_ttest_prediction_interval_by_hand():
    # normal values 1, 2, 3: mean 2, s = 1, scale = s * sqrt(1 + 1/3); x = 2 gives t = 0, p = 1
    detector = TTestDetector(alternative="two-sided").fit(
        np.array([[1.0], [2.0], [3.0]]), np.array([0, 0, 0])
    )
    assert detector.p_values(np.array([[2.0]]))[0] == pytest.approx(1.0)
    t = 8.0 / np.sqrt(4 / 3)  # x = 10
    assert detector.p_values(np.array([[10.0]]))[0] == pytest.approx(2 * stats.t.sf(t, 2))


def test_user_statistic_rejects_unknown_names(tiny_explicit):
    with pytest.raises(ConfigError, match="unknown t-test statistic"):
        user_statistic(tiny_explicit, "nope")
    assert user_statistic(tiny_explicit, "length").tolist() == [8.0] * tiny_explicit.n_users


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_registered_detector_is_a_fresh_estimator(name):
    detector = make_detector(name)
    assert clone(detector).get_params() == detector.get_params()
    assert hasattr(detector, "flag") and hasattr(detector, "fit_profiles")
