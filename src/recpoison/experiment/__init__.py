"""Experiments: a validated spec expanded into cells, run by a backend, stored in SQLite and
reported as tables and plots.

>>> from recpoison.experiment import load_spec, run_experiment, build_report
>>> summary = run_experiment(load_spec("my-spec.yaml"), "results.db")   # doctest: +SKIP
>>> build_report("results.db")                                          # doctest: +SKIP
"""

from recpoison.experiment.cells import execute_cell
from recpoison.experiment.expansion import Cell, CellOutcome, expand_cells
from recpoison.experiment.plots import write_plots
from recpoison.experiment.report import build_report, quality_report, to_markdown, write_report
from recpoison.experiment.runner import Plan, RunSummary, plan_experiment, run_experiment
from recpoison.experiment.spec import Spec, load_spec, parse_spec
from recpoison.experiment.store import Store

__all__ = [
    "Cell",
    "CellOutcome",
    "Plan",
    "RunSummary",
    "Spec",
    "Store",
    "build_report",
    "execute_cell",
    "expand_cells",
    "load_spec",
    "parse_spec",
    "plan_experiment",
    "quality_report",
    "run_experiment",
    "to_markdown",
    "write_plots",
    "write_report",
]
