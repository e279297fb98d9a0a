"""The from-file attack: fake users read from a file, in the dataset's original ids."""

import numpy as np
import pandas as pd
import pytest

from recpoison.attacks import make_attack
from recpoison.data import load_dataset, planted
from recpoison.data.export import write_poisoned
from recpoison.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Explicit planted data saved and read back, so item ids are original ids (not 0..n-1)."""
    frame = planted(n_users=50, n_items=30, ratings_per_user=6, random_state=0).to_frame()
    frame["item"] = frame["item"] * 10 + 7  # original ids that differ from the indices
    path = tmp_path_factory.mktemp("d") / "ratings.csv"
    frame.to_csv(path, index=False)
    return load_dataset(str(path))


def _write(tmp_path, rows, name="fake.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_profiles_land_on_the_items_they_name(data, tmp_path):
    target = 3  # index; original id 37
    rows = [
        {"fake_user": 0, "item": 37, "rating": 5.0},
        {"fake_user": 0, "item": 107, "rating": 3.0},
        {"fake_user": 1, "item": 37, "rating": 5.0},
        {"fake_user": 1, "item": 17, "rating": 2.5},
        {"fake_user": 1, "item": 27, "rating": 4.0},
    ]
    fake = make_attack("from-file", path=_write(tmp_path, rows)).generate(data, [target], 2)
    dense = fake.matrix.toarray()
    assert dense.shape == (2, data.n_items)
    assert dense[0, 3] == 5.0 and dense[0, 10] == 3.0 and np.count_nonzero(dense[0]) == 2
    assert dense[1, 3] == 5.0 and dense[1, 1] == 2.5 and dense[1, 2] == 4.0
    assert fake.info["fake_user_ids"] == ["0", "1"]


def test_implicit_data_takes_every_listed_item_as_a_positive(tmp_path):
    implicit = planted(n_users=40, n_items=25, rating_scale=None, random_state=1)
    rows = [{"user": "f1", "item": 4}, {"user": "f1", "item": 9}]
    fake = make_attack("from-file", path=_write(tmp_path, rows)).generate(implicit, [4], 1)
    assert fake.matrix.toarray()[0, [4, 9]].tolist() == [1.0, 1.0]


def test_round_trip_of_what_recpoison_attack_writes(data, tmp_path):
    made = make_attack("bandwagon", n_fillers=5).generate(data, [3], 4, random_state=0)
    out = tmp_path / "poisoned.csv"
    write_poisoned(data.with_fake_users(made), out)
    read = make_attack("from-file", path=str(out), n_fillers=5).generate(data, [3], 4)
    np.testing.assert_array_equal(read.matrix.toarray(), made.matrix.toarray())


@pytest.mark.parametrize(
    ("rows", "targets", "n_fake", "message"),
    [
        (
            [{"user": 0, "item": 37, "rating": 5}, {"user": 0, "item": 99999, "rating": 5}],
            [3],
            1,
            "99999",
        ),
        ([{"user": 0, "item": 47, "rating": 5}], [3], 1, "does not rate target item 37"),
        ([{"user": 0, "item": 37, "rating": 5}], [3], 3, "holds 1 fake users but the cell"),
        ([{"user": 0, "item": 37}], [3], 1, "no rating column but the data is explicit"),
    ],
)
def test_clear_errors(data, tmp_path, rows, targets, n_fake, message):
    attack = make_attack("from-file", path=_write(tmp_path, rows))
    with pytest.raises(ConfigError, match=message):
        attack.generate(data, targets, n_fake)


def test_ratings_outside_the_scale(data, tmp_path):
    rows = [{"user": 0, "item": 37, "rating": 9}]
    with pytest.raises(DataError, match="9"):
        make_attack("from-file", path=_write(tmp_path, rows)).generate(data, [3], 1)


def test_filler_count_is_checked_when_given(data, tmp_path):
    rows = [{"user": 0, "item": 37, "rating": 5}, {"user": 0, "item": 47, "rating": 4}]
    with pytest.raises(ConfigError, match="rates 1 items besides the targets, not n_fillers=2"):
        make_attack("from-file", path=_write(tmp_path, rows), n_fillers=2).generate(data, [3], 1)


def test_unknown_items_can_be_dropped(data, tmp_path):
    rows = [
        {"user": 0, "item": 37, "rating": 5},
        {"user": 0, "item": 99999, "rating": 5},
        {"user": 0, "item": 47, "rating": 4},
    ]
    attack = make_attack("from-file", path=_write(tmp_path, rows), unknown_items="drop")
    fake = attack.generate(data, [3], 1)
    assert fake.matrix.toarray()[0, [3, 4]].tolist() == [5.0, 4.0] and fake.matrix.nnz == 2
    assert fake.info["dropped_items"] == 1


def test_missing_file(data, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        make_attack("from-file", path=str(tmp_path / "nope.csv")).generate(data, [3], 1)
