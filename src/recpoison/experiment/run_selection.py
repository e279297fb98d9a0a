"""Which runs of a store a report covers, and the one spec they make together.

A grid is often filled piece by piece: one process per target type or per attack, each on the
same store, each its own run (a cell's key does not depend on the rest of its spec, so the
pieces never redo each other's cells). ``recpoison report --run 1 --run 4`` reports such runs
as one table. They must be pieces of one experiment: the same spec name, the same settings
outside the swept lists, and no dataset, victim, attack, target set or knowledge kind that two
runs name alike but configure differently (their rows would sit in one table as if they were
the same thing); anything else is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recpoison.errors import ConfigError, DataError
from recpoison.experiment.spec import Spec
from recpoison.experiment.store import Store

#: ``None`` (the latest run), one run id, or several.
RunSelection = int | Sequence[int] | None
#: The spec lists whose entries (by display name) may differ between merged runs.
_COMPONENT_LISTS = ("datasets", "victims", "attacks", "targets", "knowledge")
#: The spec lists of plain values merged as a union.
_VALUE_LISTS = ("sizes", "ks", "n_fillers")
#: Settings that do not change a cell's results and may differ between merged runs.
_FREE = {"name", "description", "device", "victim_quality"}


def selected_runs(store: Store, run: RunSelection) -> list[int]:
    """The run ids ``run`` names, in the order given, each checked to exist (default: the
    latest run)."""
    if run is None or (not isinstance(run, int) and len(run) == 0):
        return [store.latest_run()]
    runs = [run] if isinstance(run, int) else list(dict.fromkeys(run))
    known = [r["id"] for r in store.runs()]
    for run_id in runs:
        if run_id not in known:
            raise DataError(
                f"{store.path}: no run with id {run_id}; its runs: {', '.join(map(str, known))}"
            )
    return runs


def merged_spec(store: Store, runs: Sequence[int]) -> Spec:
    """The spec of ``runs`` together: the first run's, with the union of every run's datasets,
    victims, attacks, target sets, knowledge kinds, sizes, K and filler counts."""
    specs = [Spec.model_validate(store.run_spec(run)) for run in runs]
    first = specs[0]
    if len(specs) == 1:
        return first
    swept = _COMPONENT_LISTS + _VALUE_LISTS
    settings = first.model_dump(exclude={*swept, *_FREE})
    for run, spec in zip(runs[1:], specs[1:], strict=True):
        if spec.name != first.name:
            raise ConfigError(
                f"runs {runs[0]} and {run} are of different experiments ({first.name}, "
                f"{spec.name}): report them one at a time"
            )
        other = spec.model_dump(exclude={*swept, *_FREE})
        differing = [field for field in settings if settings[field] != other[field]]
        if differing:
            raise ConfigError(
                f"runs {runs[0]} and {run} differ in {', '.join(differing)}: their cells are not "
                "comparable; report them one at a time"
            )
    update: dict[str, Any] = {
        field: _merged_components(field, runs, specs) for field in _COMPONENT_LISTS
    }
    for field in _VALUE_LISTS:
        values = [v for spec in specs for v in (getattr(spec, field) or [])]
        update[field] = sorted(set(values)) if values else getattr(first, field)
    return first.model_copy(update=update)


def _merged_components(field: str, runs: Sequence[int], specs: Sequence[Spec]) -> list[Any]:
    """The entries of spec list ``field`` over ``specs``, first appearance first; the same
    display name must mean the same settings in every run."""
    merged: dict[str, tuple[int, Any]] = {}
    for run, spec in zip(runs, specs, strict=True):
        for component in getattr(spec, field):
            seen_run, seen = merged.setdefault(component.display, (run, component))
            if _identity(seen) != _identity(component):
                raise ConfigError(
                    f"runs {seen_run} and {run} both have {field} entry '{component.display}' "
                    "with different settings: report them one at a time"
                )
    return [component for _, component in merged.values()]


def _identity(component: Any) -> Any:
    """What determines a component's results (its ``key()`` where it has one: not the label)."""
    return component.key() if hasattr(component, "key") else component.model_dump()


def runs_label(runs: Sequence[int]) -> str:
    """``run 3`` or ``runs 1, 4, 5`` for headings and messages."""
    return f"run {runs[0]}" if len(runs) == 1 else f"runs {', '.join(map(str, runs))}"
