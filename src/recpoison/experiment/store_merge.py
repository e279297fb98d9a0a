"""One store from several: the pieces of a grid computed on different machines.

A grid is often filled in several stores: the neural cells on a lent GPU, the rest on CPUs, or
one store per machine of a cluster without a shared disk. A cell's key is the SHA-256 of its
resolved config and the recpoison version (:mod:`recpoison.experiment.expansion`), so the same
key in two stores names the same computation, and copying cells from one store into another
can neither mix up nor duplicate results.

:func:`merge_store` copies a source store into a destination, in one transaction (an error or
Ctrl-C leaves the destination as it was):

- every run of the source, under a new id, with the cells it expands to. A run the destination
  already holds (same name, spec, recpoison version and start time: an earlier merge of the
  same source) is recognised and not copied again, so merging twice changes nothing;
- every cell the source finished that the destination does not hold finished, with its result
  and quality rows. A cell finished in both is kept as the destination has it (the first writer
  wins, as when two processes share one store); a finished cell replaces a failed one;
- a failed cell (its error message) only where the destination has no row for it at all.

The source is only read. The merged runs then report as one table with ``recpoison report
--run A --run B`` (:mod:`recpoison.experiment.run_selection` checks that they are pieces of
one experiment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from recpoison.errors import DataError
from recpoison.experiment.store import QUALITY_COLUMNS, RESULT_COLUMNS, Store

_RUN_COLUMNS = ("name", "spec_json", "recpoison_version", "started", "finished")
_CELL_COLUMNS = (
    "key",
    "kind",
    "config_json",
    "status",
    "seconds",
    "info_json",
    "error",
    "run_id",
    "finished",
)


@dataclass
class MergeSummary:
    """What one :func:`merge_store` call did.

    ``runs`` maps each source run id to its id in the destination (new or already there);
    ``new_runs`` lists the destination ids created; ``cells_added`` counts the finished cells
    copied, ``cells_kept`` the finished cells the destination already held, ``failed_added``
    the failed cells copied.
    """

    runs: dict[int, int] = field(default_factory=dict)
    new_runs: list[int] = field(default_factory=list)
    cells_added: int = 0
    cells_kept: int = 0
    failed_added: int = 0


def merge_store(destination: Store, source: Store) -> MergeSummary:
    """Copy ``source``'s runs and cells into ``destination`` (see the module docstring)."""
    if os.path.samefile(destination.path, source.path):  # both files exist once opened
        raise DataError(f"{source.path}: cannot merge a store into itself; pass another --store")
    summary = MergeSummary()
    with destination.connection as db:
        db.execute("BEGIN IMMEDIATE")
        for row in source.connection.execute(
            f"SELECT id, {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY id"
        ):
            summary.runs[row[0]] = _copied_run(db, row[1:], summary)
        statuses = dict(db.execute("SELECT key, status FROM cells"))
        for row in source.connection.execute(f"SELECT {', '.join(_CELL_COLUMNS)} FROM cells"):
            cell = dict(zip(_CELL_COLUMNS, row, strict=True))
            held = statuses.get(cell["key"])
            if held == "done":
                summary.cells_kept += cell["status"] == "done"
                continue
            if cell["status"] != "done" and held is not None:
                continue
            cell["run_id"] = summary.runs.get(cell["run_id"])
            db.execute(
                f"INSERT OR REPLACE INTO cells ({', '.join(_CELL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_CELL_COLUMNS))})",
                tuple(cell.values()),
            )
            if cell["status"] == "done":
                _copy_rows(db, source, "results", RESULT_COLUMNS, cell["key"])
                _copy_rows(db, source, "quality", QUALITY_COLUMNS, cell["key"])
                summary.cells_added += 1
            else:
                summary.failed_added += 1
        for run_id, new_id in summary.runs.items():
            db.executemany(
                "INSERT OR IGNORE INTO run_cells VALUES (?, ?, ?)",
                [
                    (new_id, key, labels)
                    for key, labels in source.connection.execute(
                        "SELECT cell_key, labels_json FROM run_cells WHERE run_id = ?", (run_id,)
                    )
                ],
            )
    return summary


def _copied_run(db, run: tuple, summary: MergeSummary) -> int:
    """The destination id of a source run: the one already there, else a new one."""
    name, spec_json, version, started, finished = run
    held = db.execute(
        "SELECT id FROM runs WHERE name = ? AND spec_json = ? AND recpoison_version = ? "
        "AND started = ?",
        (name, spec_json, version, started),
    ).fetchone()
    if held is not None:
        if finished is not None:
            db.execute("UPDATE runs SET finished = ? WHERE id = ?", (finished, held[0]))
        return int(held[0])
    cursor = db.execute(f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES (?, ?, ?, ?, ?)", run)
    summary.new_runs.append(int(cursor.lastrowid))
    return int(cursor.lastrowid)


def _copy_rows(db, source: Store, table: str, columns: tuple[str, ...], key: str) -> None:
    """Copy one cell's rows of ``table`` from ``source``."""
    names = ", ".join(columns)
    rows = source.connection.execute(
        f"SELECT cell_key, {names} FROM {table} WHERE cell_key = ?", (key,)
    )
    db.executemany(
        f"INSERT INTO {table} (cell_key, {names}) VALUES (?{', ?' * len(columns)})", rows
    )
