"""Victims: the recommenders under attack. ``VICTIMS`` is the one registry of their names."""

from __future__ import annotations

from typing import Any

from recpoison.registry import resolve
from recpoison.victims.base import Recommender

VICTIMS: dict[str, str] = {
    "neumf": "recpoison.victims.neural:NeuMF",
    "gmf": "recpoison.victims.neural:GMF",
    "mlp": "recpoison.victims.neural:MLP",
    "als-mf": "recpoison.victims.mf:ALSMF",
    "nuclear-norm": "recpoison.victims.nuclear:NuclearNormMF",
    "random-walk": "recpoison.victims.random_walk:RandomWalk",
}


def victim_class(name: str) -> type[Recommender]:
    """The victim class registered as ``name``."""
    return resolve("victim", VICTIMS, name)


def make_victim(name: str, **params: Any) -> Recommender:
    """Instantiate the victim ``name`` with ``params`` (constructor keyword arguments)."""
    return victim_class(name)(**params)


__all__ = ["VICTIMS", "Recommender", "make_victim", "victim_class"]
