"""Write a poisoned dataset (real and fake users) for other tools, and read it back.

Two formats:

* ``csv``: columns ``user,item,rating[,timestamp],is_fake`` with the ORIGINAL ids (fake users
  carry the new ids :meth:`Interactions.with_fake_users` gave them; implicit data has rating 1).
  :func:`recpoison.data.loaders.load_dataset` reads it back (``is_fake`` is an extra column it
  ignores); :func:`read_poisoned` also restores the ``is_fake`` mask.
* ``recbole``: a RecBole atomic ``.inter`` file, tab-separated, header
  ``user_id:token  item_id:token  [rating:float]  [timestamp:float]`` (no rating column on
  implicit data: every row is an interaction).

Both write a sidecar ``<path>.fake_users.txt`` with the fake users' original ids, one per line,
so a detector's ground truth travels with the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recpoison.data.interactions import Interactions, RatingScale
from recpoison.data.loaders import load_dataset
from recpoison.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

ExportFormat = Literal["csv", "recbole"]
EXPORT_FORMATS: tuple[str, ...] = ("csv", "recbole")


def fake_users_path(path: str | Path) -> Path:
    """The sidecar listing the fake users of the dataset written to ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".fake_users.txt")


def write_poisoned(data: Interactions, path: str | Path, format: ExportFormat = "csv") -> Path:
    """Write ``data`` (with its fake users) to ``path`` in ``format``; return the path.

    The fake users' original ids also go to :func:`fake_users_path` ``(path)``. Parent folders
    are created. Raises :class:`ConfigError` for an unknown format and :class:`DataError` when
    the file cannot be written or an id cannot be stored in the format.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    path = Path(path).expanduser()
    frame = data.to_frame(original_ids=True)
    if data.is_implicit:
        frame["rating"] = 1.0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == "csv":
            frame.to_csv(path, index=False)
        else:
            _write_recbole(frame, path, implicit=data.is_implicit)
        fakes = data.user_ids[data.is_fake]
        fake_users_path(path).write_text("".join(f"{u}\n" for u in fakes), encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot write the poisoned dataset ({error.strerror})") from error
    logger.info(
        "wrote %s (%d users, %d fake) to %s as %s",
        data.name,
        data.n_users,
        data.n_fake,
        path,
        format,
    )
    return path


def _write_recbole(frame: pd.DataFrame, path: Path, implicit: bool) -> None:
    """RecBole atomic ``.inter``: typed tab-separated header, one interaction per row."""
    for column in ("user", "item"):
        text = frame[column].astype(str)
        bad = text.str.contains(r"[\t\n\r]", regex=True)
        if bad.any():
            raise DataError(
                f"{column} id {text[bad].iloc[0]!r} contains a tab or newline, "
                "which the RecBole atomic format cannot store"
            )
    columns = {"user": "user_id:token", "item": "item_id:token"}
    if not implicit:
        columns["rating"] = "rating:float"
    if "timestamp" in frame:
        columns["timestamp"] = "timestamp:float"
    out = frame[list(columns)].rename(columns=columns)
    out.to_csv(path, sep="\t", index=False)


def read_poisoned(path: str | Path, rating_scale: RatingScale = None) -> Interactions:
    """Read a CSV written by :func:`write_poisoned` back, with ``is_fake`` from its column.

    Ratings, ids and timestamps come from :func:`load_dataset` (``rating_scale`` as there: by
    default the data's own (min, max); all-1 ratings load as implicit data).
    """
    path = Path(path).expanduser()
    data = load_dataset(str(path), format="csv", rating_scale=rating_scale)
    try:
        flags = pd.read_csv(path, usecols=["user", "is_fake"])
    except ValueError as error:
        raise DataError(
            f"{path}: no 'user' and 'is_fake' columns; write the file with "
            "write_poisoned (recpoison attack --format csv)"
        ) from error
    truthy = flags["is_fake"].astype(str).str.strip().str.lower().isin(["true", "1"])
    fake_ids = pd.unique(flags.loc[truthy, "user"])
    user_ids = data.user_ids
    if not np.issubdtype(user_ids.dtype, np.integer):
        fake_ids = fake_ids.astype(str)
    return data.replace(is_fake=np.isin(user_ids, fake_ids))
