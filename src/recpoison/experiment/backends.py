"""Execution backends: where cells run. Both call the same :func:`execute_cell`.

A backend is a generator ``(cells, device, status) -> (cell, outcome or exception)`` that yields
each cell's result as soon as it is ready; the runner, the one writer of the store, records it.
A failing cell is yielded with its exception (the runner records and raises it); Ctrl-C simply
propagates. ``local`` runs cells one after another in this process; ``ray`` submits every cell
as a Ray task (``recpoison`` must be importable on the workers) and yields them in completion
order. Ray is an optional extra: ``pip install recpoison[ray]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from recpoison.errors import ConfigError
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.expansion import Cell, CellOutcome

CellStatus = Callable[[Cell, str], None]
Results = Iterator[tuple[Cell, CellOutcome | Exception]]
Backend = Callable[[Iterable[Cell], str, CellStatus], Results]

BACKENDS = ("local", "ray")


def get_backend(name: str, address: str | None = None) -> Backend:
    """The backend ``name``; checks that Ray is installed before any work is done."""
    if name == "local":
        return run_local
    if name == "ray":
        ray = _import_ray()
        return lambda cells, device, status: run_ray(ray, cells, device, address)
    raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")


def run_local(cells: Iterable[Cell], device: str, status: CellStatus) -> Results:
    """Run the cells in this process, in order."""
    for cell in cells:
        status(cell, "starting")
        try:
            outcome: CellOutcome | Exception = execute_cell(
                cell.config, device, status=lambda message, cell=cell: status(cell, message)
            )
        except Exception as error:  # recorded by the runner, then raised
            outcome = error
        yield cell, outcome


def run_ray(ray: Any, cells: Iterable[Cell], device: str, address: str | None) -> Results:
    """Run every cell as a Ray task (one GPU each when ``device`` is CUDA); yield as they finish.

    Tasks still pending when the consumer stops (an error, Ctrl-C) are cancelled.
    """
    ray.init(address=address, ignore_reinit_error=True)
    options = {"num_gpus": 1} if device.startswith("cuda") else {}
    task = ray.remote(**options)(execute_cell) if options else ray.remote(execute_cell)
    pending = {task.remote(cell.config, device): cell for cell in cells}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    outcome: CellOutcome | Exception = ray.get(ref)
                except Exception as error:  # a RayTaskError is also an instance of the cause
                    outcome = error
                yield cell, outcome
    finally:
        for ref in pending:
            ray.cancel(ref)


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("the ray backend needs `pip install recpoison[ray]`") from None
