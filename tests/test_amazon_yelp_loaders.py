"""The Amazon ratings-only CSV and Yelp review.json loaders (the datasets of Fang et al. 2020)."""

import json

import numpy as np
import pytest

from recpoison.data import FORMATS, infer_format, load_dataset
from recpoison.errors import DataError

AMAZON = """A2EFCYXHNK06IS,5555991584,5.0,978480000
A1WR23ER5HMAA9,5555991584,5.0,953424000
A2IR4Q0GPAFJKW,5555991584,4.0,1393545600
A2EFCYXHNK06IS,B000001MEV,3.0,1001116800
A3UNWO6T6ZHB7G,B000001MEV,1.0,1385337600
"""

REVIEWS = [
    {"review_id": "r1", "user_id": "u-A", "business_id": "b-1", "stars": 5,
     "date": "2016-03-09 00:00:00", "text": 'Great, "really" great.'},
    {"review_id": "r2", "user_id": "u-B", "business_id": "b-1", "stars": 2.0,
     "date": "2017-01-14 21:30:33", "text": "meh"},
    {"review_id": "r3", "user_id": "u-A", "business_id": "b-2", "stars": 4,
     "date": "2018-05-01", "text": ""},
]  # fmt: skip


def write(path, text):
    path.write_text(text)
    return path


def yelp_text(reviews):
    return "".join(json.dumps(r) + "\n" for r in reviews)


def test_amazon_ratings_only_csv(tmp_path):
    path = write(tmp_path / "ratings_Digital_Music.csv", AMAZON)
    assert infer_format(path) == "amazon"
    data = load_dataset(str(path))
    assert (data.n_users, data.n_items, data.n_ratings) == (4, 2, 5)
    assert data.rating_scale == (1.0, 5.0)
    assert set(data.user_ids) == {"A2EFCYXHNK06IS", "A1WR23ER5HMAA9", "A2IR4Q0GPAFJKW",
                                  "A3UNWO6T6ZHB7G"}  # fmt: skip
    assert set(data.item_ids) == {"5555991584", "B000001MEV"}  # ids stay strings
    assert sorted(data.timestamps) == sorted([978480000, 953424000, 1393545600, 1001116800,
                                              1385337600])  # fmt: skip
    same = load_dataset(str(tmp_path))  # the folder holding it
    assert same.n_ratings == 5
    other = write(tmp_path / "music.txt", AMAZON)
    assert load_dataset(str(other), format="amazon").n_ratings == 5


@pytest.mark.parametrize(
    "text, message",
    [
        (AMAZON + "A9,B1,5.0\n", "line 6: expected 4 fields"),
        (AMAZON.replace("4.0", "four"), "line 3: rating is 'four'; expected a number"),
        (AMAZON.replace("1385337600", "yesterday"), "line 5: timestamp is 'yesterday'"),
        (AMAZON.replace("3.0", "7.0"), "line 4: rating 7 is outside the rating scale 1..5"),
    ],
)
def test_amazon_bad_lines(tmp_path, text, message):
    path = write(tmp_path / "ratings_Music.csv", text)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(str(path))
    assert str(path) in str(error.value)


def test_yelp_review_json(tmp_path):
    path = write(tmp_path / "review.json", yelp_text(REVIEWS) + "\n")
    assert infer_format(path) == "yelp"
    assert infer_format(tmp_path / "yelp_academic_dataset_review.json") == "yelp"
    data = load_dataset(str(path))
    assert (data.n_users, data.n_items, data.n_ratings) == (2, 2, 3)
    assert data.rating_scale == (1.0, 5.0)
    frame = data.to_frame().sort_values(["user", "item"])
    assert frame["rating"].tolist() == [5.0, 4.0, 2.0]
    assert frame["timestamp"].tolist() == [1457481600, 1525132800, 1484429433]
    assert load_dataset(str(tmp_path)).n_ratings == 3  # the folder holding it
    assert "yelp" in FORMATS and "amazon" in FORMATS


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"user_id": "u-C", "business_id": "b-3", "stars": 3', "line 3: not valid JSON"),
        ("[1, 2, 3]", "line 3: not a JSON object"),
        ('{"user_id": "u-C", "business_id": "b-3", "date": "2019-01-01"}', "line 3: no 'stars'"),
        ('{"user_id": "u-C", "business_id": "b-3", "stars": "x", "date": "2019-01-01"}',
         "line 3: rating is 'x'; expected a number"),
    ],
)  # fmt: skip
def test_yelp_bad_lines(tmp_path, line, message):
    text = yelp_text(REVIEWS[:2]) + line + "\n" + yelp_text(REVIEWS[2:])
    path = write(tmp_path / "review.json", text)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(str(path))
    assert str(error.value).startswith(str(path))


def test_bad_yelp_file_exits_2_from_the_cli(cli, tmp_path):
    path = write(tmp_path / "review.json", yelp_text(REVIEWS) + "not json\n")
    code, _, stderr = cli("datasets", "info", path)
    assert code == 2
    assert stderr.count("\n") == 1 and "line 4: not valid JSON" in stderr
    code, stdout, _ = cli("datasets", "info", write(tmp_path / "ratings_X.csv", AMAZON), "--json")
    assert code == 0 and json.loads(stdout)["users"] == 4
    assert np.isfinite(json.loads(stdout)["density"])
