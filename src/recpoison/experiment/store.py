"""The results store: one SQLite file (stdlib ``sqlite3``, WAL mode), one writer.

Schema (version 1; ``PRAGMA application_id`` is ``0x52504F49``, "RPOI"):

``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``schema_version`` and ``created_by`` (recpoison version that created the file).
``runs(id INTEGER PRIMARY KEY, name, spec_json, recpoison_version, started, finished)``
    One row per ``recpoison run``: the resolved spec (defaults filled in), ISO timestamps
    (``finished`` stays NULL for an interrupted run).
``cells(key TEXT PRIMARY KEY, kind, config_json, status, seconds, info_json, error, run_id,
finished)``
    ``key`` is the SHA-256 of the cell's resolved config and the recpoison version; ``kind`` is
    ``attack`` or ``quality``; ``status`` is ``done`` or ``failed`` (with ``error``); ``info_json``
    holds the attack's ``FakeProfiles.info`` per target and the detector's info (and, where they
    apply, the explicit utilities, the remedy's info and the untargeted metrics per retrain:
    see :mod:`recpoison.experiment.measures`); ``run_id`` is the run that computed it.
``run_cells(run_id, cell_key, labels_json)``
    Which cells each run's spec expands to, with their report labels (dataset, victim, attack,
    size, target type, knowledge, fillers, surrogate, detector). A cell computed by an earlier run
    is shared, not recomputed.
``results(cell_key, target_index, target_id, target_type, retrain, k, eligible, hits, hr, rmse,
eligible_detected, hits_detected, hr_detected, fpr, fnr)``
    One row per (cell, target, retrain, K): ``hr = hits / eligible`` (NULL without eligible
    users); ``rmse`` for explicit victims; the ``*_detected`` columns, ``fpr`` and ``fnr`` only
    with a detector.
``quality(cell_key, retrain, k, hr, ndcg, users, negatives)``
    Leave-one-out HR@K / NDCG@K of each clean victim replica over ``users`` users, each ranking
    the held-out item against ``negatives`` sampled items.

A cell's rows are inserted in one transaction together with marking it ``done``, so an
interrupted run (Ctrl-C, ``kill -9``) never leaves half a cell; finished cells are skipped when a
run is repeated. Nothing is ever deleted: a failing cell only records its error.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recpoison import __version__
from recpoison.errors import DataError
from recpoison.experiment.expansion import Cell, CellOutcome, jsonable

SCHEMA_VERSION = 1
APPLICATION_ID = 0x52504F49

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, spec_json TEXT NOT NULL,
    recpoison_version TEXT NOT NULL, started TEXT NOT NULL, finished TEXT);
CREATE TABLE cells (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, config_json TEXT NOT NULL, status TEXT NOT NULL,
    seconds REAL, info_json TEXT, error TEXT, run_id INTEGER REFERENCES runs(id), finished TEXT);
CREATE TABLE run_cells (
    run_id INTEGER NOT NULL REFERENCES runs(id), cell_key TEXT NOT NULL,
    labels_json TEXT NOT NULL, PRIMARY KEY (run_id, cell_key));
CREATE TABLE results (
    cell_key TEXT NOT NULL REFERENCES cells(key), target_index INTEGER NOT NULL,
    target_id TEXT NOT NULL, target_type TEXT NOT NULL, retrain INTEGER NOT NULL,
    k INTEGER NOT NULL, eligible INTEGER NOT NULL, hits INTEGER NOT NULL, hr REAL, rmse REAL,
    eligible_detected INTEGER, hits_detected INTEGER, hr_detected REAL, fpr REAL, fnr REAL,
    PRIMARY KEY (cell_key, target_index, retrain, k));
CREATE TABLE quality (
    cell_key TEXT NOT NULL REFERENCES cells(key), retrain INTEGER NOT NULL, k INTEGER NOT NULL,
    hr REAL, ndcg REAL, users INTEGER, negatives INTEGER, PRIMARY KEY (cell_key, retrain));
"""

RESULT_COLUMNS = (
    "target_index",
    "target_id",
    "target_type",
    "retrain",
    "k",
    "eligible",
    "hits",
    "hr",
    "rmse",
    "eligible_detected",
    "hits_detected",
    "hr_detected",
    "fpr",
    "fnr",
)
QUALITY_COLUMNS = ("retrain", "k", "hr", "ndcg", "users", "negatives")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Store:
    """A results database. Open with :meth:`open`; use as a context manager to close it."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        """Open (or create) a store; a file that is not a recpoison store raises DataError."""
        path = Path(path)
        if not path.exists() and not create:
            raise DataError(f"{path}: no such results store; run `recpoison run` first")
        if path.is_dir():
            raise DataError(f"{path} is a folder, not a results store")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(path, timeout=30)
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise DataError(f"{path} is not a recpoison results store ({error})") from None
        store = cls(connection, path)
        if not tables and application_id == 0:
            store._create()
        elif application_id != APPLICATION_ID or "meta" not in tables:
            connection.close()
            raise DataError(
                f"{path} is an SQLite database but not a recpoison results store; "
                "pass another --store"
            )
        store._check_version()
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        return store

    def _create(self) -> None:
        with self.connection:
            self.connection.executescript(_SCHEMA)
            self.connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.connection.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created_by", __version__)],
            )

    def _check_version(self) -> None:
        row = self.connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = "none" if row is None else row[0]
            raise DataError(
                f"{self.path}: results store schema version {found}, this recpoison "
                f"reads version {SCHEMA_VERSION}; use a new --store"
            )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connection:
            yield self.connection

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, name: str, spec_json: dict[str, Any], cells: Iterable[Cell]) -> int:
        """Record a run, its resolved spec and the cells it expands to; return its id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (name, spec_json, recpoison_version, started) VALUES (?,?,?,?)",
                (name, json.dumps(spec_json, sort_keys=True), __version__, _now()),
            )
            run_id = int(cursor.lastrowid)
            db.executemany(
                "INSERT OR IGNORE INTO run_cells VALUES (?, ?, ?)",
                [(run_id, cell.key, json.dumps(cell.labels, default=jsonable)) for cell in cells],
            )
        return run_id

    def finish_run(self, run_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET finished = ? WHERE id = ?", (_now(), run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first: id, name, version, started, finished, and of the cells its
        spec expands to how many there are (``cells``), are ``done`` and ``failed`` (by any
        run on this store)."""
        query = (
            "SELECT r.id, r.name, r.recpoison_version, r.started, r.finished, "
            "count(rc.cell_key), coalesce(sum(c.status = 'done'), 0), "
            "coalesce(sum(c.status = 'failed'), 0) FROM runs r "
            "LEFT JOIN run_cells rc ON rc.run_id = r.id LEFT JOIN cells c ON c.key = rc.cell_key "
            "GROUP BY r.id ORDER BY r.id"
        )
        names = (
            "id",
            "name",
            "recpoison_version",
            "started",
            "finished",
            "cells",
            "done",
            "failed",
        )
        return [dict(zip(names, row, strict=True)) for row in self.connection.execute(query)]

    def run_spec(self, run_id: int) -> dict[str, Any]:
        row = self.connection.execute(
            "SELECT spec_json FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise DataError(f"{self.path}: no run with id {run_id}")
        return json.loads(row[0])

    def latest_run(self) -> int:
        row = self.connection.execute("SELECT max(id) FROM runs").fetchone()
        if row[0] is None:
            raise DataError(f"{self.path} holds no run yet; run `recpoison run` first")
        return int(row[0])

    # -- cells ----------------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        return {
            row[0] for row in self.connection.execute("SELECT key FROM cells WHERE status = 'done'")
        }

    def is_done(self, key: str) -> bool:
        """Whether cell ``key`` is finished (by any run on this store)."""
        row = self.connection.execute(
            "SELECT 1 FROM cells WHERE key = ? AND status = 'done'", (key,)
        )
        return row.fetchone() is not None

    @staticmethod
    def _claimed(db: sqlite3.Connection, key: str) -> bool:
        """Start a write transaction (so no other process writes until it ends) and say whether
        cell ``key`` is already done."""
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT 1 FROM cells WHERE key = ? AND status = 'done'", (key,))
        return row.fetchone() is not None

    def write_cell(self, cell: Cell, outcome: CellOutcome, run_id: int) -> bool:
        """Insert a finished cell's rows and mark it done, in one transaction.

        The first writer wins: when the cell is already done (another run on the same store
        finished it meanwhile) nothing is written and False is returned, so results are never
        duplicated.
        """
        if outcome.key != cell.key:
            raise ValueError(f"outcome of cell {outcome.key[:12]} written as {cell.key[:12]}")
        with self._transaction() as db:
            if self._claimed(db, cell.key):
                return False
            db.execute(
                "INSERT OR REPLACE INTO cells (key, kind, config_json, status, seconds, info_json,"
                " error, run_id, finished) VALUES (?, ?, ?, 'done', ?, ?, NULL, ?, ?)",
                (
                    cell.key,
                    cell.kind,
                    json.dumps(cell.config, sort_keys=True),
                    outcome.seconds,
                    json.dumps(outcome.info, default=jsonable),
                    run_id,
                    _now(),
                ),
            )
            db.executemany(
                f"INSERT INTO results (cell_key, {', '.join(RESULT_COLUMNS)}) "
                f"VALUES (?{', ?' * len(RESULT_COLUMNS)})",
                [(cell.key, *(row.get(c) for c in RESULT_COLUMNS)) for row in outcome.results],
            )
            db.executemany(
                f"INSERT INTO quality (cell_key, {', '.join(QUALITY_COLUMNS)}) "
                f"VALUES (?{', ?' * len(QUALITY_COLUMNS)})",
                [(cell.key, *(row[c] for c in QUALITY_COLUMNS)) for row in outcome.quality],
            )
        return True

    def mark_failed(self, cell: Cell, error: BaseException, run_id: int) -> None:
        """Record that a cell failed (no result rows; it is retried by the next run), unless
        another run on the same store finished it."""
        with self._transaction() as db:
            if self._claimed(db, cell.key):
                return
            db.execute(
                "INSERT OR REPLACE INTO cells (key, kind, config_json, status, error, run_id,"
                " finished) VALUES (?, ?, ?, 'failed', ?, ?, ?)",
                (
                    cell.key,
                    cell.kind,
                    json.dumps(cell.config, sort_keys=True),
                    f"{type(error).__name__}: {error}",
                    run_id,
                    _now(),
                ),
            )

    # -- reading --------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a read-only query (used by the report)."""
        cursor = self.connection.execute(sql, params)
        return [d[0] for d in cursor.description], cursor.fetchall()
