"""Loaders: every real format from small files, the bundled dataset, and every kind of bad input."""

import gzip
import importlib.util

import numpy as np
import pytest

from recpoison.data import BUNDLED, FORMATS, infer_format, load_dataset, parse_columns
from recpoison.errors import ConfigError, DataError, RecpoisonError

U_DATA = """196\t242\t3\t881250949
186\t302\t3\t891717742
22\t377\t1\t878887116
244\t51\t2\t880606923
166\t346\t1\t886397596
298\t474\t4\t884182806
115\t265\t2\t881171488
253\t465\t5\t891628467
305\t451\t3\t886324817
196\t51\t4\t881250950
"""

RATINGS_DAT = """1::1193::5::978300760
1::661::3::978302109
1::914::3::978301968
2::1193::4::978298413
2::3068::4::978299000
3::661::5::978297867
"""

USER_ARTISTS = """userID\tartistID\tweight
2\t51\t13883
2\t52\t11690
2\t53\t11351
3\t51\t212
4\t99\t5
"""

TAGS = """userID\tartistID\ttagID\ttimestamp
2\t52\t13\t1238536800000
2\t52\t15\t1238536800000
2\t53\t13\t1238536800001
3\t52\t18\t1238536800002
"""

MOVIELENS_CSV = """userId,movieId,rating,timestamp
1,31,2.5,1260759144
1,1029,3.0,1260759179
2,31,4.5,1260759185
3,10,0.5,1260759205
"""


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# -- good files ---------------------------------------------------------------------------------
def test_ml100k_u_data(tmp_path):
    data = load_dataset(str(write(tmp_path, "u.data", U_DATA)))
    assert (data.n_users, data.n_items, data.n_ratings) == (9, 9, 10)
    assert data.rating_scale == (1.0, 5.0)
    assert data.name == "ml-100k"
    assert data.user_ids.tolist() == [22, 115, 166, 186, 196, 244, 253, 298, 305]
    user, item = data.user_ids.tolist().index(196), data.item_ids.tolist().index(51)
    assert data.matrix[user, item] == 4.0
    row = slice(data.matrix.indptr[user], data.matrix.indptr[user + 1])
    assert sorted(data.timestamps[row].tolist()) == [881250949, 881250950]


def test_ml1m_ratings_dat_and_folder(tmp_path):
    write(tmp_path, "ratings.dat", RATINGS_DAT)
    write(tmp_path, "movies.dat", "1::Toy Story (1995)::Animation\n")
    data = load_dataset(str(tmp_path))  # a folder holding ratings.dat
    assert (data.n_users, data.n_items, data.n_ratings) == (3, 4, 6)
    assert data.item_ids.tolist() == [661, 914, 1193, 3068]
    assert data.rating_scale == (1.0, 5.0)
    assert data.name == "ml-1m"


def test_lastfm_user_artists_is_implicit(tmp_path):
    data = load_dataset(str(write(tmp_path, "user_artists.dat", USER_ARTISTS)))
    assert (data.n_users, data.n_items, data.n_ratings) == (3, 4, 5)
    assert data.is_implicit and data.timestamps is None
    assert set(data.matrix.data.tolist()) == {1.0}
    assert data.item_ids.tolist() == [51, 52, 53, 99]


def test_lastfm_tags_deduplicates_tag_assignments(tmp_path):
    data = load_dataset(str(write(tmp_path, "user_taggedartists-timestamps.dat", TAGS)))
    assert (data.n_users, data.n_items, data.n_ratings) == (2, 2, 3)  # two tags of (2, 52) -> one
    assert data.is_implicit and data.name == "lastfm"
    assert data.timestamps.tolist() == [1238536800000, 1238536800001, 1238536800002]


def test_csv_recognizes_movielens_columns(tmp_path):
    data = load_dataset(str(write(tmp_path, "ratings.csv", MOVIELENS_CSV)))
    assert (data.n_users, data.n_items, data.n_ratings) == (3, 3, 4)
    assert data.rating_scale == (0.5, 4.5)  # inferred (min, max)
    assert data.timestamps is not None and data.name == "ratings"


def test_csv_custom_columns_semicolons_string_ids_and_dates(tmp_path):
    text = 'uid;iid;stars;when;title\nann;x;4;2020-01-01;"a; b"\nbob;y;2;2020-01-02;c\n'
    path = write(tmp_path, "mine.csv", text)
    columns = parse_columns("user=uid,item=iid,rating=stars,timestamp=when")
    data = load_dataset(str(path), columns=columns, rating_scale=(1, 5))
    assert data.user_ids.tolist() == ["ann", "bob"]
    assert data.rating_scale == (1.0, 5.0)
    assert data.timestamps.tolist() == [1577836800, 1577923200]


def test_tsv_without_rating_is_implicit_and_implicit_flag(tmp_path):
    data = load_dataset(str(write(tmp_path, "clicks.tsv", "user_id\titem_id\n1\t2\n1\t3\n")))
    assert data.is_implicit and data.n_ratings == 2
    forced = load_dataset(str(write(tmp_path, "r.csv", MOVIELENS_CSV)), implicit=True)
    assert forced.is_implicit and forced.n_ratings == 4


def test_explicit_format_overrides_file_name(tmp_path):
    path = write(tmp_path, "u1.base", U_DATA)
    with pytest.raises(ConfigError, match="cannot tell the format"):
        load_dataset(str(path))
    assert load_dataset(str(path), format="ml-100k").n_ratings == 10


def test_bundled_dataset():
    data = load_dataset("ml-latest-small")
    assert (data.n_users, data.n_items, data.n_ratings) == (671, 9066, 100004)
    assert data.rating_scale == (0.5, 5.0)
    assert data.timestamps is not None
    assert load_dataset("ml-latest-small") is data  # read once per process
    assert load_dataset("ml-latest-small", implicit=True).is_implicit
    assert "ml-latest-small" in BUNDLED


def test_infer_format_and_format_table():
    assert infer_format("a/u.data") == "ml-100k"
    assert infer_format("ratings.dat") == "ml-1m"
    assert infer_format("user_artists.dat") == "lastfm"
    assert infer_format("x.TSV") == "csv"
    assert infer_format("x.parquet") == "parquet"
    assert set(FORMATS) >= {"ml-100k", "ml-1m", "lastfm", "csv", "parquet"}


def test_parse_columns():
    assert parse_columns("user=uid, item=iid") == {"user": "uid", "item": "iid"}
    for bad, message in [
        ("user", "ROLE=COLUMN"),
        ("owner=x", "unknown column role"),
        ("user=a,user=b", "twice"),
        ("user=", "ROLE=COLUMN"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_columns(bad)


# -- bad input ----------------------------------------------------------------------------------
BAD_FILES = [
    ("u.data", "", "empty"),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\n", r"u\.data, line 2: expected 4 fields.*found 3"),
    ("u.data", "1\t2\t3\t4\n\n1\t2\t3\t4\t5\n", r"line 3: expected 4 fields.*found 5"),
    ("u.data", "1\t2\t3\t4\n1\tabc\t3\t4\n", r"line 2: item id is 'abc'; expected an integer"),
    ("u.data", "1\t2\tfive\t4\n", r"line 1: rating is 'five'; expected a number"),
    ("u.data", "1\t2\t3\t4\n1\t3\t7\t4\n", r"line 2: rating 7 is outside the rating scale 1\.\.5"),
    ("u.data", "1\t2\t3\t4\n\t3\t4\t4\n", r"line 2: missing user value"),
    ("u.data", "1\t2\t3\t4\n   \n", r"line 2: expected 4 fields.*found 1"),
    ("r.tsv", "user\titem\n1\t2\n\t\n", r"r\.tsv, line 3: missing user value"),
    ("ratings.dat", "1::2::3::4\n1::2::3\n", r"ratings\.dat, line 2: expected 4 fields"),
    ("ratings.dat", "1::2::0::4\n", r"line 1: rating 0 is outside the rating scale 1\.\.5"),
    ("user_artists.dat", "2\t51\t13883\n", r"line 1: expected the header userID<TAB>artistID"),
    ("user_artists.dat", "userID\tartistID\tweight\n", "no interactions after the header"),
    ("r.csv", "user,item,rating\n1,2,\n", r"r\.csv, line 2: missing rating value"),
    ("r.csv", "user,item,rating\n1,2,4\n1,2\n", r"line 3: expected 3 fields"),
    ("r.csv", "user,item,rating\n1,2,nan\n", r"line 2: rating is 'nan'"),
    ("r.csv", "user,item,rating\n1,2,3\n2,3,0\n", r"line 3: a rating of 0 cannot be stored"),
    ("r.csv", "user,item,rating\n", "no ratings after the header"),
    ("r.csv", "just one column\n1\n", "single column"),
    ("r.csv", "a,b,rating\n1,2,3\n", r"no user column found.*columns: a, b, rating"),
    ("r.csv", "user,userId,item\n1,2,3\n", "could both be the user column"),
    ("r.csv", "user,item,time\n1,2,yesterday\n", r"line 2: timestamp is 'yesterday'"),
]


@pytest.mark.parametrize(("filename", "text", "message"), BAD_FILES)
def test_bad_text_files(tmp_path, filename, text, message):
    path = write(tmp_path, filename, text)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(str(path))
    assert "\n" not in str(caught.value)


def test_rating_outside_declared_csv_scale(tmp_path):
    path = write(tmp_path, "r.csv", "user,item,rating\n1,2,3\n1,3,9\n")
    with pytest.raises(DataError, match=r"line 3: rating 9 is outside the rating scale 1\.\.5"):
        load_dataset(str(path), rating_scale=(1, 5))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes(range(256)) * 4, r"line 1: binary data \(NUL byte\)"),
        (b"user,item\n1,2\n\xff\xfe\x80garbage\n", r"line 3: not UTF-8 text"),
        (gzip.compress(MOVIELENS_CSV.encode()), "gzip-compressed file; decompress it first"),
        (b"PK\x03\x04rest-of-a-zip", "zip archive"),
    ],
)
def test_binary_garbage_is_a_data_error(tmp_path, raw, message):
    path = tmp_path / "ratings.csv"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(str(path))
    assert "ratings.csv" in str(caught.value)


def test_undecodable_bytes_chain_the_original_error(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t2\t3\t4\n\xc3\x28\t2\t3\t4\n")
    with pytest.raises(DataError, match=r"u\.data, line 2: not UTF-8") as caught:
        load_dataset(str(path))
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


def test_missing_file_and_bad_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_dataset(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="folder holds none of the standard files"):
        load_dataset(str(tmp_path))


def test_unknown_names_and_formats(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"unknown dataset 'ml-latest'.*did you mean "
        r"'ml-latest-small'.*bundled datasets: ml-latest-small",
    ):
        load_dataset("ml-latest")
    with pytest.raises(ConfigError, match=r"'ml-1m' is a file format.*grouplens"):
        load_dataset("ml-1m")
    path = write(tmp_path, "u.data", U_DATA)
    with pytest.raises(ConfigError, match=r"unknown format 'ml100k' \(did you mean 'ml-100k'"):
        load_dataset(str(path), format="ml100k")
    with pytest.raises(ConfigError, match="columns only apply"):
        load_dataset(str(path), columns={"user": "x"})
    with pytest.raises(ConfigError, match="unknown column role"):
        load_dataset(str(path), columns={"owner": "x"})


def test_named_column_that_does_not_exist(tmp_path):
    path = write(tmp_path, "r.csv", MOVIELENS_CSV)
    with pytest.raises(
        DataError,
        match=r"column 'uid' \(given for user\) not found; the file has "
        r"columns: userId, movieId, rating, timestamp",
    ):
        load_dataset(str(path), columns={"user": "uid"})


def test_parquet(tmp_path):
    """pyarrow is an optional extra: without it the error says how to install it."""
    csv_data = load_dataset(str(write(tmp_path, "r.csv", MOVIELENS_CSV)))
    path = tmp_path / "r.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match=r"needs pyarrow.*pip install recpoison\[parquet\]"):
            load_dataset(str(path))
        return
    csv_data.to_frame().drop(columns="is_fake").to_parquet(path)
    data = load_dataset(str(path))
    assert (data.n_users, data.n_items, data.n_ratings) == (3, 3, 4)
    np.testing.assert_array_equal(data.item_ids, csv_data.item_ids)


@pytest.mark.parametrize("filename", ["u.data", "ratings.dat", "user_artists.dat", "r.csv"])
def test_random_text_never_escapes_as_a_raw_exception(tmp_path, filename):
    rng = np.random.default_rng(0)
    alphabet = np.array(list('0123456789\t\n:,;. -abcé"\r'))
    for _ in range(25):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 200))))
        path = tmp_path / filename
        path.write_text(text)
        try:
            load_dataset(str(path))
        except RecpoisonError as error:
            assert "\n" not in str(error)


def test_csv_line_numbers_follow_multiline_quoted_fields(tmp_path):
    text = 'user,item,rating,title\n1,2,3,"two\nlines"\n1,3,x,ok\n'
    with pytest.raises(DataError, match=r"line 4: rating is 'x'"):
        load_dataset(str(write(tmp_path, "r.csv", text)))
    with pytest.raises(DataError, match=r"r\.csv, line 2: new-line character"):
        load_dataset(str(write(tmp_path, "r.csv", "user,item\n1,2\r3\n")))


@pytest.mark.parametrize(
    ("filename", "text", "irregular"),
    [
        # an id written "196.0" is not an int64 for pandas: the exact parser reads the file
        ("u.data", U_DATA, U_DATA.replace("196\t242", "196.0\t242")),
        ("ratings.dat", RATINGS_DAT, RATINGS_DAT.replace("3::661", "3.0::661")),
        ("r.csv", MOVIELENS_CSV, MOVIELENS_CSV.replace("2.5", '"2.5"')),  # quotes
    ],
)
def test_fast_and_exact_parsers_agree(tmp_path, filename, text, irregular):
    clean = load_dataset(str(write(tmp_path / "a", filename, text)))
    other = load_dataset(str(write(tmp_path / "b", filename, irregular)))
    assert (clean.matrix != other.matrix).nnz == 0
    np.testing.assert_array_equal(clean.user_ids, other.user_ids)
    np.testing.assert_array_equal(clean.item_ids, other.item_ids)
    np.testing.assert_array_equal(clean.timestamps, other.timestamps)
