"""`recpoison runs` (what a store holds) and `recpoison merge` (several stores into one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recpoison.cli.app import app
from recpoison.cli.run_cmds import STORE


@app.command("runs")
def runs(
    store: Annotated[Path, typer.Option("--store", help="SQLite results store.")] = STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The runs in a store: id (for `report --run`), experiment, cells done / failed / total;
    then the attack checkpoints beside it (how far an unfinished attack got)."""
    from recpoison.experiment import Store
    from recpoison.experiment.progress import checkpoints_in, progress_folder

    with Store.open(store, create=False) as db:
        listed = db.runs()
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        typer.echo(f"{store} holds no run yet")
        return
    typer.echo(f"{'id':>4}  {'experiment':<24} {'done':>5} {'failed':>6} {'cells':>6}  started")
    for run in listed:
        state = "" if run["finished"] else "  (unfinished)"
        typer.echo(
            f"{run['id']:>4}  {run['name']:<24} {run['done']:>5} {run['failed']:>6} "
            f"{run['cells']:>6}  {run['started']}{state}"
        )
    folder = progress_folder(store)
    checkpoints = checkpoints_in(folder)
    if checkpoints:
        typer.echo(f"attack checkpoints in {folder} (a run goes on from them):")
    for checkpoint in checkpoints:
        counts, unit = checkpoint.done, checkpoint.unit
        if len(set(counts)) == 1 and counts[0] is not None:
            made = f"{counts[0]} {unit}" + (" per target set" if len(counts) > 1 else "")
        else:
            made = f"{unit} per target set " + ", ".join(
                "-" if n is None else str(n) for n in counts
            )
        typer.echo(f"  {checkpoint.attack}: {made}, written {checkpoint.written}")


@app.command("merge")
def merge(
    sources: Annotated[
        list[Path], typer.Argument(help="Stores to copy from (they are only read).")
    ],
    store: Annotated[
        Path, typer.Option("--store", help="The store to merge into (created if absent).")
    ] = STORE,
) -> None:
    """Copy the runs and finished cells of SOURCES into --store, to report a grid filled in
    several stores as one table. A cell already finished in --store is kept as it is."""
    from recpoison.experiment import Store
    from recpoison.experiment.store_merge import merge_store

    opened = []
    try:
        for source in sources:
            opened.append(Store.open(source, create=False))
        with Store.open(store) as destination:
            merged_runs: list[int] = []
            for source in opened:
                summary = merge_store(destination, source)
                mapping = ", ".join(f"{old} -> {new}" for old, new in summary.runs.items())
                typer.echo(
                    f"{source.path}: runs {mapping or 'none'}; {summary.cells_added} cells "
                    f"added, {summary.cells_kept} already in {store}"
                    + (f", {summary.failed_added} failed cells" if summary.failed_added else "")
                )
                merged_runs += [r for r in summary.runs.values() if r not in merged_runs]
    finally:
        for source in opened:
            source.close()
    if merged_runs:
        flags = " ".join(f"--run {run}" for run in merged_runs)
        typer.echo(f"report them as one table: recpoison report --store {store} {flags}")
