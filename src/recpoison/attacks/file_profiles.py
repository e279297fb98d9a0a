"""Fake users read from a file: evaluate profiles made by another tool under recpoison's protocol.

The ``from-file`` attack injects the fake users a file lists, so that fake users crafted
elsewhere (another implementation of an attack, a red team, a previous recpoison run) meet the
same victims, retrains, HR_t@K and detectors as every attack of this library. It accepts:

* a delimited file with a header naming the fake user and the item columns (``user``,
  ``fake_user``, ``user_id``, ...; ``item``, ``item_id``, ``movieId``, ...) and optionally a
  rating column, in the *original* ids of the dataset (MovieLens ``movieId`` for the bundled
  data); other columns are ignored;
* the CSV ``recpoison attack --format csv`` writes (``user,item,rating[,timestamp],is_fake``):
  only the rows of fake users are read.

Nothing is guessed: an item id the dataset does not have, a fake user who does not rate a target
of the cell, a number of fake users other than the cell's, ratings outside the data's scale, or
explicit data with a file without ratings are errors that say what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recpoison.attacks.base import Attack
from recpoison.data.export import read_poisoned
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.loaders import load_dataset
from recpoison.errors import ConfigError, DataError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender

#: Header names of the fake-user column, besides those `load_dataset` recognizes for users.
_FAKE_USER_COLUMNS = ("fake_user", "fakeuser", "fake_user_id")


class FileProfilesAttack(Attack):
    """Inject the fake users of ``path`` (see the module docstring for the accepted layouts).

    ``columns`` maps roles to header names when they are not recognized (as
    ``recpoison datasets info --columns``: ``{"user": "uid", "item": "iid", "rating": "r"}``).
    ``n_fillers`` is ``None`` (take the profiles as they are) or the number of non-target items
    every fake user must rate, checked. On implicit data every listed item is a positive.
    ``unknown_items="drop"`` leaves out items the data does not have (for instance items with
    no training rating, which a loaded training split cannot index) instead of refusing the
    file; how many were dropped is in the profiles' info.
    """

    name: ClassVar[str] = "from-file"

    def __init__(
        self,
        *,
        path: str,
        columns: dict[str, str] | None = None,
        n_fillers: int | None = None,
        unknown_items: str = "error",
    ) -> None:
        self.path = path
        self.columns = columns
        self.n_fillers = n_fillers
        self.unknown_items = unknown_items

    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
    ) -> FakeProfiles:
        """The file's fake users, in ``train``'s item space, after every check."""
        targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
        if self.unknown_items not in ("error", "drop"):
            raise ConfigError(
                f"{self.name}: unknown_items must be 'error' or 'drop', got {self.unknown_items!r}"
            )
        path = Path(self.path).expanduser()
        profiles = self._read(path, train)
        if profiles.n_users != n_fake:
            raise ConfigError(
                f"{path} holds {profiles.n_users} fake users but the cell asks for {n_fake}; "
                f"set the attack size to {profiles.n_users} / {train.n_real} real users = "
                f"{profiles.n_users / train.n_real:.6g}"
            )
        matrix, dropped = self._in_item_space(profiles, train, path)
        rated = matrix[:, targets].toarray() > 0
        missing = np.argwhere(~rated)
        if len(missing):
            user, target = missing[0]
            raise ConfigError(
                f"{path}: fake user {profiles.user_ids[user]} does not rate target item "
                f"{train.item_ids[targets[target]]}; the file must promote the cell's targets"
            )
        if self.n_fillers is not None:
            fillers = np.diff(matrix.indptr) - len(targets)
            wrong = np.flatnonzero(fillers != self.n_fillers)
            if len(wrong):
                raise ConfigError(
                    f"{path}: fake user {profiles.user_ids[wrong[0]]} rates "
                    f"{fillers[wrong[0]]} items besides the targets, not n_fillers="
                    f"{self.n_fillers}; leave n_fillers unset to take the profiles as they are"
                )
        info = {
            "attack": self.name,
            "path": str(path),
            "fake_user_ids": [str(u) for u in profiles.user_ids],
            "dropped_items": dropped,
        }
        return FakeProfiles(matrix, targets, info)

    def _read(self, path: Path, train: Interactions) -> Interactions:
        """The file's fake users as an `Interactions` in the file's own ids."""
        if not path.is_file():
            raise DataError(f"{path}: no such file (the from-file attack's `path`)")
        header = list(pd.read_csv(path, sep=None, engine="python", nrows=0).columns)
        if "is_fake" in header:  # the CSV `recpoison attack` writes: its fake users only
            poisoned = read_poisoned(path, rating_scale=train.rating_scale)
            profiles = poisoned.select_users(poisoned.is_fake)
        else:
            columns = dict(self.columns or {})
            fake_column = next((c for c in header if c.lower() in _FAKE_USER_COLUMNS), None)
            if "user" not in columns and fake_column is not None:
                columns["user"] = fake_column
            profiles = load_dataset(
                str(path),
                format="csv",
                columns=columns or None,
                rating_scale=train.rating_scale,
                implicit=train.is_implicit,
            )
        if not train.is_implicit and profiles.is_implicit:
            raise ConfigError(
                f"{path} has no rating column but the data is explicit; add ratings to the "
                "file or binarize the data"
            )
        return profiles

    def _in_item_space(
        self, profiles: Interactions, train: Interactions, path: Path
    ) -> tuple[sp.csr_matrix, int]:
        """The profiles' ratings as a ``[n_fake, train.n_items]`` matrix (original ids matched)
        and the number of (user, item) ratings dropped for unknown items."""
        index = {str(item): j for j, item in enumerate(train.item_ids)}
        columns = np.array([index.get(str(item), -1) for item in profiles.item_ids])
        unknown = profiles.item_ids[columns < 0]
        if len(unknown) and self.unknown_items == "error":
            raise ConfigError(
                f"{path}: {len(unknown)} item ids are not in dataset {train.name!r} (first: "
                f"{unknown[0]}); the file must use the dataset's original item ids, or set "
                "unknown_items: drop to leave them out"
            )
        coo = profiles.matrix.tocoo()
        known = columns[coo.col] >= 0
        values = np.ones_like(coo.data) if train.is_implicit else coo.data
        shape = (profiles.n_users, train.n_items)
        matrix = sp.csr_matrix(
            (values[known], (coo.row[known], columns[coo.col[known]])),
            shape=shape,
            dtype=np.float32,
        )
        return matrix, int((~known).sum())
