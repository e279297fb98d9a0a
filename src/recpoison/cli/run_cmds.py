"""`recpoison run`, `recpoison report` and `recpoison presets list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recpoison.cli.app import app
from recpoison.errors import ConfigError

if TYPE_CHECKING:
    from recpoison.experiment import Plan

STORE = Path("results.db")

presets_app = typer.Typer(help="Packaged experiment presets (YAML specs).", no_args_is_help=True)
app.add_typer(presets_app, name="presets")


def load_raw_spec(spec_or_preset: str) -> dict[str, Any]:
    """The raw mapping of a spec file (an existing path or a ``.yaml``/``.yml`` name) or a
    preset name."""
    from recpoison.experiment.spec import read_yaml
    from recpoison.presets import load_preset

    path = Path(spec_or_preset)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return read_yaml(path)
    return load_preset(spec_or_preset)


def replace_datasets(raw: dict[str, Any], source: str, fmt: str | None) -> dict[str, Any]:
    """``raw`` with its datasets replaced by ``source`` (keeping the first dataset's transforms,
    e.g. ``binarize`` for NeuMF)."""
    first = (raw.get("datasets") or [{}])[0]
    transforms = first.get("transforms", []) if isinstance(first, dict) else []
    return {**raw, "datasets": [{"source": source, "format": fmt, "transforms": transforms}]}


@app.command("run")
def run(
    spec_or_preset: Annotated[
        str,
        typer.Argument(
            metavar="SPEC_OR_PRESET",
            help="A YAML spec file or a preset name (`recpoison presets list`).",
        ),
    ],
    store: Annotated[Path, typer.Option("--store", help="SQLite results store.")] = STORE,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default: the spec's).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="local or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster to join: auto (the cluster `ray start` set up on this machine) "
            "or HOST:PORT of its head; default: a local Ray instance.",
        ),
    ] = None,
    cpus_per_task: Annotated[
        float | None,
        typer.Option(
            "--cpus-per-task",
            help="Ray: CPUs each cell's task asks for (default 1); torch uses that many threads.",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="Replace the spec's datasets by this source (transforms kept)."
        ),
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="File format of --dataset.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a spec field (YAML value, dotted path; repeatable), "
            "e.g. --set retrains=3 --set targets.count=5.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the spec, datasets and targets and list the cells the run would "
            "compute and those the store already holds; compute and write nothing.",
        ),
    ] = False,
) -> None:
    """Run an experiment (skipping cells already in the store) and print its table."""
    from recpoison.experiment import (
        build_report,
        plan_experiment,
        quality_report,
        run_experiment,
        to_markdown,
    )
    from recpoison.experiment.report import run_title
    from recpoison.experiment.spec import apply_overrides, parse_spec

    if fmt is not None and dataset is None:
        raise ConfigError("--format only applies with --dataset")
    raw = load_raw_spec(spec_or_preset)
    if dataset is not None:
        raw = replace_datasets(raw, dataset, fmt)
    spec = parse_spec(apply_overrides(raw, overrides or []))
    if dry_run:
        _print_plan(plan_experiment(spec, store), store)
        return
    summary = run_experiment(
        spec,
        store,
        backend=backend,
        device=device,
        progress=not quiet,
        address=address,
        cpus_per_task=cpus_per_task,
    )
    text = to_markdown(
        build_report(store, summary.run_id),
        quality_report(store, summary.run_id),
        run_title(store, summary.run_id),
    )
    typer.echo(text)
    typer.echo(
        f"wall time {summary.seconds:.1f} s: {summary.n_computed} cells computed, "
        f"{summary.n_skipped} already in {store} (run {summary.run_id})"
    )


def _print_plan(plan: Plan, store: Path) -> None:
    """The cells to compute, one per line, then those already stored, then the counts."""
    pending = plan.pending
    for cell in pending:
        typer.echo(f"to compute  {cell.describe()}")
    for cell in plan.cells:
        if cell.key in plan.stored:
            typer.echo(f"stored      {cell.describe()}")
    typer.echo(
        f"{plan.name}: {len(plan.cells)} cells, {len(pending)} to compute, "
        f"{len(plan.cells) - len(pending)} already in {store} (dry run: nothing computed)"
    )


@app.command("report")
def report(
    store: Annotated[Path, typer.Option("--store", help="SQLite results store.")] = STORE,
    fmt: Annotated[str, typer.Option("--format", help="markdown, csv or json.")] = "markdown",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to FILE instead of stdout.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="DIR", help="Also write PNG plots into DIR.")
    ] = None,
    run_ids: Annotated[
        list[int] | None,
        typer.Option(
            "--run",
            metavar="ID",
            help="Run id (default: the latest); repeat it to report several runs of one "
            "experiment as one table (a grid filled by several processes).",
        ),
    ] = None,
    paper: Annotated[
        bool,
        typer.Option(
            "--paper",
            help="The published figures beside ours, with Kendall's tau of the attacks' order "
            "per column.",
        ),
    ] = False,
    paper_source: Annotated[
        str | None,
        typer.Option(
            "--paper-source",
            metavar="PRESET|PAPER:TABLE",
            help="Whose figures --paper shows (default: the run's preset), e.g. huang2021:IV.",
        ),
    ] = None,
    paper_dataset: Annotated[
        str | None,
        typer.Option(
            "--paper-dataset",
            help="The paper's dataset to compare with (default: the one matching the run's "
            "dataset, else the paper's first), e.g. Music.",
        ),
    ] = None,
) -> None:
    """Tables (and plots) of the results in a store."""
    from recpoison.experiment import build_report, quality_report, write_plots, write_report
    from recpoison.experiment.paper import paper_comparison, write_paper_report
    from recpoison.experiment.report import run_title

    if not paper and (paper_source or paper_dataset):
        raise ConfigError("--paper-source and --paper-dataset only apply with --paper")
    run_id = run_ids or None
    table = build_report(store, run_id)
    if paper:
        comparison = paper_comparison(table, store, run_id, paper_source, paper_dataset)
        text = write_paper_report(comparison, fmt, out, run_title(store, run_id))
    else:
        quality = quality_report(store, run_id)
        text = write_report(table, fmt, out, quality, run_title(store, run_id))
    if out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {out}", err=True)
    if plot is not None:
        files = write_plots(table, plot)
        typer.echo(f"wrote {len(files)} plots to {plot}", err=True)


@presets_app.command("list")
def presets_list() -> None:
    """Name and one-line description of every preset."""
    from recpoison.presets import describe_presets

    described = describe_presets()
    width = max(map(len, described))
    for name, description in described.items():
        typer.echo(f"{name:<{width}}  {description}")


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name.")]) -> None:
    """Print the YAML of a preset (copy it to start your own spec)."""
    from recpoison.presets import preset_text

    typer.echo(preset_text(name), nl=False)
