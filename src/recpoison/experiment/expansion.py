"""Cells: the units of work an experiment spec expands into, and their store keys.

A cell is one (dataset, victim, attack, size, target set, knowledge, filler count) combination,
or one victim-quality measurement per (dataset, victim). Its ``config`` is JSON-compatible and
holds everything that determines its numbers; its key is the SHA-256 of that config and the
recpoison version. :mod:`recpoison.experiment.cells` runs one. Random choices are seeded with
:func:`stable_seed` (SHA-256, never Python's ``hash()``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recpoison import __version__
from recpoison.experiment.edge_spec import is_untargeted
from recpoison.experiment.spec import NO_ATTACK, ComponentSpec, Spec, attack_class_or_none


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from JSON-serializable parts, identical across processes and machines."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=jsonable)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def config_key(config: dict[str, Any]) -> str:
    """The store key of a cell: SHA-256 of its config and the recpoison version."""
    text = json.dumps(
        {"config": config, "version": __version__},
        sort_keys=True,
        separators=(",", ":"),
        default=jsonable,
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One unit of work: ``config`` determines the numbers, ``labels`` only name them."""

    config: dict[str, Any]
    labels: dict[str, Any]

    @functools.cached_property
    def key(self) -> str:
        return config_key(self.config)

    @property
    def kind(self) -> str:
        return self.config["kind"]

    def describe(self) -> str:
        """A short human-readable name for progress bars and logs."""
        lab = self.labels
        if self.kind == "quality":
            return f"quality {lab['dataset']} {lab['victim']}"
        size = "" if lab["attack"] == NO_ATTACK else f" {lab['size']:.2%}"
        return f"{lab['dataset']} {lab['victim']} {lab['attack']}{size} {lab['target_type']}"


@dataclass
class CellOutcome:
    """What one cell computed: result rows (one per target, retrain and K), quality rows and
    JSON-compatible info (attack and detector diagnostics)."""

    key: str
    results: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def expand_cells(spec: Spec) -> list[Cell]:
    """Every cell of ``spec``: quality cells, then one ``none`` cell per (dataset, victim, target
    set), then the attack cells. Cells with identical configs appear once."""
    cells: dict[str, Cell] = {}

    def add(config: dict[str, Any], labels: dict[str, Any]) -> None:
        cell = Cell(json.loads(json.dumps(config, default=jsonable)), labels)
        cells.setdefault(cell.key, cell)

    fillers: Sequence[int | None] = spec.n_fillers or [None]
    for dataset in spec.datasets:
        base = {
            "seed": spec.seed,
            "dataset": dataset.model_dump(mode="json"),
            "retrains": spec.retrains,
        }
        if spec.victim_data != "as-is":  # only when set, so that existing cell keys stay valid
            base["victim_data"] = spec.victim_data
        if spec.surrogate is not None:  # the same fake users for every victim (cells.py)
            base["shared_attacker"] = True
        if is_untargeted(spec):  # edge attacks: every cell measures accuracy / AUROC
            base.update(protocol="untargeted", negative_ratio=spec.negative_ratio)
        attack_only = {"remedy": spec.remedy.key()} if spec.remedy else {}
        if spec.detector_train_fake is not None:  # only when set: existing cell keys stay valid
            attack_only["detector_train_fake"] = spec.detector_train_fake
        if spec.attack_draws != 1:  # attack cells only: the clean victim has no attack to draw
            attack_only["attack_draws"] = spec.attack_draws
        for victim in spec.victims:
            names = {"dataset": dataset.display, "victim": victim.display}
            if spec.victim_quality:
                add({**base, "kind": "quality", "victim": victim.key()}, names)
            for target in spec.targets:
                common = {
                    **base,
                    "kind": "attack",
                    "victim": victim.key(),
                    "targets": target.key(),
                    "ks": spec.ks,
                    "rmse_holdout": spec.rmse_holdout,
                }
                add(
                    {
                        **common,
                        "attack": {"name": NO_ATTACK, "params": {}},
                        "size": 0.0,
                        "knowledge": {"kind": "full", "fraction": 1.0},
                        "surrogate": None,
                        "detector": None,
                    },
                    {
                        **names,
                        "attack": NO_ATTACK,
                        "size": 0.0,
                        "target_type": target.display,
                        "knowledge": None,
                        "n_fillers": None,
                        "surrogate": None,
                        "detector": None,
                    },
                )
                for attack in spec.attacks:
                    if attack.name == NO_ATTACK:
                        continue
                    surrogate = _surrogate_key(spec, victim, attack)
                    for knowledge in spec.knowledge:
                        for n_fillers in fillers:
                            params = dict(attack.params)
                            if n_fillers is not None:
                                params["n_fillers"] = n_fillers
                            for size in spec.sizes:
                                add(
                                    {
                                        **common,
                                        "attack": {"name": attack.name, "params": params},
                                        "size": size,
                                        "knowledge": knowledge.model_dump(),
                                        "surrogate": surrogate,
                                        "detector": spec.detector.key() if spec.detector else None,
                                        **attack_only,
                                    },
                                    {
                                        **names,
                                        "attack": attack.display,
                                        "size": size,
                                        "target_type": target.display,
                                        "knowledge": knowledge.display,
                                        "n_fillers": n_fillers,
                                        "surrogate": _surrogate_label(spec, surrogate),
                                        "detector": spec.detector.display
                                        if spec.detector
                                        else None,
                                    },
                                )
    return sorted(cells.values(), key=lambda c: c.kind != "quality")


def _surrogate_key(spec: Spec, victim: ComponentSpec, attack: ComponentSpec) -> dict | None:
    """The surrogate of an attack that trains one: one that requires a surrogate, or a
    differentiable one (the meta-gradient attacks, which fall back to a GMF only through the
    API); the spec's ``surrogate:``, else the victim itself (white-box)."""
    cls = attack_class_or_none(attack.name)
    if cls is None or not cls.requires & {"surrogate", "differentiable"}:
        return None
    return spec.surrogate_for(victim).key()


def _surrogate_label(spec: Spec, surrogate: dict | None) -> str | None:
    if surrogate is None:
        return None
    return "white-box" if spec.surrogate is None else spec.surrogate.display


# -- data ---------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays (used for configs and info)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
