"""Which specs run the untargeted (edge-flip) protocol, and what such a spec may hold.

An attack whose goal is ``untargeted`` (every :class:`~recpoison.attacks.base.EdgeAttack`)
degrades the recommender for everyone by flipping user-item edges (Aravind's thesis §3.5). Its
cells measure accuracy, AUROC and BCE on labelled edges instead of HR_t
(:mod:`recpoison.experiment.measures.untargeted`), so a spec that holds one runs every cell,
the ``none`` baseline included, under that protocol. Combinations without a meaning there are
refused here, before any work, with the key to change.
"""

from __future__ import annotations

from recpoison.errors import ConfigError
from recpoison.experiment.spec import (
    NO_ATTACK,
    NO_TARGETS,
    UNTARGETED,
    Spec,
    component_class,
    goal_of,
)
from recpoison.victims import VICTIMS


def is_untargeted(spec: Spec) -> bool:
    """Whether ``spec`` holds an edge attack (goal ``untargeted``)."""
    return any(a.name != NO_ATTACK and goal_of(a) == UNTARGETED for a in spec.attacks)


def check_edge_spec(spec: Spec) -> None:
    """Refuse what the untargeted protocol cannot measure (ConfigError naming the key)."""
    if not is_untargeted(spec):
        if spec.attack_draws != 1:
            raise ConfigError(
                "attack_draws: only edge attacks draw their attack several times; a targeted "
                "cell attacks each target separately, so its standard error over targets "
                "already holds the attack's randomness; remove it"
            )
        return
    for i, attack in enumerate(spec.attacks):
        if attack.name != NO_ATTACK and goal_of(attack) != UNTARGETED:
            raise ConfigError(
                f"attacks.{i}: {attack.name} crafts fake profiles, but this spec holds edge "
                "attacks (untargeted protocol: accuracy / AUROC); run it in a separate spec"
            )
    for t, target in enumerate(spec.targets):
        if target.type != NO_TARGETS:
            raise ConfigError(
                f"targets.{t}: edge attacks are untargeted; use `targets: [{{type: none}}]`"
            )
    if spec.detector is not None:
        raise ConfigError(
            "detector: edge attacks add no fake profiles for a detector to flag; remove it"
        )
    for k, knowledge in enumerate(spec.knowledge):
        if knowledge.kind != "full":
            raise ConfigError(
                f"knowledge.{k}: the edge attacker knows the whole graph (thesis §3.3); "
                "use `knowledge: {kind: full}`"
            )
    if spec.n_fillers is not None:
        raise ConfigError("n_fillers: edge attacks have no filler items; remove it")
    if spec.victim_data != "as-is":
        raise ConfigError("victim_data: edge attacks flip implicit edges; binarize the dataset")
    for j, victim in enumerate(spec.victims):
        cls = component_class("victim", VICTIMS, victim.name)
        if cls is not None and "differentiable" not in cls.capabilities:
            raise ConfigError(
                f"victims.{j}: the untargeted protocol reads scores as log-odds (accuracy at "
                f"0.5, BCE); {victim.name} has none, use gmf, mlp or neumf"
            )
