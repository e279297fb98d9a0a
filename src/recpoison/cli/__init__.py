"""The ``recpoison`` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from recpoison import __version__
from recpoison.cli.app import app
from recpoison.cli.threads import choose_threads
from recpoison.errors import RecpoisonError


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recpoison {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for model training (default: OMP_NUM_THREADS if set, else one per "
        "core that the load average shows idle). On a machine other jobs share, 1 is often "
        "many times faster.",
    ),
) -> None:
    """Data-poisoning attacks on recommender systems, and defenses against them."""
    choose_threads(threads)


# Command modules register themselves on `app` when imported (one line each, explicit).
from recpoison.cli import (  # noqa: E402
    attack_cmd,  # noqa: F401
    components_cmd,  # noqa: F401
    data_cmds,  # noqa: F401
    detect_cmd,  # noqa: F401
    run_cmds,  # noqa: F401
    store_cmds,  # noqa: F401
    train_cmd,  # noqa: F401
)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2.

    Usage errors (unknown option, missing argument) are click's, also exit code 2.
    """
    try:
        app()
    except RecpoisonError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
