"""``recpoison components``: the registered victims, attacks and detectors, and their parameters."""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recpoison.attacks import ATTACKS, EdgeAttack, attack_class
from recpoison.cli.app import app
from recpoison.detectors import DETECTORS, detector_class
from recpoison.errors import ConfigError
from recpoison.registry import constructor_parameters, summary
from recpoison.victims import VICTIMS, victim_class

components_app = typer.Typer(
    help="The victims, attacks and detectors recpoison has, and each one's parameters.",
    no_args_is_help=True,
)
app.add_typer(components_app, name="components")

#: family -> (its registry, the function that imports a registered class)
FAMILIES: dict[str, tuple[Mapping[str, str], Callable[[str], type]]] = {
    "victims": (VICTIMS, victim_class),
    "attacks": (ATTACKS, attack_class),
    "detectors": (DETECTORS, detector_class),
}


def needs(family: str, cls: type) -> str:
    """What the component needs or offers: a victim's capabilities (the data it trains on and
    what attacks may use), an attack's requirements and kind."""
    if family == "victims":
        return ", ".join(sorted(getattr(cls, "capabilities", ())))
    if family == "attacks":
        kind = "edge flips" if issubclass(cls, EdgeAttack) else "fake users"
        parameter = next((p for p in constructor_parameters(cls) if p.name == "goal"), None)
        goal = (
            f"goal {parameter.default} unless set"
            if parameter
            else getattr(cls, "goal", "targeted")
        )
        return ", ".join([f"{kind}, {goal}", *sorted(getattr(cls, "requires", ()))])
    return ""


def describe(family: str, name: str) -> dict[str, Any]:
    """What ``recpoison components show --json`` prints for one component."""
    table, load = FAMILIES[family]
    cls = load(name)
    return {
        "family": family,
        "name": name,
        "class": table[name],
        "summary": summary(cls),
        "needs": needs(family, cls),
        "parameters": [asdict(p) for p in constructor_parameters(cls)],
    }


def find(name: str, family: str | None) -> str:
    """The family that registers ``name`` (``family`` when given); a one-line error otherwise."""
    families = [family] if family else list(FAMILIES)
    owners = [f for f in families if name in FAMILIES[f][0]]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise ConfigError(f"{name!r} is a name in {' and '.join(owners)}: add --family")
    known = [n for f in families for n in FAMILIES[f][0]]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = family or "victims, attacks or detectors"
    raise ConfigError(
        f"no component {name!r} in {where}{hint}; `recpoison components list` shows them all"
    )


def check_family(family: str | None) -> str | None:
    if family is not None and family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return family


FamilyOption = Annotated[
    str | None,
    typer.Option("--family", help=f"Only this family: {', '.join(FAMILIES)}."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@components_app.command("list")
def components_list(family: FamilyOption = None, as_json: JsonOption = False) -> None:
    """Every registered component with what it is and what it needs (one table per family)."""
    families = [check_family(family)] if family else list(FAMILIES)
    described = {f: [describe(f, name) for name in FAMILIES[f][0]] for f in families}
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    console = Console()
    for f, rows in described.items():
        table = Table(title=f"{f} (recpoison components show NAME for the parameters)")
        table.add_column("name", style="bold", no_wrap=True)
        middle = {"victims": "capabilities", "attacks": "kind / needs"}.get(f)
        if middle:
            table.add_column(middle)
        table.add_column("what it is")
        for row in rows:
            cells = [row["name"], escape(row["needs"])] if middle else [row["name"]]
            table.add_row(*cells, escape(row["summary"]))
        console.print(table)


@components_app.command("show")
def components_show(
    name: Annotated[str, typer.Argument(help="Component name, e.g. poison-model or neumf.")],
    family: FamilyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A component's description and its parameters with their defaults, as a spec's
    ``params:`` or ``--param key=value`` takes them."""
    owner = find(name, check_family(family))
    described = describe(owner, name)
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    _, load = FAMILIES[owner]
    console = Console()
    console.print(f"[bold]{escape(name)}[/bold] ({owner[:-1]}, {escape(described['class'])})")
    if described["needs"]:
        console.print(escape(described["needs"]))
    console.print(escape(inspect.getdoc(load(name)) or ""), highlight=False)
    table = Table(title="parameters")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("default")
    table.add_column("type")
    for parameter in described["parameters"]:
        default = parameter["default"]
        table.add_row(
            parameter["name"], "required" if default is None else escape(default),
            escape(parameter["annotation"]),
        )  # fmt: skip
    console.print(table)
