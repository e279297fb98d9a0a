"""`recpoison train`: fit a victim on a dataset and report its quality."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.progress import Progress

from recpoison.cli.app import app
from recpoison.errors import ConfigError
from recpoison.utils import resolve_device
from recpoison.victims import victim_class


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=5", "layers=[32,16]"]`` -> ``{"epochs": 5, "layers": [32, 16]}`` (YAML values)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {pair!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


@app.command("train")
def train(
    source: str = typer.Argument(..., help="Bundled dataset name or path to a ratings file."),
    format: str | None = typer.Option(None, "--format", help="File format (see `datasets list`)."),
    columns: str | None = typer.Option(None, help="CSV columns, e.g. user=uid,item=iid,rating=r"),
    victim: str = typer.Option(
        "neumf", help="Victim name (all: recpoison components list), or your class as module:Class."
    ),
    epochs: int | None = typer.Option(
        None, help="Training epochs (the victim's default if unset)."
    ),
    replicas: int = typer.Option(1, help="Independent models trained together, seeds differ."),
    param: list[str] | None = typer.Option(None, "--param", help="Victim parameter key=value."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Random seed of the split and the models."),
    k: int = typer.Option(10, help="Cut-off of HR@K / NDCG@K."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train a victim on SOURCE; print leave-one-out HR@K / NDCG@K (and RMSE if explicit)."""
    from recpoison.data.loaders import load_dataset, parse_columns
    from recpoison.data.transforms import binarize, holdout_split, leave_one_out
    from recpoison.metrics import leave_one_out_hr_ndcg

    cls = victim_class(victim)
    resolve_device(device)  # fail before loading data or drawing a progress bar
    params = parse_params(param or [])
    if epochs is not None:
        params["epochs" if "epochs" in inspect.signature(cls).parameters else "iterations"] = epochs
    data = load_dataset(source, format=format, columns=parse_columns(columns) if columns else None)
    if "implicit" in cls.capabilities and "explicit" not in cls.capabilities:
        data = binarize(data)
    elif data.is_implicit and "implicit" not in cls.capabilities:
        raise ConfigError(f"victim {victim!r} needs explicit ratings; {data.name} is implicit")
    model = cls(n_replicas=replicas, random_state=seed, device=device, **params)
    train_data, test_items = leave_one_out(data, random_state=seed)
    started = time.perf_counter()
    console = Console(stderr=True, quiet=as_json)
    # a bar only on a terminal: piped or logged, rich would leave a blank line on stderr
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"training {victim} x{replicas}", total=None)
        fit_kwargs: dict[str, Any] = {}
        fit_params = inspect.signature(model.fit).parameters
        if "progress" in fit_params:
            fit_kwargs["progress"] = lambda done, total: bar.update(
                task, completed=done, total=total
            )
        if "exclude_items" in fit_params:
            fit_kwargs["exclude_items"] = test_items
        model.fit(train_data, **fit_kwargs)
    seconds = time.perf_counter() - started
    quality = leave_one_out_hr_ndcg(model, train_data, test_items, k=k, random_state=seed)
    result: dict[str, Any] = {
        "dataset": data.name,
        "victim": victim,
        "replicas": replicas,
        "k": k,
        f"hr_at_{k}": float(np.mean(quality["hr"])),
        f"ndcg_at_{k}": float(np.mean(quality["ndcg"])),
        f"hr_at_{k}_std": float(np.std(quality["hr"])),
        f"ndcg_at_{k}_std": float(np.std(quality["ndcg"])),
        "users_evaluated": int(quality["users"]),
        "seconds": round(seconds, 3),
    }
    if not data.is_implicit:
        from recpoison.utilities import rmse

        fit_train, fit_test = holdout_split(data, test_fraction=0.1, random_state=seed)
        explicit_model = cls(n_replicas=replicas, random_state=seed, device=device, **params)
        result["rmse"] = float(np.mean(rmse(explicit_model.fit(fit_train), fit_test)))
    if as_json:
        typer.echo(json.dumps(result))
        return
    out = Console()
    out.print(
        f"[bold]{victim}[/] on {data.name}: {data.n_users} users, {data.n_items} items, "
        f"{data.n_ratings} ratings; {replicas} replica(s), seed {seed}"
    )
    out.print(f"HR@{k}   {result[f'hr_at_{k}']:.4f} ± {result[f'hr_at_{k}_std']:.4f}")
    out.print(f"NDCG@{k} {result[f'ndcg_at_{k}']:.4f} ± {result[f'ndcg_at_{k}_std']:.4f}")
    if "rmse" in result:
        out.print(f"RMSE    {result['rmse']:.4f} (10 % random hold-out)")
    out.print(f"trained in {seconds:.1f} s")
