"""Writing poisoned datasets (csv, RecBole atomic .inter) and reading them back."""

import numpy as np
import pandas as pd
import pytest

from recpoison.attacks import make_attack
from recpoison.data import Interactions
from recpoison.data.export import fake_users_path, read_poisoned, write_poisoned
from recpoison.data.loaders import load_dataset
from recpoison.errors import ConfigError, DataError


def poison(data: Interactions, n_fake: int = 4, n_fillers: int = 5) -> Interactions:
    fake = make_attack("average", n_fillers=n_fillers).generate(data, [2], n_fake, random_state=0)
    return data.with_fake_users(fake)


def assert_same(read: Interactions, written: Interactions) -> None:
    np.testing.assert_array_equal(read.user_ids, written.user_ids)
    np.testing.assert_array_equal(read.item_ids, written.item_ids)
    assert (read.matrix != written.matrix).nnz == 0
    assert read.rating_scale == written.rating_scale


def test_csv_round_trip_explicit_with_timestamps(tiny_explicit, tmp_path):
    data = poison(tiny_explicit)
    path = write_poisoned(data, tmp_path / "poisoned.csv")
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp", "is_fake"]
    assert frame["is_fake"].sum() == data.matrix[data.is_fake].nnz

    loaded = load_dataset(str(path))
    assert_same(loaded, data)
    np.testing.assert_array_equal(loaded.timestamps, data.timestamps)
    assert loaded.n_fake == 0  # the generic loader ignores the flag column...
    back = read_poisoned(path)  # ...read_poisoned restores it
    assert_same(back, data)
    np.testing.assert_array_equal(back.is_fake, data.is_fake)

    fakes = fake_users_path(path).read_text().split()
    assert fakes == [str(u) for u in data.user_ids[data.is_fake]]


def test_csv_round_trip_implicit_and_string_ids(tmp_path):
    data = Interactions.from_triples(
        np.array(["ann", "ann", "bob", "cy"]), np.array(["x", "y", "y", "z"])
    )
    poisoned = poison(data, n_fake=2, n_fillers=1)
    assert list(poisoned.user_ids[poisoned.is_fake]) == ["fake-0", "fake-1"]
    path = write_poisoned(poisoned, tmp_path / "sub" / "implicit.csv")
    assert set(pd.read_csv(path)["rating"]) == {1.0}
    back = read_poisoned(path)
    assert back.is_implicit
    assert_same(back, poisoned)
    np.testing.assert_array_equal(back.is_fake, poisoned.is_fake)


@pytest.mark.parametrize("kind", ["tiny_explicit", "tiny_implicit"])
def test_recbole_atomic_inter(kind, request, tmp_path):
    data = poison(request.getfixturevalue(kind))
    path = write_poisoned(data, tmp_path / "poisoned.inter", format="recbole")
    header = path.read_text().splitlines()[0].split("\t")
    if data.is_implicit:
        assert header == ["user_id:token", "item_id:token", "timestamp:float"]
    else:
        assert header == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    table = pd.read_csv(path, sep="\t")
    users, items, ratings = data.triples()
    np.testing.assert_array_equal(table["user_id:token"], data.user_ids[users])
    np.testing.assert_array_equal(table["item_id:token"], data.item_ids[items])
    np.testing.assert_array_equal(table["timestamp:float"], data.timestamps)
    if not data.is_implicit:
        np.testing.assert_allclose(table["rating:float"], ratings)
    assert fake_users_path(path).read_text().split() == [
        str(u) for u in data.user_ids[data.is_fake]
    ]


def test_export_errors(tiny_implicit, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format"):
        write_poisoned(tiny_implicit, tmp_path / "x.parquet", format="parquet")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write"):
        write_poisoned(tiny_implicit, blocker / "x.csv")
    tabbed = Interactions.from_triples(np.array(["a\tb"]), np.array([1]))
    with pytest.raises(DataError, match="tab or newline"):
        write_poisoned(tabbed, tmp_path / "x.inter", format="recbole")
    plain = tmp_path / "plain.csv"
    plain.write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match="is_fake"):
        read_poisoned(plain)
