"""Readers for the other datasets of Aravind's thesis (§4.7): Steam, Netflix prize, Anime.

Each reader splits its file into role columns (user, item, rating, timestamp) and the location
of every row; :func:`recpoison.data.loaders.load_dataset` validates and assembles them like
every other format. Nothing is downloaded.

- ``steam``: ``steam-200k.csv`` of the Steam video games dataset (Tamber, Kaggle; the thesis's
  reference [17]: 200K rows, 12,393 users, 5,155 games). No header; each line is
  ``user_id,"game title",behavior,value,0`` with behavior ``purchase`` (value 1) or ``play``
  (value = hours played). Implicit: one interaction per (user, game) that has a purchase or
  play row (a game bought and played is one interaction; the thesis's counts are of rows).
- ``netflix``: Netflix prize ``combined_data_N.txt``: a ``MovieID:`` line, then one
  ``CustomerID,Rating,Date`` line per rating of that movie (ratings 1-5, dates YYYY-MM-DD, kept
  as timestamps). A folder holding ``combined_data_*.txt`` reads all of them. The thesis keeps
  4- and 5-star ratings as positive edges: load with ratings and filter before binarizing.
- ``anime``: Anime recommendations ``rating.csv`` (CooperUnion, Kaggle): header
  ``user_id,anime_id,rating``, ratings 1-10, and -1 for a series watched without a rating.
  Loaded with ratings, the -1 rows are dropped (0 cannot be stored; their number is logged);
  loaded implicit (``implicit: true``), every row is an interaction, -1 included, which is what
  "each user has watched 30 or more series" of §4.7 counts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recpoison.data.interactions import RatingScale
from recpoison.data.textfiles import Locate, first_bad, first_line, parse_exact, read_text
from recpoison.errors import DataError

logger = logging.getLogger(__name__)

#: Format name -> one-line description (listed with the other formats).
DESCRIPTIONS: dict[str, str] = {
    "steam": 'Steam video games steam-200k.csv: user_id,"game",purchase|play,value,0 (no '
    "header); implicit, one interaction per (user, game)",
    "netflix": "Netflix prize combined_data_N.txt: 'MovieID:' lines, each followed by "
    "CustomerID,Rating,Date lines; ratings 1-5 (a folder reads every combined_data_*.txt)",
    "anime": "Anime recommendations rating.csv: header user_id,anime_id,rating; ratings 1-10, "
    "-1 = watched without a rating (dropped with ratings, an interaction when implicit)",
}
#: Format name -> the standard file name (a glob) that identifies it.
FILE_PATTERNS: dict[str, str] = {
    "steam": "steam-200k.csv",
    "netflix": "combined_data_*.txt",
    "anime": "rating.csv",
}
_ANIME_HEADER = ["user_id", "anime_id", "rating"]
_STEAM_LAYOUT = 'user_id,"game title",purchase|play,value,0'
_NETFLIX_LAYOUT = "'MovieID:' lines followed by CustomerID,Rating,Date lines"


@dataclass(frozen=True)
class Parsed:
    """Role columns of a file, where each row came from, its rating scale / implicitness and
    whether its ids must be integers."""

    columns: dict[str, pd.Series]
    where: Locate
    scale: RatingScale
    implicit: bool
    numeric_ids: bool = True


def format_of(path: Path) -> str | None:
    """The thesis format a file (or a folder of Netflix files) is recognised as, by its name
    (``rating.csv`` only with the anime header)."""
    if path.is_dir():
        return "netflix" if any(path.glob(FILE_PATTERNS["netflix"])) else None
    for fmt, pattern in FILE_PATTERNS.items():
        if path.match(pattern):
            if fmt == "anime" and _header(path) != _ANIME_HEADER:
                return None
            return fmt
    return None


def read_steam(path: Path, implicit: bool) -> Parsed:
    """``steam-200k.csv`` (see the module doc); always implicit."""
    text = read_text(path, _STEAM_LAYOUT)
    table = parse_exact(path, text, ",", 5, False, True, _STEAM_LAYOUT)
    behavior = table.columns[2].astype(str).str.strip().str.lower()
    i = first_bad(~behavior.isin(["purchase", "play"]).to_numpy())
    if i is not None:
        raise DataError(
            f"{table.where(i)}: behavior is {table.columns[2].iloc[i]!r}; expected "
            "'purchase' or 'play'"
        )
    value = pd.to_numeric(table.columns[3], errors="coerce").to_numpy()
    i = first_bad(~np.isfinite(value))
    if i is not None:
        raise DataError(
            f"{table.where(i)}: value is {table.columns[3].iloc[i]!r}; expected a number "
            "(1 for a purchase, hours for a play)"
        )
    games = table.columns[1].astype(str).str.strip()
    return Parsed({"user": table.columns[0], "item": games}, table.where, None, True, False)


def read_netflix(path: Path, implicit: bool) -> Parsed:
    """``combined_data_N.txt``, or every such file of a folder (see the module doc)."""
    files = sorted(path.glob(FILE_PATTERNS["netflix"])) if path.is_dir() else [path]
    parts = [_netflix_file(f) for f in files]
    frame = pd.concat([p[0] for p in parts], ignore_index=True)
    file_of = np.repeat(np.arange(len(files)), [len(p[1]) for p in parts])
    line_of = np.concatenate([p[1] for p in parts])
    columns = {role: frame[role] for role in ("user", "item", "rating", "timestamp")}
    return Parsed(
        columns, lambda i: f"{files[file_of[i]]}, line {line_of[i]}", (1.0, 5.0), implicit
    )


def read_anime(path: Path, implicit: bool) -> Parsed:
    """``rating.csv`` of the Anime recommendations dataset (see the module doc)."""
    layout = ",".join(_ANIME_HEADER)
    text = read_text(path, f"a header {layout} and one rating per line")
    table = parse_exact(path, text, ",", 3, True, False, layout)
    if [h.lower() for h in table.header] != _ANIME_HEADER:
        raise DataError(
            f"{path}, line {table.header_line}: expected the header {layout}, "
            f"found {','.join(table.header)!r}"
        )
    columns = {"user": table.columns[0], "item": table.columns[1], "rating": table.columns[2]}
    if implicit:
        return Parsed(columns, table.where, None, True)
    rating = pd.to_numeric(table.columns[2], errors="coerce").to_numpy()
    rated = rating != -1
    if (~rated).any():
        logger.info("%s: dropped %d rows rated -1 (watched, not rated)", path, int((~rated).sum()))
    rows = np.flatnonzero(rated)
    kept = {role: values.iloc[rows].reset_index(drop=True) for role, values in columns.items()}
    return Parsed(kept, lambda i: table.where(int(rows[i])), (1.0, 10.0), False)


#: Format name -> reader(path, implicit).
READERS: dict[str, Callable[[Path, bool], Parsed]] = {
    "steam": read_steam,
    "netflix": read_netflix,
    "anime": read_anime,
}


def _netflix_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The ratings of one Netflix file and the line number of each."""
    text = read_text(path, _NETFLIX_LAYOUT)
    lines = pd.Series(text.split("\n"))
    numbers = np.arange(1, len(lines) + 1)
    nonempty = lines.str.strip() != ""
    lines, numbers = lines[nonempty].reset_index(drop=True), numbers[nonempty.to_numpy()]
    header = lines.str.fullmatch(r"\s*\d+:\s*").to_numpy()
    movie = pd.Series(np.where(header, lines.str.strip().str[:-1], None)).ffill()
    if not header[0]:
        raise DataError(
            f"{path}, line {numbers[0]}: expected a 'MovieID:' line before the ratings, "
            f"found {lines.iloc[0][:40]!r}"
        )
    fields = lines[~header].str.split(",")
    counts = fields.str.len().to_numpy()
    bad = first_bad(counts != 3)
    if bad is not None:
        line = numbers[~header][bad]
        raise DataError(
            f"{path}, line {line}: expected CustomerID,Rating,Date (3 fields), "
            f"found {lines[~header].iloc[bad][:40]!r}"
        )
    split = pd.DataFrame(fields.tolist(), columns=["user", "rating", "timestamp"])
    split["item"] = movie[~header].to_numpy()
    return split, numbers[~header]


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            line = first_line(handle.read(4096))
    except OSError:
        return []
    return [re.sub(r"\s", "", field).lower() for field in line.split(",")]
