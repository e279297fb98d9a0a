"""Execution backends: where cells run. Both call the same :func:`execute_cell`.

A backend first checks the device where the cells will run (:meth:`Backend.prepare`, before
the store is touched, so a missing GPU or an unreachable cluster changes nothing), then
:meth:`Backend.run` yields each cell's result, as ``(cell, outcome or exception)``, as soon as it
is ready; the runner, the one writer of the store, records it.

``local`` runs cells one after another in this process. ``ray`` submits every cell as a Ray task
and yields the results in completion order (``recpoison`` must be importable on the workers),
except that the cells of an attack whose sizes share their work
(:func:`~recpoison.experiment.cells.sharing_chain`) go as one task that runs them smallest size
first, so that each goes on from the one before as in the local backend (its results arrive
when the chain finishes). Both run cells with the attack checkpoint folder the runner gives
(:mod:`recpoison.experiment.progress`). Ray's resource model decides where tasks run:

- each task asks for ``cpus_per_task`` CPUs (default 1, Ray's default) and, on CUDA, one GPU;
  inside the task torch uses as many threads as the task was given CPUs;
- ``device: auto`` means CUDA when the cluster has GPUs (Ray hides the GPUs from a task that
  did not ask for one), ``cuda`` on a cluster without a GPU is a :class:`DeviceError`;
- each prepared dataset is put into Ray's object store once (``ray.put``) and every task gets a
  reference to it, instead of loading the file again or receiving a copy with its arguments;
- a task whose worker process dies (killed, out of memory, node lost) is resubmitted by Ray up to
  :data:`MAX_RETRIES` times; a cell that raises is not retried (its error is the result);
- when the consumer stops (Ctrl-C, an error) every task still pending is cancelled.

Ray is an optional extra: ``pip install recpoison[ray]``.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from recpoison.errors import ConfigError, DeviceError
from recpoison.experiment.cells import execute_cell, prepared_dataset, sharing_chain
from recpoison.experiment.expansion import Cell, CellOutcome
from recpoison.experiment.progress import ATTACK_PROGRESS
from recpoison.utils import resolve_device

logger = logging.getLogger(__name__)

CellStatus = Callable[[Cell, str], None]
Results = Iterator[tuple[Cell, CellOutcome | Exception]]

BACKENDS = ("local", "ray")
#: How often Ray resubmits a task whose worker died (Ray's own default, made explicit).
MAX_RETRIES = 3
#: Seconds the Ray driver blocks in one ``ray.wait``, so that Ctrl-C is handled promptly.
WAIT_SECONDS = 1.0


class Backend(Protocol):
    def prepare(self, device: str) -> str:
        """Check ``device`` where the cells will run; return the device the cells get."""

    def run(
        self, cells: Iterable[Cell], device: str, status: CellStatus, checkpoints: Path | None
    ) -> Results:
        """Execute the cells; yield each with its outcome (or exception) when it finishes.
        Size-sharing attacks keep their state in ``checkpoints`` (None: in memory only; see
        :mod:`recpoison.experiment.progress`)."""


def get_backend(
    name: str, address: str | None = None, cpus_per_task: float | None = None
) -> Backend:
    """The backend ``name``; checks that Ray is installed before any work is done."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if name == "local":
        for option, value in (("--address", address), ("--cpus-per-task", cpus_per_task)):
            if value is not None:
                raise ConfigError(f"{option} only applies to --backend ray")
        return LocalBackend()
    if cpus_per_task is not None and cpus_per_task <= 0:
        raise ConfigError(f"--cpus-per-task must be positive, got {cpus_per_task}")
    return RayBackend(_import_ray(), address, cpus_per_task or 1)


class LocalBackend:
    """Run the cells in this process, in order."""

    def prepare(self, device: str) -> str:
        resolve_device(device)
        return device

    def run(
        self, cells: Iterable[Cell], device: str, status: CellStatus, checkpoints: Path | None
    ) -> Results:
        for cell in cells:
            status(cell, "starting")
            try:
                with ATTACK_PROGRESS.persisted_in(checkpoints):
                    outcome: CellOutcome | Exception = execute_cell(
                        cell.config, device, status=lambda m, cell=cell: status(cell, m)
                    )
            except Exception as error:  # recorded by the runner
                outcome = error
            yield cell, outcome


@dataclass
class RayBackend:
    """Run every cell as a Ray task on the cluster at ``address`` (a local instance when None
    and Ray is not initialized yet; an initialized Ray is used as it is)."""

    ray: Any
    address: str | None = None
    cpus_per_task: float = 1

    def prepare(self, device: str) -> str:
        """Connect to Ray, then map ``device`` to what every task gets (see the module doc)."""
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address)
            except ConnectionError as error:
                raise ConfigError(
                    f"cannot reach a Ray cluster at {self.address!r} ({error}); start one "
                    "with `ray start --head`, or leave out --address for a local instance"
                ) from None
        elif self.address is not None:
            logger.info("Ray is already initialized; --address %s is not used", self.address)
        gpus = ray.cluster_resources().get("GPU", 0)
        if device == "auto":
            return "cuda" if gpus else "cpu"
        if device == "cpu":
            return device
        if device.startswith("cuda"):
            if not gpus:
                raise DeviceError(
                    f"device {device!r} was asked for but the Ray cluster has no GPU; "
                    "use --device cpu, or add GPU nodes to the cluster"
                )
            return "cuda"  # Ray gives each task one GPU, seen by the task as cuda:0
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")

    def task_options(self, device: str) -> dict[str, Any]:
        """The Ray resources and retry policy of one cell's task."""
        return {
            "num_cpus": self.cpus_per_task,
            "num_gpus": 1 if device.startswith("cuda") else 0,
            "max_retries": MAX_RETRIES,
            "retry_exceptions": False,
        }

    def run(
        self, cells: Iterable[Cell], device: str, status: CellStatus, checkpoints: Path | None
    ) -> Results:
        """Submit every cell, then yield results in completion order; cancel what is pending
        when the consumer stops. The tasks write checkpoints on the node they run on: on a
        cluster, a folder every node sees (a shared file system) lets any node resume."""
        ray = self.ray
        cell_function = execute_cell  # looked up now, so a substitute (tests) reaches the workers
        task = ray.remote(run_chain).options(**self.task_options(device))
        shared: dict[str, Any] = {}
        pending = {}
        for chain in chains(cells):
            data = self._dataset_ref(chain[0], shared)
            configs = [cell.config for cell in chain]
            ref = task.remote(cell_function, configs, device, data, checkpoints)
            pending[ref] = chain
            for cell in chain:
                status(cell, "submitted")
        logger.info("%d tasks submitted to Ray", len(pending))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    chain = pending.pop(ref)
                    try:
                        outcomes: list[CellOutcome | Exception] = ray.get(ref)
                    except Exception as error:
                        outcomes = [_original(ray, error)] * len(chain)
                    yield from zip(chain, outcomes, strict=True)
        finally:
            for ref in pending:
                ray.cancel(ref)
            if pending:
                logger.info("cancelled %d Ray tasks still pending", len(pending))

    def _dataset_ref(self, cell: Cell, shared: dict[str, Any]) -> Any:
        """The object-store reference of the cell's prepared dataset (put on first use)."""
        config = cell.config
        key = json.dumps([config["dataset"], config["seed"]], sort_keys=True)
        if key not in shared:
            shared[key] = self.ray.put(prepared_dataset(config["dataset"], config["seed"]))
        return shared[key]


def chains(cells: Iterable[Cell]) -> list[list[Cell]]:
    """The cells grouped into what one task runs, in submission order: the cells of one
    :func:`~recpoison.experiment.cells.sharing_chain` together, smallest size first; every other
    cell alone."""
    groups: dict[Any, list[Cell]] = {}
    for i, cell in enumerate(cells):
        key = sharing_chain(cell.config)
        groups.setdefault(i if key is None else ("chain", key), []).append(cell)
    return [sorted(group, key=lambda c: c.config.get("size", 0.0)) for group in groups.values()]


def run_chain(
    cell_function: Callable[..., CellOutcome],
    configs: list[dict[str, Any]],
    device: str,
    data: Any,
    checkpoints: Path | None,
) -> list[CellOutcome | Exception]:
    """One Ray task: the cells of one chain in order, on the task's CPUs, with the attacks'
    checkpoints in ``checkpoints``. A module function, so that the worker runs it with its own
    imported recpoison (a closure would carry copies of the driver's module state)."""
    use_task_cpus(_import_ray())
    outcomes: list[CellOutcome | Exception] = []
    with ATTACK_PROGRESS.persisted_in(checkpoints):
        for config in configs:
            try:
                outcomes.append(cell_function(config, device, data=data))
            except Exception as error:  # the chain's other cells still run
                outcomes.append(error)
    return outcomes


def use_task_cpus(ray: Any) -> int:
    """Inside a Ray task: run torch on as many threads as the task was given CPUs (at least 1)."""
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    return threads


def _original(ray: Any, error: Exception) -> Exception:
    """The exception a cell raised on its worker (Ray wraps it with the remote traceback);
    Ray's own errors (worker died more than ``MAX_RETRIES`` times, task cancelled) as they are."""
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, Exception):
        return error.cause
    return error


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("the ray backend needs `pip install recpoison[ray]`") from None
