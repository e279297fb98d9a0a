"""Edge flips on implicit data: applying them and appending empty users (for edge attacks).

Aravind (thesis §3.2-3.3, 3.11): a perturbation inserts or removes one user-item edge of the
bipartite interaction graph; the new-user variants first append users without interactions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.errors import ConfigError


def append_empty_users(data: Interactions, n_new: int) -> Interactions:
    """``data`` with ``n_new`` users without interactions appended (``is_fake`` True)."""
    empty = sp.csr_matrix((n_new, data.n_items), dtype=np.float32)
    return data.with_fake_users(FakeProfiles(empty, np.zeros(0, dtype=np.int64)))


def apply_flips(data: Interactions, flips: np.ndarray) -> Interactions:
    """``data`` with each ``(user, item, new_value)`` row of ``flips`` applied (1 inserts an
    interaction, 0 removes one). Inserted edges get the latest timestamp of the data.

    Raises ConfigError for a flip outside the matrix, an insertion of an existing edge or a
    removal of a missing one (the graph stays a simple bipartite graph, thesis §3.3).
    """
    flips = np.asarray(flips, dtype=np.int64).reshape(-1, 3)
    users, items, values = flips.T
    if len(flips) and (
        users.min() < 0
        or users.max() >= data.n_users
        or items.min() < 0
        or items.max() >= data.n_items
    ):
        raise ConfigError(f"a flip lies outside the {data.n_users} x {data.n_items} matrix")
    if not np.isin(values, (0, 1)).all():
        raise ConfigError("a flip's new value must be 0 (remove) or 1 (insert)")
    keys = users * data.n_items + items
    if len(np.unique(keys)) != len(keys):
        raise ConfigError("the same edge is flipped twice")
    m = data.matrix
    rows = np.repeat(np.arange(data.n_users), np.diff(m.indptr))
    existing = rows * data.n_items + m.indices
    present = np.isin(keys, existing)
    if (present & (values == 1)).any():
        raise ConfigError("a flip inserts an edge that is already there")
    if (~present & (values == 0)).any():
        raise ConfigError("a flip removes an edge that is not there")
    keep = ~np.isin(existing, keys[values == 0])
    inserted = np.sort(keys[values == 1])
    all_keys = np.concatenate([existing[keep], inserted])
    order = np.argsort(all_keys, kind="stable")
    all_keys = all_keys[order]
    ratings = np.concatenate([m.data[keep], np.ones(len(inserted), dtype=np.float32)])[order]
    stamps = None
    if data.timestamps is not None:
        latest = data.timestamps.max() if len(data.timestamps) else 0
        extra = np.full(len(inserted), latest, dtype=data.timestamps.dtype)
        stamps = np.concatenate([data.timestamps[keep], extra])[order]
    new_rows = all_keys // data.n_items
    indptr = np.searchsorted(new_rows, np.arange(data.n_users + 1))
    matrix = sp.csr_matrix(
        (ratings, all_keys % data.n_items, indptr), shape=(data.n_users, data.n_items)
    )
    return data.replace(matrix=matrix, timestamps=stamps)
