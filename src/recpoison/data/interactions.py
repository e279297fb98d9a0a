"""The `Interactions` container: an immutable users x items rating matrix with its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recpoison.errors import DataError

RatingScale = tuple[float, float] | None


@dataclass(frozen=True, eq=False)
class FakeProfiles:
    """Rows an attack wants to inject: one per fake user, in the item space of the data.

    ``matrix`` holds the fake users' ratings (0 = not rated) on the data's rating scale (1.0 for
    implicit data); ``targets`` the item indices the attack promotes; ``info`` attack diagnostics
    (for example the surrogate's own target hit ratio) that the runner stores beside the results.
    """

    matrix: sp.csr_matrix
    targets: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_fake(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True, eq=False)
class Interactions:
    """Users x items ratings (CSR, float32, 0 = missing) plus metadata. Never mutated in place.

    ``timestamps`` (optional) is aligned with ``matrix.data``; ``user_ids`` / ``item_ids`` hold
    the original ids of each row / column; ``is_fake`` marks injected users;
    ``rating_scale`` is ``(low, high)`` for explicit data and ``None`` for implicit data.
    """

    matrix: sp.csr_matrix
    rating_scale: RatingScale = None
    timestamps: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    is_fake: np.ndarray | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        m = sp.csr_matrix(self.matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        if m.nnz and not np.all(np.isfinite(m.data)):
            raise DataError(f"{self.name}: ratings contain NaN or infinite values")
        object.__setattr__(self, "matrix", m)
        n_users, n_items = m.shape
        if self.timestamps is not None and len(self.timestamps) != m.nnz:
            raise DataError(f"{self.name}: {len(self.timestamps)} timestamps for {m.nnz} ratings")
        defaults = {
            "user_ids": np.arange(n_users),
            "item_ids": np.arange(n_items),
            "is_fake": np.zeros(n_users, dtype=bool),
        }
        for attr, default in defaults.items():
            value = getattr(self, attr)
            value = default if value is None else np.asarray(value)
            if len(value) != len(default):
                raise DataError(
                    f"{self.name}: {attr} has {len(value)} entries, expected {len(default)}"
                )
            object.__setattr__(self, attr, value)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_triples(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray | None = None,
        *,
        timestamps: np.ndarray | None = None,
        rating_scale: RatingScale = None,
        name: str = "data",
    ) -> Interactions:
        """Build from parallel arrays of original user ids, item ids and ratings.

        Ids are remapped to contiguous indices (sorted order of the original ids) and the maps kept.
        Repeated (user, item) pairs keep the latest rating (by timestamp if given, else last row).
        ``ratings=None`` means implicit data (every interaction is 1).
        """
        frame = pd.DataFrame({"user": np.asarray(users), "item": np.asarray(items)})
        frame["rating"] = 1.0 if ratings is None else np.asarray(ratings, dtype=np.float64)
        if timestamps is not None:
            frame["timestamp"] = np.asarray(timestamps, dtype=np.int64)
            frame = frame.sort_values("timestamp", kind="stable")
        frame = frame.drop_duplicates(["user", "item"], keep="last")
        user_ids, user_index = np.unique(frame["user"].to_numpy(), return_inverse=True)
        item_ids, item_index = np.unique(frame["item"].to_numpy(), return_inverse=True)
        order = np.lexsort((item_index, user_index))
        user_index, item_index = user_index[order], item_index[order]
        values = frame["rating"].to_numpy()[order]
        if ratings is not None and np.any(values == 0):
            raise DataError(
                f"{name}: a rating of 0 cannot be stored (0 means 'not rated'); "
                "shift the ratings or load the data as implicit"
            )
        matrix = sp.csr_matrix(
            (values.astype(np.float32), (user_index, item_index)),
            shape=(len(user_ids), len(item_ids)),
        )
        stamps = frame["timestamp"].to_numpy()[order] if timestamps is not None else None
        return cls(
            matrix,
            rating_scale if ratings is not None else None,
            stamps,
            user_ids,
            item_ids,
            None,
            name,
        )

    def replace(self, **changes: Any) -> Interactions:
        """A copy with some fields changed (the dataclass is frozen)."""
        fields = {
            "matrix": self.matrix,
            "rating_scale": self.rating_scale,
            "timestamps": self.timestamps,
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "is_fake": self.is_fake,
            "name": self.name,
        }
        fields.update(changes)
        return Interactions(**fields)

    # -- shape and statistics ------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def n_ratings(self) -> int:
        return int(self.matrix.nnz)

    @property
    def n_fake(self) -> int:
        return int(self.is_fake.sum())

    @property
    def n_real(self) -> int:
        return self.n_users - self.n_fake

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return self.n_ratings / cells if cells else 0.0

    @property
    def is_implicit(self) -> bool:
        return self.rating_scale is None

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user index, item index, rating) arrays of every stored rating, in CSR order."""
        coo = self.matrix.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data

    def to_frame(self, original_ids: bool = True) -> pd.DataFrame:
        """One row per rating: user, item, rating, timestamp (if any) and is_fake."""
        users, items, ratings = self.triples()
        frame = pd.DataFrame(
            {
                "user": self.user_ids[users] if original_ids else users,
                "item": self.item_ids[items] if original_ids else items,
                "rating": ratings,
            }
        )
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        frame["is_fake"] = self.is_fake[users]
        return frame

    # -- fake users ----------------------------------------------------------------------------
    def with_fake_users(self, profiles: FakeProfiles) -> Interactions:
        """A new object with the fake users appended as the last rows (``is_fake`` True).

        Fake users get new original ids (``max id + 1 ...`` for integer ids, ``"fake-<i>"``
        otherwise) and, when the data has timestamps, the latest timestamp of the data, so that
        a leave-one-out split of the real users is unchanged.
        """
        fake = sp.csr_matrix(profiles.matrix, dtype=np.float32)
        if fake.shape[1] != self.n_items:
            raise DataError(
                f"fake profiles have {fake.shape[1]} items, the data has {self.n_items}"
            )
        fake.sum_duplicates()
        fake.sort_indices()
        matrix = sp.vstack([self.matrix, fake], format="csr")
        stamps = None
        if self.timestamps is not None:
            latest = self.timestamps.max() if len(self.timestamps) else 0
            stamps = np.concatenate([self.timestamps, np.full(fake.nnz, latest, dtype=np.int64)])
        return self.replace(
            matrix=matrix,
            timestamps=stamps,
            user_ids=np.concatenate([self.user_ids, new_ids(self.user_ids, fake.shape[0])]),
            is_fake=np.concatenate([self.is_fake, np.ones(fake.shape[0], dtype=bool)]),
        )

    def real_users(self) -> Interactions:
        """The data without its fake users."""
        return self.select_users(~self.is_fake)

    def select_users(self, mask: np.ndarray) -> Interactions:
        """Keep the users where ``mask`` is True (items are kept, even if now unrated)."""
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask)
        matrix = self.matrix[rows]
        stamps = None
        if self.timestamps is not None:
            row_of_rating = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))
            stamps = self.timestamps[mask[row_of_rating]]
        return self.replace(
            matrix=matrix,
            timestamps=stamps,
            user_ids=self.user_ids[rows],
            is_fake=self.is_fake[rows],
        )

    def __repr__(self) -> str:
        kind = "implicit" if self.is_implicit else f"ratings {self.rating_scale}"
        return (
            f"Interactions({self.name!r}: {self.n_users} users ({self.n_fake} fake), "
            f"{self.n_items} items, {self.n_ratings} {kind})"
        )


def new_ids(existing: np.ndarray, count: int) -> np.ndarray:
    """Fresh original ids for ``count`` new users that collide with none of ``existing``."""
    if np.issubdtype(existing.dtype, np.integer):
        start = int(existing.max()) + 1 if len(existing) else 0
        return np.arange(start, start + count, dtype=existing.dtype)
    taken = set(map(str, existing))
    ids, i = [], 0
    while len(ids) < count:
        candidate = f"fake-{i}"
        if candidate not in taken:
            ids.append(candidate)
        i += 1
    return np.array(ids, dtype=object)
