"""The typer application object shared by every command module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="recpoison",
    help="Data-poisoning attacks on recommender systems, and defenses against them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
