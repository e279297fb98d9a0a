"""Run an experiment: validate, expand into cells, skip finished ones, execute, store.

Everything that can be checked is checked before the first cell runs: the spec, the backend (Ray
installed?), the datasets (loaded and transformed once here), the data-dependent pairings, the
target sets and the device (where the cells run: here, or on the Ray cluster). The runner is the
only writer of the store; each finished cell is written in one transaction as soon as the backend
yields it, so an interrupted run resumes where it stopped. A cell that raises is recorded as
failed and the run goes on with the others; the first error is raised at the end (the next run
retries the failed cells). Several runs may share one store at the same time (e.g. one per target
set, each in its own process): with the local backend a cell another run finished meanwhile is
skipped when its turn comes, and a cell both computed is stored once (the first writer wins).
The cells' attacks keep their step-by-step state in ``<store>.progress/`` beside the store
(:mod:`recpoison.experiment.progress`), so an interrupted cell of a size-sharing attack goes on
from its last checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recpoison.experiment.backends import Results, get_backend
from recpoison.experiment.cells import prepared_dataset, resolve_targets
from recpoison.experiment.expansion import Cell, expand_cells
from recpoison.experiment.progress import progress_folder
from recpoison.experiment.spec import Spec, check_data_pairings, parse_spec
from recpoison.experiment.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a run did: its id in the store, how many cells it has, computed and skipped."""

    run_id: int
    store_path: Path
    n_cells: int
    n_computed: int
    n_skipped: int
    seconds: float


@dataclass(frozen=True)
class Plan:
    """What a run of ``spec`` on a store would do: every cell, and the keys of those the store
    already holds (they would be skipped)."""

    name: str
    cells: list[Cell]
    stored: frozenset[str]

    @property
    def pending(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.key not in self.stored]


def plan_experiment(spec: Spec | Mapping[str, Any], store_path: str | Path) -> Plan:
    """The cells of ``spec`` and which of them the store at ``store_path`` already holds,
    checked as a run checks them (datasets, pairings, target sets) but with nothing computed
    and no run recorded; a store that does not exist is not created."""
    spec = spec if isinstance(spec, Spec) else parse_spec(spec)
    cells = _checked_cells(spec)
    stored: set[str] = set()
    if Path(store_path).exists():
        with Store.open(store_path, create=False) as store:
            stored = store.done_keys() & {cell.key for cell in cells}
    return Plan(spec.name, cells, frozenset(stored))


def run_experiment(
    spec: Spec | Mapping[str, Any],
    store_path: str | Path,
    backend: str = "local",
    device: str | None = None,
    progress: bool = True,
    address: str | None = None,
    cpus_per_task: float | None = None,
) -> RunSummary:
    """Run every cell of ``spec`` not yet in the store at ``store_path``.

    ``device`` overrides ``spec.device``; ``backend`` is ``local`` or ``ray`` (``address`` is
    passed to ``ray.init``, ``cpus_per_task`` is each Ray task's CPUs, see
    :mod:`recpoison.experiment.backends`); ``progress`` shows a progress bar on stderr. A failing
    cell is recorded as failed, the other cells go on, and the first error is raised at the end.
    """
    start = time.perf_counter()
    spec = spec if isinstance(spec, Spec) else parse_spec(spec)
    execute = get_backend(backend, address, cpus_per_task)
    cells = _checked_cells(spec)
    device = execute.prepare(device or spec.device)
    with Store.open(store_path) as store:
        run_id = store.start_run(spec.name, spec.to_json(), cells)
        pending = Plan(spec.name, cells, frozenset(store.done_keys())).pending
        logger.info(
            "run %d of %s: %d cells, %d already done",
            run_id,
            spec.name,
            len(cells),
            len(cells) - len(pending),
        )
        with (
            _reporter(progress, len(cells), len(cells) - len(pending)) as report,
            # closing: however the loop ends (Ctrl-C included), the backend cancels its work
            closing(
                execute.run(
                    _not_done(pending, store, report),
                    device,
                    report.status,
                    progress_folder(store_path),
                )
            ) as results,
        ):
            failures = _record(results, store, report, run_id)
        if failures:
            logger.error(
                "%d of %d cells failed (recorded in %s); run again to retry them",
                len(failures),
                len(cells),
                store_path,
            )
            raise failures[0]
        store.finish_run(run_id)
    return RunSummary(
        run_id,
        Path(store_path),
        len(cells),
        len(pending),
        len(cells) - len(pending),
        time.perf_counter() - start,
    )


def _record(results: Results, store: Store, report: _Reporter, run_id: int) -> list[Exception]:
    """Store each cell's outcome as the backend yields it; return the errors of failed cells."""
    failures: list[Exception] = []
    for cell, outcome in results:
        if isinstance(outcome, Exception):
            store.mark_failed(cell, outcome, run_id)
            report.failed(cell, outcome)
            failures.append(outcome)
            continue
        if not store.write_cell(cell, outcome, run_id):
            logger.info("%s was stored by another run meanwhile", cell.describe())
        report.done(cell, outcome.seconds)
    return failures


def _not_done(cells: list[Cell], store: Store, report: _Reporter) -> Iterator[Cell]:
    """The cells, except those another run on the same store finished since this run began
    (checked when each cell's turn comes)."""
    for cell in cells:
        if store.is_done(cell.key):
            report.skipped(cell)
            continue
        yield cell


def _checked_cells(spec: Spec) -> list[Cell]:
    """The cells of ``spec``, after loading every dataset once and checking pairings and
    target sets (before any training: a run and a dry run check the same)."""
    cells = expand_cells(spec)
    datasets = [prepared_dataset(d.model_dump(mode="json"), spec.seed) for d in spec.datasets]
    check_data_pairings(spec, datasets)
    checked: set[str] = set()
    for cell in cells:
        config = cell.config
        if config["kind"] != "attack":
            continue
        marker = repr((config["dataset"], config["targets"]))
        if marker not in checked:
            checked.add(marker)
            resolve_targets(prepared_dataset(config["dataset"], spec.seed), config)
    return cells


class _Reporter:
    """Progress over cells: a rich bar (stderr) or log lines."""

    def __init__(self, bar: Progress | None, total: int, skipped: int) -> None:
        self.bar = bar
        self.task = bar.add_task("cells", total=total, completed=skipped) if bar else None

    def status(self, cell: Cell, message: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=f"{cell.describe()}: {message}")
        logger.debug("%s: %s", cell.describe(), message)

    def done(self, cell: Cell, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=cell.describe())
        logger.info("done %s in %.1f s", cell.describe(), seconds)

    def failed(self, cell: Cell, error: Exception) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"{cell.describe()}: failed")
        logger.error("failed %s: %s: %s", cell.describe(), type(error).__name__, error)

    def skipped(self, cell: Cell) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=cell.describe())
        logger.info("skipped %s: another run on the store finished it", cell.describe())


@contextmanager
def _reporter(show: bool, total: int, skipped: int) -> Iterator[_Reporter]:
    if not show:
        yield _Reporter(None, total, skipped)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield _Reporter(bar, total, skipped)
