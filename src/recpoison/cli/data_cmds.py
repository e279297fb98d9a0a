"""``recpoison datasets``: list the bundled datasets and file formats, describe a dataset."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recpoison.cli.app import app
from recpoison.data.interactions import Interactions
from recpoison.data.loaders import BUNDLED, FORMATS, load_dataset, parse_columns
from recpoison.data.transforms import default_unpopular_threshold, unpopular_items

datasets_app = typer.Typer(
    help="List the bundled datasets and file formats; describe a dataset.",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def list_datasets() -> None:
    """Show the bundled datasets (no download needed) and the file formats that can be read."""
    console = Console()
    bundled = Table(title="Bundled datasets")
    bundled.add_column("name", style="bold")
    bundled.add_column("description")
    for name, description in BUNDLED.items():
        bundled.add_row(name, escape(description))
    formats = Table(title="File formats (recpoison datasets info PATH [--format FORMAT])")
    formats.add_column("format", style="bold")
    formats.add_column("description")
    for name, description in FORMATS.items():
        formats.add_row(name, escape(description))
    console.print(bundled)
    console.print(formats)


@datasets_app.command("info")
def info(
    source: Annotated[str, typer.Argument(help="Bundled dataset name, ratings file or folder.")],
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"File format: {', '.join(FORMATS)} (default: from the file name).",
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Column names for csv/parquet, e.g. user=uid,item=iid,rating=stars.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Users, items, ratings, density, rating scale and timestamps of a dataset."""
    data = load_dataset(source, format_, parse_columns(columns) if columns else None)
    summary = summarize(data)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=escape(source), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, escape(_plain(value)))
    Console().print(table)


def summarize(data: Interactions) -> dict[str, Any]:
    """JSON-ready description of a dataset, as printed by ``recpoison datasets info``."""
    per_user = np.diff(data.matrix.indptr)
    per_item = data.matrix.getnnz(axis=0)
    threshold = default_unpopular_threshold(data)
    return {
        "name": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "ratings": data.n_ratings,
        "density": data.density,
        "rating_scale": list(data.rating_scale) if data.rating_scale else None,
        "implicit": data.is_implicit,
        "timestamps": data.timestamps is not None,
        "fake_users": data.n_fake,
        "ratings_per_user": _spread(per_user),
        "ratings_per_item": _spread(per_item),
        "unpopular_threshold": threshold,
        "unpopular_items": len(unpopular_items(data, threshold)),
    }


def _spread(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())}


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:g}" for k, v in value.items())
    if value is None:
        return "none (implicit)"
    return str(value)
