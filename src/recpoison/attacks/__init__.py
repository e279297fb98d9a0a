"""Attacks: data poisoning by fake users (``Attack``) or by edge flips (``EdgeAttack``).
``ATTACKS`` is the one registry of their names."""

from __future__ import annotations

from typing import Any

from recpoison.attacks.base import Attack, EdgeAttack
from recpoison.registry import resolve

ATTACKS: dict[str, str] = {
    "random": "recpoison.attacks.heuristic:RandomAttack",
    "average": "recpoison.attacks.heuristic:AverageAttack",
    "bandwagon": "recpoison.attacks.heuristic:BandwagonAttack",
    "poison-model": "recpoison.attacks.poison_model:PoisonModelAttack",
    "pga": "recpoison.attacks.pga_sgld:PGAAttack",
    "sgld": "recpoison.attacks.pga_sgld:SGLDAttack",
    "mf": "recpoison.attacks.pga_sgld:MFAttack",
    "u-tna": "recpoison.attacks.s_attack:UTNAAttack",
    "s-tna-rand": "recpoison.attacks.s_attack:STNARandAttack",
    "s-tna-inf": "recpoison.attacks.s_attack:SAttack",
    "weighting": "recpoison.attacks.s_attack:WeightingAttack",
    "from-file": "recpoison.attacks.file_profiles:FileProfilesAttack",
    "random-edges": "recpoison.attacks.random_edges:RandomEdgesAttack",
    "meta": "recpoison.attacks.meta:MetaAttack",
    "meta-approx": "recpoison.attacks.meta:MetaApproxAttack",
    "meta-surrogate": "recpoison.attacks.meta:MetaSurrogateAttack",
    "meta-new-users": "recpoison.attacks.meta_users:MetaNewUsersAttack",
    "meta-similar-users": "recpoison.attacks.meta_users:MetaSimilarUsersAttack",
    "meta-targeted": "recpoison.attacks.meta_targeted:MetaTargetedAttack",
    "graph-attack": "recpoison.attacks.graph_attack:GraphAttack",
    "s-graph": "recpoison.attacks.graph_attack:SGraphAttack",
}


def attack_class(name: str) -> type[Attack | EdgeAttack]:
    """The attack class registered as ``name``."""
    return resolve("attack", ATTACKS, name)


def make_attack(name: str, **params: Any) -> Attack | EdgeAttack:
    """Instantiate the attack ``name`` with ``params`` (constructor keyword arguments)."""
    return attack_class(name)(**params)


__all__ = ["ATTACKS", "Attack", "EdgeAttack", "attack_class", "make_attack"]
