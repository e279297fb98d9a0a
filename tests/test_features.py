"""Profile features on a hand-computed 3-user profile, and the implicit-data guard."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from recpoison.data import Interactions
from recpoison.detectors.features import (
    FANG_FEATURES,
    fmtd,
    meanvar,
    profile_features,
    rdma,
    tmf,
    wda,
    wdma,
)
from recpoison.errors import ConfigError

# Ratings (rows = users, columns = items i0 i1 i2; 0 = not rated), scale 1..5:
#   u0: 5 3 .      item means r̄ = (4, 4, 2), rating counts NR = (3, 2, 2)
#   u1: 3 . 1
#   u2: 4 5 3
# |r - r̄|: u0 (1, 1), u1 (1, 1), u2 (0, 1, 1)
# Target partitions (items at the user's own maximum): u0 {i0}, u1 {i0}, u2 {i1}.
TINY = Interactions(
    sp.csr_matrix(np.array([[5, 3, 0], [3, 0, 1], [4, 5, 3]], dtype=np.float32)),
    rating_scale=(1.0, 5.0),
)


def test_rdma_by_hand():
    # u0: (1/3 + 1/2) / 2 = 5/12; u1: (1/3 + 1/2) / 2 = 5/12; u2: (0 + 1/2 + 1/2) / 3 = 1/3
    np.testing.assert_allclose(rdma(TINY), [5 / 12, 5 / 12, 1 / 3])


def test_wda_by_hand():
    # the numerator of RDMA: u0 1/3 + 1/2, u1 1/3 + 1/2, u2 0 + 1/2 + 1/2
    np.testing.assert_allclose(wda(TINY), [5 / 6, 5 / 6, 1.0])


def test_wdma_by_hand():
    # u0: (1/3² + 1/2²) / 2 = 13/72; u1 the same; u2: (0 + 1/4 + 1/4) / 3 = 1/6
    np.testing.assert_allclose(wdma(TINY), [13 / 72, 13 / 72, 1 / 6])


def test_meanvar_by_hand():
    # fillers: u0 {i1}: (3-4)² = 1; u1 {i2}: (1-2)² = 1; u2 {i0, i2}: ((4-4)² + (3-2)²) / 2 = 0.5
    np.testing.assert_allclose(meanvar(TINY), [1.0, 1.0, 0.5])


def test_fmtd_by_hand():
    # u0: |5 - 3| = 2; u1: |3 - 1| = 2; u2: |5 - (4 + 3) / 2| = 1.5
    np.testing.assert_allclose(fmtd(TINY), [2.0, 2.0, 1.5])


def test_tmf_by_hand():
    # T = (2, 1, 0) users hold each item in their target partition; F = T / 3
    # TMF = max F over the user's target partition: u0 F(i0), u1 F(i0), u2 F(i1)
    np.testing.assert_allclose(tmf(TINY), [2 / 3, 2 / 3, 1 / 3])


def test_profile_features_stacks_named_columns():
    X = profile_features(TINY, ["fmtd", "wda"])
    np.testing.assert_allclose(X, np.column_stack([fmtd(TINY), wda(TINY)]))
    assert profile_features(TINY).shape == (3, len(FANG_FEATURES))


def test_empty_user_and_user_without_fillers_get_zero():
    # u0 rates nothing; u1 rates two items both at 4 (no filler item); u2 rates 2 and 4.
    data = Interactions(
        sp.csr_matrix(np.array([[0, 0], [4, 4], [2, 4]], dtype=np.float32)), rating_scale=(1.0, 5.0)
    )
    X = profile_features(data, ["rdma", "wda", "wdma", "meanvar", "fmtd", "tmf"])
    np.testing.assert_array_equal(X[0], 0.0)
    assert meanvar(data)[1] == 0.0 and fmtd(data)[1] == 0.0
    # u2: filler {i0} with r̄_0 = 3: (2 - 3)² = 1; FMTD |4 - 2| = 2
    assert meanvar(data)[2] == 1.0 and fmtd(data)[2] == 2.0


def test_unknown_feature_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown profile feature"):
        profile_features(TINY, ["rdma", "nope"])


def test_implicit_data_is_refused(tiny_implicit):
    with pytest.raises(ConfigError, match=r"constant on implicit data.*explicit ratings"):
        profile_features(tiny_implicit)


def test_binarized_explicit_data_is_refused():
    ones = Interactions(sp.csr_matrix(np.ones((4, 3), dtype=np.float32)), rating_scale=(1.0, 5.0))
    with pytest.raises(ConfigError, match="constant"):
        profile_features(ones)


def test_implicit_data_allowed_on_request_logs_a_warning(tiny_implicit, caplog):
    with caplog.at_level(logging.WARNING, logger="recpoison.detectors.features"):
        X = profile_features(tiny_implicit, ["rdma", "meanvar", "fmtd"], allow_constant=True)
    np.testing.assert_array_equal(X, 0.0)
    assert "allow_constant=True" in caplog.text
