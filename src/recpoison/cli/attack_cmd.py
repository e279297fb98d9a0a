"""`recpoison attack`: craft fake users against a dataset and write the poisoned dataset."""

from __future__ import annotations

import inspect
import json
import logging
import time
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from recpoison.attacks.base import EdgeAttack
from recpoison.cli.app import app
from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import check_random_state, derive_seed, resolve_device

logger = logging.getLogger(__name__)

TARGETS_HELP = (
    "Target items: original item ids separated by commas (e.g. 50,181), "
    "random:N (N items uniformly at random) or unpopular:N (N items with fewer "
    "ratings than the dataset's unpopularity threshold)."
)


@app.command("attack")
def attack(
    source: Annotated[str, typer.Argument(help="Bundled dataset name or path to a ratings file.")],
    attack_name: Annotated[
        str,
        typer.Option(
            "--attack",
            help="Attack name, e.g. random or poison-model (all: recpoison components list).",
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="File to write the poisoned dataset to.")],
    size: Annotated[
        float | None,
        typer.Option(
            "--size",
            help="Fake users as a fraction of the real users, e.g. 0.05 for 5 %; for edge "
            "attacks (meta, ...) the flips as a fraction of the real users' interactions.",
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", help="Edge attacks: the number of flips (instead of --size)."),
    ] = None,
    targets: Annotated[
        str | None, typer.Option("--targets", help=TARGETS_HELP + " Not for edge attacks.")
    ] = None,
    out_format: Annotated[
        str, typer.Option("--format", help="Output format: csv or recbole.")
    ] = "csv",
    fillers: Annotated[int, typer.Option("--fillers", help="Filler items per fake user.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of targets and attack.")] = 0,
    binarize_data: Annotated[
        bool,
        typer.Option(
            "--binarize/--no-binarize",
            help="Make the data implicit first (as Huang et al. do for NeuMF); by default ratings "
            "are kept and fake users get ratings on the data's scale.",
        ),
    ] = False,
    surrogate: Annotated[
        str | None,
        typer.Option(
            "--surrogate",
            help="Victim the attacker assumes, for attacks that need one (default neumf; "
            "meta attacks: gmf).",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="Training epochs of the surrogate (its default if unset)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    in_format: Annotated[
        str | None,
        typer.Option("--input-format", help="Format of SOURCE (default: from the file name)."),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="CSV columns of SOURCE, e.g. user=uid,item=iid,rating=r"),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Extra attack parameter key=value (YAML value), repeatable, "
            "e.g. --param fake_per_step=5",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Generate fake users with an attack and write SOURCE plus the fake users to --out.

    Every fake user promotes all the target items. The file keeps the original ids.

    Fake users get new ids, listed in <out>.fake_users.txt (and csv's is_fake column).
    Edge attacks (meta, meta-approx, ...) instead write SOURCE with edges flipped.
    """
    from recpoison.attacks import attack_class
    from recpoison.attacks.ratings import filler_popularity
    from recpoison.cli.train_cmd import parse_params
    from recpoison.data.export import EXPORT_FORMATS, fake_users_path, write_poisoned
    from recpoison.data.loaders import load_dataset, parse_columns
    from recpoison.data.transforms import binarize

    started = time.perf_counter()
    if out_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown --format {out_format!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    cls = attack_class(attack_name)
    if isinstance(cls, type) and issubclass(cls, EdgeAttack):
        if targets is not None:
            raise ConfigError(
                f"{attack_name} is untargeted (it flips edges, no target items); drop --targets"
            )
        edge_attack(
            cls,
            source,
            out,
            size,
            budget,
            seed,
            surrogate,
            epochs,
            device,
            param,
            as_json,
            out_format,
            in_format,
            columns,
        )
        return
    if size is None:
        raise ConfigError(f"attack {attack_name!r} needs --size (a fraction of the real users)")
    check_fraction(size, "the real users")
    if targets is None:
        raise ConfigError(f"attack {attack_name!r} needs --targets")
    params = attack_params(cls, {"n_fillers": fillers, **parse_params(param or [])})
    resolve_device(device)
    data = load_dataset(
        source, format=in_format, columns=parse_columns(columns) if columns else None
    )
    if binarize_data:
        data = binarize(data)
    rng = check_random_state(seed)
    target_index = parse_targets(targets, data, rng)
    n_fake = max(1, round(size * data.n_real))
    model = None
    if "surrogate" in cls.requires:
        model = make_surrogate(surrogate or "neumf", epochs, device, derive_seed(rng))
    fake = cls(**params).generate(
        data, target_index, n_fake, surrogate=model, random_state=derive_seed(rng)
    )
    poisoned = data.with_fake_users(fake)
    path = write_poisoned(poisoned, out, format=out_format)
    summary: dict[str, Any] = {
        "dataset": data.name,
        "attack": attack_name,
        "real_users": data.n_real,
        "fake_users": n_fake,
        "size": size,
        "fillers": fillers,
        "targets": [_plain(i) for i in data.item_ids[target_index]],
        "out": str(path),
        "fake_users_file": str(fake_users_path(path)),
        "format": out_format,
        "filler_popularity": round(filler_popularity(data, fake), 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if "surrogate_hr" in fake.info:
        summary["surrogate_hr"] = fake.info["surrogate_hr"]
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = Console()
    console.print(
        f"[bold]{escape(attack_name)}[/] attack on {escape(data.name)}: {n_fake} fake "
        f"users ({size * 100:g} % of {data.n_real} real users), {fillers} fillers each"
    )
    console.print(f"targets (original ids): {escape(', '.join(map(str, summary['targets'])))}")
    if "surrogate_hr" in summary:
        hr = summary["surrogate_hr"]
        after = "not measured" if hr["after"] is None else f"{hr['after']:.4f}"
        console.print(f"surrogate HR_t@{hr['k']}: {hr['before']:.4f} before, {after} after")
    console.print(
        f"wrote {escape(str(path))} ({out_format}) and "
        f"{escape(str(fake_users_path(path)))} in {summary['seconds']:.1f} s"
    )


def edge_attack(
    cls: type[EdgeAttack],
    source: str,
    out: str,
    size: float | None,
    budget: int | None,
    seed: int,
    surrogate: str | None,
    epochs: int | None,
    device: str,
    param: list[str] | None,
    as_json: bool,
    out_format: str,
    in_format: str | None,
    columns: str | None,
) -> None:
    """Flip edges of SOURCE with an edge attack and write the perturbed data to ``out``.

    The budget is ``--budget`` flips, or ``--size`` times the real users' interactions (the
    thesis samples as many negatives as interactions, so this is also the fraction of the
    sampled negatives, Table 4.19)."""
    from recpoison.cli.train_cmd import parse_params
    from recpoison.data.export import fake_users_path, write_poisoned
    from recpoison.data.loaders import load_dataset, parse_columns
    from recpoison.data.transforms import binarize

    started = time.perf_counter()
    if (size is None) == (budget is None):
        raise ConfigError(f"{cls.name} needs either --budget N (flips) or --size FRACTION")
    if size is not None:
        check_fraction(size, "the real users' interactions")
    params = attack_params(cls, parse_params(param or []))
    resolve_device(device)
    data = load_dataset(
        source, format=in_format, columns=parse_columns(columns) if columns else None
    )
    data = binarize(data) if not data.is_implicit else data
    n_flips = budget if budget is not None else max(1, round(size * data.real_users().n_ratings))
    rng = check_random_state(seed)
    model = None
    if surrogate is not None:
        model = make_surrogate(surrogate, epochs, device, derive_seed(rng))
    result = cls(**params).perturb(data, n_flips, surrogate=model, random_state=derive_seed(rng))
    path = write_poisoned(result.data, out, format=out_format)
    summary: dict[str, Any] = {
        "dataset": data.name,
        "attack": cls.name,
        "budget": n_flips,
        "flips": result.n_flips,
        "interactions": data.n_ratings,
        "appended_users": result.data.n_users - data.n_users,
        "out": str(path),
        "fake_users_file": str(fake_users_path(path)),
        "format": out_format,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    Console().print(
        f"[bold]{escape(cls.name)}[/] on {escape(data.name)}: {result.n_flips} edges flipped "
        f"({data.n_ratings} interactions); wrote {escape(str(path))} in "
        f"{summary['seconds']:.1f} s"
    )


def check_fraction(size: float, of_what: str) -> None:
    """Refuse a --size outside (0, 1], the runner's rule for ``sizes`` (5 means 500 %, not 5 %)."""
    if not 0 < size <= 1:
        raise ConfigError(
            f"--size is a fraction of {of_what} in (0, 1] (0.05 for 5 %), got {size:g}"
        )


def attack_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked against the attack's constructor: unknown keys are a ConfigError."""
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"attack {cls.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid)}"
        )
    return params


def make_surrogate(name: str, epochs: int | None, device: str, seed: int) -> Any:
    """The unfitted victim the attacker assumes (one replica; the attack fits it)."""
    from recpoison.victims import make_victim, victim_class

    params: dict[str, Any] = {"random_state": seed, "device": device}
    if epochs is not None:
        if "epochs" not in inspect.signature(victim_class(name)).parameters:
            raise ConfigError(f"--epochs does not apply to surrogate {name!r}")
        params["epochs"] = epochs
    return make_victim(name, **params)


def parse_targets(spec: str, data: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Item indices from ``IDS`` (original ids, comma-separated), ``random:N`` or
    ``unpopular:N`` (see ``TARGETS_HELP``); choices are drawn from ``rng``."""
    from recpoison.data.transforms import default_unpopular_threshold, unpopular_items

    kind, sep, count = spec.partition(":")
    if sep and kind in ("random", "unpopular"):
        n = _count(count, spec)
        if kind == "random":
            pool = np.arange(data.n_items)
        else:
            threshold = default_unpopular_threshold(data)
            pool = unpopular_items(data, threshold)
            if len(pool) < n:
                raise ConfigError(
                    f"--targets {spec}: only {len(pool)} unpopular items (fewer "
                    f"than {threshold} ratings) in {data.name}"
                )
        if n > len(pool):
            raise ConfigError(f"--targets {spec}: the data has only {len(pool)} items")
        return np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)
    tokens = [t.strip() for t in spec.split(",")]
    if not spec.strip() or any(not t for t in tokens):
        raise ConfigError(
            f"--targets {spec!r}: expected item ids separated by commas, random:N or unpopular:N"
        )
    index = {str(_plain(item)): i for i, item in enumerate(data.item_ids)}
    missing = [t for t in tokens if t not in index]
    if missing:
        raise ConfigError(
            f"target item id {missing[0]!r} is not in {data.name} "
            f"({data.n_items} items; ids are the original item ids of the file)"
        )
    return np.unique([index[t] for t in tokens]).astype(np.int64)


def _count(text: str, spec: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--targets {spec!r}: the count must be a positive integer")
    return n


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (for JSON and for matching ids typed on the command line)."""
    return value.item() if isinstance(value, np.generic) else value
