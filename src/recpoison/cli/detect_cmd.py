"""``recpoison detect``: flag the fake users of a poisoned dataset with a leak-free detector."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from recpoison.cli.app import app
from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError, DataError

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def read_poisoned_csv(path: Path) -> tuple[Interactions, bool]:
    """``(data, fake_known)`` from a CSV with columns user, item, rating[, timestamp][, is_fake].

    Stand-in for ``recpoison.data.export.read_poisoned`` until that exists: ratings are read by
    ``load_dataset`` (validation, rating scale = the data's (min, max)); the per-user ``is_fake``
    column, when present, becomes ``Interactions.is_fake`` and ``fake_known`` is True.
    """
    from recpoison.data.loaders import load_dataset

    data = load_dataset(str(path), format="csv")
    header = pd.read_csv(path, nrows=0).columns.str.strip()
    if "is_fake" not in header:
        return data, False
    frame = pd.read_csv(path, usecols=lambda c: c.strip() in ("user", "is_fake"), dtype=str)
    frame.columns = frame.columns.str.strip()
    flag = frame["is_fake"].str.strip().str.lower()
    bad = ~flag.isin(_TRUE | _FALSE)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}, line {row + 2}: is_fake must be true/false or 1/0, "
            f"got {frame['is_fake'].iloc[row]!r}"
        )
    users = frame["user"].str.strip()
    if np.issubdtype(data.user_ids.dtype, np.integer):  # the loader made the ids integers
        users = pd.to_numeric(users).astype(np.int64)
    per_user = flag.isin(_TRUE).groupby(users).agg(["min", "max"])
    mixed = per_user.index[per_user["min"] != per_user["max"]]
    if len(mixed):
        raise DataError(f"{path}: user {mixed[0]!r} has rows with is_fake true and false")
    is_fake = per_user["max"].reindex(data.user_ids).to_numpy(dtype=bool)
    return data.replace(is_fake=is_fake), True


def _number(value: float) -> float | None:
    """JSON-friendly: NaN becomes null."""
    return None if math.isnan(value) else round(value, 6)


@app.command("detect")
def detect(
    poisoned_file: Annotated[
        Path,
        typer.Argument(
            help="Poisoned ratings CSV (user,item,rating[,timestamp][,is_fake]), e.g. from "
            "`recpoison attack --out`."
        ),
    ],
    detector: Annotated[str, typer.Option(help="svm-tia, svm-features or ttest.")] = "svm-tia",
    train_attack: Annotated[
        str, typer.Option(help="Attack that generates the detector's training fake users.")
    ] = "random",
    train_fake: Annotated[
        int | None,
        typer.Option(
            help="Training fake users (as many normal users are sampled); default "
            "min(300, normal users)."
        ),
    ] = None,
    train_fillers: Annotated[
        int | None,
        typer.Option(
            help="Filler items per training fake user (default: the median number of ratings per "
            "user in the file, minus 1 for the target)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Detector parameter key=value, e.g. tau=5 (repeatable)."),
    ] = None,
    assumed_size: Annotated[
        float,
        typer.Option(
            help="Without an is_fake column: the attack size (fraction of users) assumed when "
            "featurizing training fake users."
        ),
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the training set and the detector.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Write the dataset without the flagged users to this CSV.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train DETECTOR leak-free and flag the fake users of POISONED_FILE.

    The detector is trained on fake users that TRAIN_ATTACK generates (for random target items)
    on the file's normal users, plus as many sampled normal users. When the file has an is_fake
    column, its fake users are never used for training, training features are computed as if
    the attack had that many fake users, and FPR / FNR are reported; without it, every user is
    presumed normal for training (unknown fake users then add label noise) and the attack size
    is assumed to be ASSUMED_SIZE.
    """
    from recpoison.attacks import make_attack
    from recpoison.cli.train_cmd import parse_params
    from recpoison.detectors.protocol import (
        build_training_set,
        evaluate_detector,
        remove_flagged,
        train_detector,
    )

    if not poisoned_file.is_file():
        raise DataError(f"{poisoned_file}: no such file; give a CSV written by `recpoison attack`")
    data, fake_known = read_poisoned_csv(poisoned_file)
    params = parse_params(param or [])
    if train_fillers is None:
        # Profile-length features (WDA) tie an SVM to the filler count it was trained on; a
        # defender who cannot know the attack's count assumes fake users mimic typical lengths.
        train_fillers = max(1, int(np.median(np.diff(data.matrix.indptr))) - 1)
    attack = make_attack(train_attack, n_fillers=train_fillers)
    no_targets = np.empty(0, dtype=np.int64)  # the evaluated targets are not in the file
    if fake_known:
        result = evaluate_detector(
            detector,
            params,
            data.real_users(),
            data,
            attack,
            data.n_fake,
            no_targets,
            n_train_fake=train_fake,
            random_state=seed,
        )
        flagged, fpr, fnr = result.flagged, result.fpr, result.fnr
    else:
        if not 0 < assumed_size < 1:
            raise ConfigError(f"--assumed-size must be a fraction in (0, 1), got {assumed_size}")
        training = build_training_set(
            data,
            attack,
            no_targets,
            n_train_fake=train_fake,
            group_size=max(1, round(assumed_size * data.n_users)),
            random_state=seed,
        )
        flagged = train_detector(detector, params, training, random_state=seed).flag(data)
        fpr = fnr = float("nan")
    summary: dict[str, Any] = {
        "file": str(poisoned_file),
        "detector": detector,
        "train_attack": train_attack,
        "train_fillers": train_fillers,
        "users": data.n_users,
        "fake": data.n_fake if fake_known else None,
        "flagged": int(flagged.sum()),
        "fpr": _number(fpr),
        "fnr": _number(fnr),
    }
    if out is not None:
        remove_flagged(data, flagged).to_frame().to_csv(out, index=False)
        summary["out"] = str(out)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    known = f" ({data.n_fake} marked fake)" if fake_known else " (fake users not marked)"
    typer.echo(f"{data.n_users} users{known}; {detector} flagged {summary['flagged']}")
    if fake_known:
        typer.echo(f"FPR {summary['fpr']}  FNR {summary['fnr']}")
    if out is not None:
        typer.echo(f"wrote {data.n_users - summary['flagged']} users to {out}")
