"""Loaders for the other datasets of Aravind's thesis: Steam, Netflix prize, Anime."""

import numpy as np
import pytest

from recpoison.data import load_dataset
from recpoison.data.loaders import FORMATS, infer_format
from recpoison.data.transforms import binarize, k_core, min_rating
from recpoison.errors import ConfigError, DataError
from recpoison.experiment.cells import prepared_dataset
from recpoison.experiment.spec import DatasetSpec

STEAM = """151603712,"The Elder Scrolls V Skyrim",purchase,1.0,0
151603712,"The Elder Scrolls V Skyrim",play,273.0,0
151603712,"Fallout 4",purchase,1.0,0
187131847,"Dota 2",play,2.3,0
187131847,"Warhammer 40,000 Dawn of War",purchase,1.0,0
"""
NETFLIX_1 = """1:
1488844,3,2005-09-06
822109,5,2005-05-13
2:
1488844,4,2005-10-01
"""
NETFLIX_2 = """3:
30878,4,2005-12-26
"""
ANIME = """user_id,anime_id,rating
1,20,-1
1,24,8
2,20,10
2,79,-1
3,24,1
"""


def parse_spec_dataset(source: str, transforms: list) -> dict:
    return DatasetSpec(source=source, transforms=transforms).model_dump(mode="json")


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_steam_is_one_implicit_interaction_per_user_and_game(tmp_path):
    path = write(tmp_path, "steam-200k.csv", STEAM)
    assert infer_format(path) == "steam" and "steam" in FORMATS
    data = load_dataset(str(path))
    assert data.is_implicit and data.n_users == 2 and data.n_ratings == 4  # bought + played: 1
    assert "Warhammer 40,000 Dawn of War" in set(data.item_ids)  # a quoted comma


def test_netflix_files_and_folders(tmp_path):
    one = write(tmp_path, "combined_data_1.txt", NETFLIX_1)
    write(tmp_path, "combined_data_2.txt", NETFLIX_2)
    data = load_dataset(str(one))
    assert data.rating_scale == (1.0, 5.0) and data.n_ratings == 3
    assert sorted(data.item_ids.tolist()) == [1, 2]
    u, i = list(data.user_ids).index(1488844), list(data.item_ids).index(2)
    assert data.matrix[u, i] == 4
    assert data.timestamps.min() > 1.1e9  # dates became Unix seconds
    both = load_dataset(str(tmp_path))  # every combined_data_*.txt of the folder
    assert both.n_ratings == 4 and both.n_items == 3


def test_anime_minus_one_is_dropped_with_ratings_and_kept_when_implicit(tmp_path):
    path = write(tmp_path, "rating.csv", ANIME)
    assert infer_format(path) == "anime"
    rated = load_dataset(str(path))
    assert rated.rating_scale == (1.0, 10.0) and rated.n_ratings == 3
    assert np.sort(rated.matrix.data).tolist() == [1, 8, 10]
    watched = load_dataset(str(path), implicit=True)
    assert watched.is_implicit and watched.n_ratings == 5
    (tmp_path / "other").mkdir()
    other = write(tmp_path / "other", "rating.csv", "user,item,rating\n1,2,3\n")
    assert infer_format(other) == "csv"  # a rating.csv without the anime header is plain csv


@pytest.mark.parametrize(
    ("name", "text", "fmt", "message"),
    [
        ("steam-200k.csv", '1,"A",buy,1.0,0\n', "steam", r"line 1: behavior is 'buy'"),
        ("steam-200k.csv", '1,"A",play,lots,0\n', "steam", r"line 1: value is 'lots'"),
        ("steam-200k.csv", '1,"A",play\n', "steam", r"line 1: expected 5 fields"),
        (
            "combined_data_1.txt",
            "1488844,3,2005-09-06\n",
            "netflix",
            r"line 1: expected a 'MovieID:'",
        ),
        (
            "combined_data_1.txt",
            "1:\n1488844,3\n",
            "netflix",
            r"line 2: expected CustomerID,Rating,Date",
        ),
        (
            "combined_data_1.txt",
            "1:\n1488844,9,2005-09-06\n",
            "netflix",
            r"line 2: rating 9 is outside",
        ),
        ("combined_data_1.txt", "1:\n14x,3,2005-09-06\n", "netflix", r"line 2: user id is '14x'"),
        ("rating.csv", "user_id,anime_id,rating\n1,2,good\n", "anime", r"line 2: rating is 'good'"),
        ("rating.csv", "user_id,anime_id,rating\n1,2,0\n", "anime", r"line 2: rating 0 is outside"),
        ("rating.csv", "uid,aid,r\n1,2,3\n", "anime", r"line 1: expected the header"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, name, text, fmt, message):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(str(path), format=fmt)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_thesis_preprocessing_transforms(tiny_explicit):
    core = k_core(tiny_explicit, 3, k_items=12)  # users with 3, items with 12 ratings (§4.7)
    assert core.n_ratings > 0 and np.diff(core.matrix.indptr).min() >= 3
    assert np.bincount(core.matrix.indices).min() >= 12
    assert core.n_items < k_core(tiny_explicit, 3).n_items
    assert k_core(tiny_explicit, 3).n_ratings == k_core(tiny_explicit, 3, k_items=3).n_ratings
    liked = min_rating(tiny_explicit, 4)  # the thesis's Netflix positives: 4 and 5 stars
    assert liked.matrix.data.min() >= 4 and liked.n_users == tiny_explicit.n_users
    assert liked.n_ratings == int((tiny_explicit.matrix.data >= 4).sum())
    with pytest.raises(ConfigError, match="before binarize"):
        min_rating(binarize(tiny_explicit), 4)
    with pytest.raises(ConfigError, match="k_items must be a positive integer"):
        k_core(tiny_explicit, 3, k_items=0)


def test_a_spec_can_name_the_preprocessing(tmp_path):
    path = write(tmp_path, "combined_data_1.txt", NETFLIX_1)
    steps = [{"min_rating": 4}, "binarize", {"k_core": {"k": 1, "k_items": 1}}]
    data = prepared_dataset(parse_spec_dataset(str(path), steps), seed=0)
    assert data.is_implicit and data.n_ratings == 2  # the 3-star rating is gone
