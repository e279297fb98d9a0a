"""Delimited text files split into validated fields, with the location of every row.

Clean files go through one pass of pandas' C parser (:func:`parse_fast`); anything irregular goes
to :func:`parse_exact`, which splits the lines itself and names the first bad line. Both return a
:class:`Table` whose values :mod:`recpoison.data.loaders` validates, so a file is accepted or
rejected the same way by either path. Errors are one-line :class:`DataError` messages naming the
file and line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recpoison.errors import DataError

#: Leading bytes of files that are not text, and what to tell the user about each.
MAGIC = {
    b"\x1f\x8b": "a gzip-compressed file; decompress it first (gunzip)",
    b"PK\x03\x04": "a zip archive; extract it and pass the ratings file or its folder",
    b"PAR1": "a Parquet file; use format 'parquet' (--format parquet)",
    b"BZh": "a bzip2-compressed file; decompress it first",
    b"\xfd7zXZ": "an xz-compressed file; decompress it first",
}

#: Maps a row index of a parsed table to "file, line N" for error messages.
Locate = Callable[[int], str]


def first_bad(mask: np.ndarray) -> int | None:
    """Index of the first true entry of ``mask``, or None."""
    bad = np.flatnonzero(mask)
    return int(bad[0]) if bad.size else None


@dataclass(frozen=True)
class Table:
    """Delimited text split into fields: the header (if any), one Series per field, locations."""

    header: list[str] | None
    header_line: int
    columns: list[pd.Series]
    where: Locate


def read_text(path: Path, expected: str) -> str:
    """The file as UTF-8 text with ``\\n`` line ends; binary or undecodable data is a DataError."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"{path}: cannot read the file ({error.strerror}); expected {expected}"
        ) from error
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; expected {expected}")
    for magic, what in MAGIC.items():
        if raw.startswith(magic):
            raise DataError(f"{path}: this is {what}; expected {expected}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{path}, line {line}: binary data (NUL byte); expected a text file with {expected}"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (binary data?); expected a UTF-8 "
            f"text file with {expected}"
        ) from error
    return text.replace("\r\n", "\n")


def first_line(text: str) -> str:
    """The first non-empty line (whitespace-only lines are data, not blank, in every parser)."""
    return next((line for line in io.StringIO(text) if line != "\n"), "").rstrip("\n")


def parse_fast(
    path: Path, text: str, sep: str, n_fields: int, has_header: bool, dtype: dict[int, type] | None
) -> Table | None:
    """pandas' C parser where every non-empty line has ``n_fields`` fields and nothing is quoted.

    Returns None for anything else (or a field pandas cannot convert to ``dtype``).
    """
    if len(sep) != 1 or '"' in text:
        return None
    buf = np.frombuffer(text.encode(), dtype=np.uint8)
    ends = np.append(np.flatnonzero(buf == ord("\n")), buf.size)
    starts = np.concatenate([[0], ends[:-1] + 1])
    at = np.flatnonzero(buf == ord(sep))
    nonempty = ends > starts
    per_line = np.searchsorted(at, ends) - np.searchsorted(at, starts)
    if not np.all(per_line[nonempty] == n_fields - 1):
        return None
    lines = np.flatnonzero(nonempty) + 1
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            names=list(range(n_fields)),
            skiprows=[lines[0] - 1] if has_header else None,
            dtype=dtype,
            engine="c",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[""],
            low_memory=False,
        )
    except Exception:  # any field pandas cannot parse: the exact parser names it
        return None
    if (
        not isinstance(frame.index, pd.RangeIndex)
        or len(frame) != len(lines) - has_header
        or any(pd.api.types.is_bool_dtype(t) for t in frame.dtypes)
    ):
        return None
    header = [field.strip() for field in first_line(text).split(sep)] if has_header else None
    rows = lines[1:] if has_header else lines
    return Table(
        header,
        int(lines[0]),
        [frame[j] for j in range(n_fields)],
        lambda i: f"{path}, line {rows[i]}",
    )


def parse_exact(
    path: Path,
    text: str,
    sep: str,
    n_fields: int | None,
    has_header: bool,
    quoted: bool,
    layout: str,
) -> Table:
    """Split the non-empty lines (with ``csv`` when ``quoted``) and check every field count.

    ``n_fields=None`` expects as many fields as the header has.
    """
    lines = text.split("\n")
    numbers = np.flatnonzero([line != "" for line in lines]) + 1
    lines = [lines[i - 1] for i in numbers]
    if quoted:
        reader = csv.reader(lines, delimiter=sep)
        rows, starts, consumed = [], [], 0  # a quoted field may span lines: keep each row's first
        try:
            for row in reader:
                rows.append(row)
                starts.append(numbers[consumed])
                consumed = reader.line_num
        except csv.Error as error:
            line = numbers[min(reader.line_num, len(numbers)) - 1]
            raise DataError(f"{path}, line {line}: {error}; expected {layout}") from error
        numbers = np.asarray(starts, dtype=np.int64)
    else:
        rows = [line.split(sep) for line in lines]
    header = [field.strip() for field in rows[0]] if has_header else None
    header_line = int(numbers[0])
    if has_header:
        rows, numbers = rows[1:], numbers[1:]
    if n_fields is None:
        n_fields, layout = len(header), f"{layout} like the header: {', '.join(header)}"
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = first_bad(lengths != n_fields)
    if bad is not None:
        raise DataError(
            f"{path}, line {numbers[bad]}: expected {n_fields} fields ({layout}), "
            f"found {lengths[bad]}"
        )
    table = np.array(rows, dtype=object).reshape(len(rows), n_fields)
    return Table(
        header,
        header_line,
        [pd.Series(table[:, j]) for j in range(n_fields)],
        lambda i: f"{path}, line {numbers[i]}",
    )


def parse_json_lines(path: Path, text: str, fields: dict[str, str], layout: str) -> Table:
    """One JSON object per non-empty line; ``fields`` maps each role to its key.

    pandas' reader takes a clean file in one pass; otherwise every line is decoded on its own so
    that the first bad line (not JSON, not an object, a key missing) is named.
    """
    keys = list(fields.values())
    lines = text.split("\n")
    numbers = np.flatnonzero([line.strip() != "" for line in lines]) + 1
    try:
        frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)  # keeps dates as text
        complete = all(k in frame and frame[k].notna().all() for k in keys)
        clean = len(frame) == len(numbers) and complete
    except Exception:  # anything pandas cannot read: the line-by-line parser names the line
        clean = False
    if not clean:
        rows = [_json_object(path, lines[n - 1], int(n), keys, layout) for n in numbers]
        frame = pd.DataFrame(rows, columns=keys)
    if not len(frame):
        raise DataError(f"{path}: no JSON lines; expected {layout}")
    return Table(
        None,
        0,
        [frame[k].reset_index(drop=True) for k in keys],
        lambda i: f"{path}, line {numbers[i]}",
    )


def _json_object(path: Path, line: str, number: int, keys: list[str], layout: str) -> list:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {number}: not valid JSON ({error.msg}); expected {layout}"
        ) from None
    if not isinstance(row, dict):
        raise DataError(f"{path}, line {number}: not a JSON object; expected {layout}")
    missing = [k for k in keys if row.get(k) is None]
    if missing:
        raise DataError(f"{path}, line {number}: no {missing[0]!r} field; expected {layout}")
    return [row[k] for k in keys]
