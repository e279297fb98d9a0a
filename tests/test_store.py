"""The SQLite results store: schema, identification, atomic cells, failures."""

import sqlite3

import pytest

from recpoison.errors import DataError
from recpoison.experiment.expansion import Cell, CellOutcome
from recpoison.experiment.store import APPLICATION_ID, SCHEMA_VERSION, Store


def cell(name: str = "a") -> Cell:
    return Cell({"kind": "attack", "name": name}, {"dataset": "d", "attack": name})


def outcome(c: Cell, n_rows: int = 3) -> CellOutcome:
    rows = [
        {
            "target_index": 0,
            "target_id": "7",
            "target_type": "random",
            "retrain": r,
            "k": 10,
            "eligible": 50,
            "hits": r,
            "hr": r / 50,
        }
        for r in range(n_rows)
    ]
    return CellOutcome(c.key, results=rows, info={"n_fake": 3}, seconds=0.5)


def test_schema_is_created_and_identified(tmp_path):
    path = tmp_path / "r.db"
    with Store.open(path) as store:
        run = store.start_run("t", {"name": "t"}, [cell()])
        assert store.latest_run() == run and store.run_spec(run) == {"name": "t"}
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "runs", "cells", "run_cells", "results", "quality"} <= tables
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert int(meta["schema_version"]) == SCHEMA_VERSION


def test_cell_rows_and_done_status_are_written_together(tmp_path):
    c = cell()
    with Store.open(tmp_path / "r.db") as store:
        run = store.start_run("t", {}, [c])
        store.write_cell(c, outcome(c), run)
        assert store.done_keys() == {c.key}
        _, rows = store.query("SELECT count(*) FROM results WHERE cell_key = ?", (c.key,))
        assert rows == [(3,)]


def test_a_failing_write_leaves_no_half_cell(tmp_path):
    c = cell()
    bad = outcome(c)
    bad.results.append(dict(bad.results[0]))  # duplicate primary key -> IntegrityError
    with Store.open(tmp_path / "r.db") as store:
        run = store.start_run("t", {}, [c])
        with pytest.raises(sqlite3.IntegrityError):
            store.write_cell(c, bad, run)
        assert store.done_keys() == set()
        assert store.query("SELECT count(*) FROM results")[1] == [(0,)]
        assert store.query("SELECT count(*) FROM cells")[1] == [(0,)]


def test_failed_cells_are_recorded_and_retried(tmp_path):
    c = cell()
    with Store.open(tmp_path / "r.db") as store:
        run = store.start_run("t", {}, [c])
        store.mark_failed(c, ValueError("boom"), run)
        assert store.done_keys() == set()
        assert store.query("SELECT status, error FROM cells")[1] == [("failed", "ValueError: boom")]
        store.write_cell(c, outcome(c), run)
        assert store.done_keys() == {c.key}


def test_the_first_writer_of_a_cell_wins(tmp_path):
    c = cell()
    with Store.open(tmp_path / "r.db") as first, Store.open(tmp_path / "r.db") as second:
        run = first.start_run("t", {}, [c])
        assert first.write_cell(c, outcome(c), run)
        assert not second.write_cell(c, outcome(c), run)  # another run finished it meanwhile
        second.mark_failed(c, ValueError("late failure"), run)
        assert first.is_done(c.key)
        assert first.query("SELECT count(*) FROM results")[1] == [(3,)]
        assert first.query("SELECT status, error FROM cells")[1] == [("done", None)]


def test_reopening_keeps_everything(tmp_path):
    c = cell()
    path = tmp_path / "r.db"
    with Store.open(path) as store:
        store.write_cell(c, outcome(c), store.start_run("t", {}, [c]))
    with Store.open(path, create=False) as store:
        assert store.done_keys() == {c.key}
        assert [r["name"] for r in store.runs()] == ["t"]


def test_a_text_file_is_not_a_store(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(DataError, match="not a recpoison results store"):
        Store.open(path)
    assert path.read_text().startswith("these are my notes")  # left untouched


def test_another_sqlite_database_is_not_a_store(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(DataError, match="not a recpoison results store"):
        Store.open(path)


def test_schema_version_mismatch_and_missing_store(tmp_path):
    path = tmp_path / "r.db"
    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(DataError, match="schema version 99"):
        Store.open(path)
    with pytest.raises(DataError, match="no such results store"):
        Store.open(tmp_path / "missing.db", create=False)
