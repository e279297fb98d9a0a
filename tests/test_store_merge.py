"""Merging results stores: a grid filled in several stores reports as the one-store grid."""

import sqlite3

import pandas as pd
import pytest

from recpoison.errors import DataError
from recpoison.experiment import Store, build_report, expand_cells, parse_spec
from recpoison.experiment.expansion import CellOutcome
from recpoison.experiment.report import DIMENSIONS
from recpoison.experiment.store_merge import merge_store

SPEC = {
    "name": "grid",
    "datasets": [{"source": "ml-latest-small", "transforms": ["binarize"]}],
    "victims": [{"name": "neumf"}],
    "attacks": [{"name": "none"}, {"name": "random"}, {"name": "bandwagon"}],
    "sizes": [0.01, 0.03],
    "targets": [{"type": "random", "count": 2}],
    "retrains": 2,
    "ks": [10],
    "victim_quality": False,
}
HITS = {"none": 1, "random": 3, "bandwagon": 5}


def fabricate(cell) -> CellOutcome:
    """Hits that tell the attack, size, target and retrain apart."""
    attack, size = cell.labels["attack"], cell.labels["size"]
    rows = [
        {
            "target_index": t,
            "target_id": str(10 + t),
            "target_type": "random",
            "retrain": r,
            "k": 10,
            "eligible": 100,
            "hits": HITS[attack] + int(100 * size) + t + r,
            "hr": (HITS[attack] + int(100 * size) + t + r) / 100,
        }
        for t in range(2)
        for r in range(2)
    ]
    return CellOutcome(cell.key, results=rows, info={"n_fake": round(size * 600)}, seconds=1.0)


def counts(path) -> dict[str, int]:
    db = sqlite3.connect(path)
    tables = ("runs", "cells", "run_cells", "results", "quality")
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def merged(destination, *sources):
    with Store.open(destination) as into:
        summaries = []
        for source in sources:
            with Store.open(source, create=False) as read:
                summaries.append(merge_store(into, read))
    return summaries


@pytest.fixture
def pieces(tmp_path, store_of_runs):
    """The grid in one store, and in two stores of one piece each (they share the none cell)."""
    store_of_runs(tmp_path / "whole.db", [SPEC], fabricate)
    store_of_runs(tmp_path / "gpu.db", [{**SPEC, "attacks": SPEC["attacks"][:2]}], fabricate)
    cpu = {**SPEC, "attacks": [SPEC["attacks"][0], SPEC["attacks"][2]]}
    store_of_runs(tmp_path / "cpu.db", [cpu], fabricate)
    return tmp_path


def sorted_report(path, runs=None) -> pd.DataFrame:
    table = build_report(path, runs)
    return table.sort_values(list(DIMENSIONS)).reset_index(drop=True)


def test_two_stores_merged_report_as_the_grid_in_one_store(pieces):
    gpu, cpu = merged(pieces / "all.db", pieces / "gpu.db", pieces / "cpu.db")
    assert (gpu.runs, gpu.new_runs, gpu.cells_added, gpu.cells_kept) == ({1: 1}, [1], 3, 0)
    assert (cpu.runs, cpu.new_runs, cpu.cells_added, cpu.cells_kept) == ({1: 2}, [2], 2, 1)
    pd.testing.assert_frame_equal(
        sorted_report(pieces / "all.db", [1, 2]), sorted_report(pieces / "whole.db")
    )
    with Store.open(pieces / "all.db", create=False) as store:
        listed = store.runs()
    assert [(r["id"], r["name"], r["cells"], r["done"]) for r in listed] == [
        (1, "grid", 3, 3),
        (2, "grid", 3, 3),
    ]


def test_merging_again_changes_nothing(pieces):
    merged(pieces / "all.db", pieces / "gpu.db", pieces / "cpu.db")
    before = counts(pieces / "all.db")
    again = merged(pieces / "all.db", pieces / "cpu.db", pieces / "gpu.db")
    assert [s.new_runs for s in again] == [[], []]
    assert [s.runs for s in again] == [{1: 2}, {1: 1}]
    assert [s.cells_added for s in again] == [0, 0]
    assert counts(pieces / "all.db") == before


def test_the_sources_are_only_read(pieces):
    before = (pieces / "gpu.db").read_bytes()
    merged(pieces / "all.db", pieces / "gpu.db")
    assert (pieces / "gpu.db").read_bytes() == before


def test_a_finished_cell_replaces_a_failed_one_and_never_the_reverse(tmp_path):
    spec = parse_spec({**SPEC, "attacks": [{"name": "random"}], "sizes": [0.01]})
    cells = expand_cells(spec)
    done_there, failed_there = cells[0], cells[1]  # the none cell and the random cell
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        run_a = a.start_run(spec.name, spec.to_json(), cells)
        a.write_cell(done_there, fabricate(done_there), run_a)
        a.mark_failed(failed_there, ValueError("out of memory"), run_a)
        run_b = b.start_run(spec.name, spec.to_json(), cells)
        b.mark_failed(done_there, ValueError("late"), run_b)
        b.write_cell(failed_there, fabricate(failed_there), run_b)
        summary = merge_store(a, b)
        assert (summary.cells_added, summary.cells_kept, summary.failed_added) == (1, 0, 0)
        assert a.done_keys() == {done_there.key, failed_there.key}
        _, rows = a.query("SELECT key, error FROM cells WHERE error IS NOT NULL")
        assert rows == []
        _, rows = a.query("SELECT count(*) FROM results WHERE cell_key = ?", (failed_there.key,))
        assert rows == [(4,)]


def test_a_failed_merge_leaves_the_destination_as_it_was(pieces, monkeypatch):
    merged(pieces / "all.db", pieces / "gpu.db")
    before = counts(pieces / "all.db")
    import recpoison.experiment.store_merge as module

    copy_rows = module._copy_rows
    calls = []

    def fail_on_the_second_cell(*args):
        calls.append(args)
        if len(calls) > 2:
            raise KeyboardInterrupt
        copy_rows(*args)

    monkeypatch.setattr(module, "_copy_rows", fail_on_the_second_cell)
    with pytest.raises(KeyboardInterrupt):
        merged(pieces / "all.db", pieces / "cpu.db")
    assert counts(pieces / "all.db") == before


def test_bad_stores_are_refused_in_one_line(pieces):
    with pytest.raises(DataError, match="cannot merge a store into itself"):
        merged(pieces / "gpu.db", pieces / "gpu.db")
    notes = pieces / "notes.db"
    notes.write_text("not a database\n" * 40)
    with pytest.raises(DataError, match="not a recpoison results store"):
        merged(pieces / "all.db", notes)
    with pytest.raises(DataError, match="no such results store"):
        merged(pieces / "all.db", pieces / "missing.db")


def test_cli_merges_lists_runs_and_says_how_to_report(pieces, cli):
    gpu_before = (pieces / "gpu.db").read_bytes()
    code, out, _ = cli(
        "merge", str(pieces / "gpu.db"), str(pieces / "cpu.db"), "--store", str(pieces / "all.db")
    )
    assert code == 0
    into = pieces / "all.db"
    assert out.splitlines() == [
        f"{pieces / 'gpu.db'}: runs 1 -> 1; 3 cells added, 0 already in {into}",
        f"{pieces / 'cpu.db'}: runs 1 -> 2; 2 cells added, 1 already in {into}",
        f"report them as one table: recpoison report --store {into} --run 1 --run 2",
    ]
    code, out, _ = cli("runs", "--store", str(pieces / "all.db"))
    assert code == 0
    assert [line.split()[:5] for line in out.splitlines()[1:]] == [
        ["1", "grid", "3", "0", "3"],
        ["2", "grid", "3", "0", "3"],
    ]
    code, _, err = cli("merge", str(pieces / "missing.db"), "--store", str(pieces / "all.db"))
    assert code == 2 and err.count("\n") == 1 and "no such results store" in err
    assert (pieces / "gpu.db").read_bytes() == gpu_before
