"""Victims: the recommenders under attack. ``VICTIMS`` is the one registry of their names.

A name that is a dotted path ``package.module:Class`` names a user's own class instead
(:mod:`recpoison.victims.external`).
"""

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
    "implicit-als": "recpoison.victims.implicit_models:ImplicitALS",
    "implicit-bpr": "recpoison.victims.implicit_models:ImplicitBPR",
    "implicit-lmf": "recpoison.victims.implicit_models:ImplicitLMF",
    "implicit-cosine": "recpoison.victims.implicit_models:ImplicitCosine",
    "implicit-tfidf": "recpoison.victims.implicit_models:ImplicitTFIDF",
    "implicit-bm25": "recpoison.victims.implicit_models:ImplicitBM25",
}


def victim_class(name: str) -> type[Recommender]:
    """The victim class registered as ``name``, or the user's class at a ``module:Class`` path."""
    if ":" in name:
        from recpoison.victims.external import external_victim

        return external_victim(name)
    return resolve("victim", VICTIMS, name)


def make_victim(name: str, **params: Any) -> Recommender:
    """Instantiate the victim ``name`` with ``params`` (constructor keyword arguments)."""
    return victim_class(name)(**params)


__all__ = ["VICTIMS", "Recommender", "make_victim", "victim_class"]
