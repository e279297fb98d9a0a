"""Running one cell (see :mod:`recpoison.experiment.expansion` for what a cell is): *poison,
retrain, measure*. The measurements live in :mod:`recpoison.experiment.measures`, one module
each; this module poisons the data and retrains the victim, and picks the measurements.

:func:`execute_cell` is a pure function of ``config`` (the device only decides
where it runs): every random choice is seeded from the spec seed and the parts of the config it
depends on, via :func:`stable_seed` (SHA-256, never Python's ``hash()``). Seeds are shared on
purpose (common random numbers): every cell of a dataset and target set uses the same targets,
every cell of a knowledge setting the same attacker's view, and every attack cell of a
(dataset, victim, target set) the same victim seeds, so differences between attacks are not
differences between random draws.

The protocol of one attack cell (Huang et al. 2021, section V):

1. *Data.* The whole dataset after its transforms (the paper trains on all data). For explicit
   data with ``rmse_holdout > 0`` it is the train part of a seeded hold-out split.
2. *Poison.* Targets are drawn once per (dataset, target set); each target is attacked
   separately with ``max(1, round(size * n_real_users))`` fake users generated from the
   attacker's view only (full data, a fraction of the ratings, or of the users), with a
   surrogate victim when the attack requires one. An attack whose sizes share their work
   (``grows_by_prefix``: poison-model's authors' schedule, the S-attacks, the graph attacks) is
   seeded without the size, so its fake users at a larger size begin with those of a smaller
   one, and each of its cells goes on from the previous size computed in the same process, or
   from the checkpoint an earlier process left (:mod:`recpoison.experiment.progress`). An
   attack whose goal is ``availability`` ignores targets: it is generated once per cell and that
   one poisoned dataset serves every target. A target set of type ``none`` has no target items
   (availability attacks only); its cells store one row per retrain and K with ``target_index``
   -1.
3. *Retrain.* The victim is retrained from scratch ``retrains`` times per target: one batched
   ``fit`` over ``targets x retrains`` per-replica datasets when it has ``per_replica_data``,
   else one fit of ``retrains`` replicas per target.
4. *Measure.* HR_t@K over normal users (:mod:`~recpoison.experiment.measures.target_hr`); on
   explicit data with a hold-out the Li et al. 2016 utilities, for which the clean victim is
   also trained with the same seeds (:mod:`~recpoison.experiment.measures.explicit`); with a
   detector, FPR / FNR (:mod:`~recpoison.experiment.measures.detection`) and HR_t after the
   remedy, by default retraining without the flagged users
   (:mod:`~recpoison.experiment.measures.remedy`).

A spec with an edge attack (goal ``untargeted``, Aravind's thesis) runs every cell under the
untargeted protocol instead (:func:`_edge_cell`, chosen through :data:`PROTOCOLS`): the
attack flips edges of the training interactions and the retrained victim's accuracy, AUROC and
BCE are measured on labelled edges (:mod:`~recpoison.experiment.measures.untargeted`). Its
meta-gradient attacks share their budgets as the fake-user attacks above share their sizes: one
flip sequence, seeded without the size, serves every budget, and an interrupted cell goes on
from its last meta-gradient.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recpoison.attacks import make_attack
from recpoison.attacks.base import EdgePerturbation
from recpoison.attacks.prefix import StepHook
from recpoison.attacks.ratings import filler_popularity
from recpoison.data import transforms
from recpoison.data.interactions import Interactions
from recpoison.data.loaders import load_dataset
from recpoison.errors import ConfigError, DataError
from recpoison.experiment.expansion import CellOutcome, config_key, stable_seed
from recpoison.experiment.measures.base import Fit, Measurement
from recpoison.experiment.measures.detection import detect, rate_columns
from recpoison.experiment.measures.explicit import (
    ExplicitUtilities,
    explicit_info,
    probe_entries,
    ttest_p,
)
from recpoison.experiment.measures.quality import fit_without_held_out, quality_rows
from recpoison.experiment.measures.remedy import RemedyContext, make_remedy
from recpoison.experiment.measures.target_hr import TargetHits
from recpoison.experiment.measures.untargeted import (
    EdgeSplit,
    UntargetedMetrics,
    edge_split,
    merge_draws,
)
from recpoison.experiment.progress import ATTACK_PROGRESS
from recpoison.experiment.spec import NO_ATTACK, NO_TARGETS, ComponentSpec, goal_of
from recpoison.utils import resolve_device
from recpoison.victims import Recommender, make_victim, victim_class
from recpoison.victims.base import ReplicaRandomState, replica_seeds

logger = logging.getLogger(__name__)

Status = Callable[[str], None]
#: A result-column source: ``columns(t, r, j)`` of target ``t`` (-1: none), retrain, K index.
Columns = Callable[[int, int, int], dict[str, Any]]

#: At most this many replicas are trained in one batched fit (targets are grouped to fit).
MAX_REPLICAS_PER_FIT = 64

#: On a CPU a batched fit also stacks at most this many training instances per step (replicas x
#: batch size): beyond it the stacked tables outgrow the caches and each replica-epoch gets
#: slower. NeuMF on the bundled data, s per replica-epoch at batch 2048: 0.27 with 16
#: replicas, 0.29 with 32, 0.41 with 64, 0.51 with 100; at batch 256, 64 replicas is fastest.
CPU_INSTANCES_PER_STEP = 2**16


def prepared_dataset(dataset: dict[str, Any], seed: int) -> Interactions:
    """The dataset of a cell config: loaded, then transformed (seeded); cached per process."""
    return _prepared(json.dumps(dataset, sort_keys=True), seed)


@functools.lru_cache(maxsize=4)
def _prepared(dataset_json: str, seed: int) -> Interactions:
    cfg = json.loads(dataset_json)
    scale = tuple(cfg["rating_scale"]) if cfg["rating_scale"] is not None else None
    data = load_dataset(
        cfg["source"],
        cfg["format"],
        cfg["columns"],
        name=cfg["name"],
        rating_scale=scale,
        implicit=cfg["implicit"],
    )
    for i, step in enumerate(cfg["transforms"]):
        data = apply_transform(data, step, stable_seed("transform", seed, cfg, i))
    logger.info("dataset ready: %r", data)
    return data


def apply_transform(data: Interactions, step: str | dict[str, Any], seed: int) -> Interactions:
    """Apply one spec transform (``"binarize"``, ``{k_core: 10}``, ``{k_core: {k: 10}}``)."""
    name, arg = (step, None) if isinstance(step, str) else next(iter(step.items()))
    function = getattr(transforms, name)
    args, kwargs = ((), dict(arg)) if isinstance(arg, dict) else (() if arg is None else (arg,), {})
    if "random_state" in inspect.signature(function).parameters:
        kwargs.setdefault("random_state", seed)
    try:
        return function(data, *args, **kwargs)
    except TypeError as error:
        raise ConfigError(f"transform {name}: {error}") from None


def resolve_targets(data: Interactions, config: dict[str, Any]) -> np.ndarray:
    """The target item indices of a cell (same for every cell of a dataset and target set)."""
    target = config["targets"]
    if target["type"] == NO_TARGETS:
        return np.zeros(0, dtype=np.int64)
    if target["type"] == "items":
        ids = np.asarray(data.item_ids).astype(str)
        index = {item: i for i, item in enumerate(ids)}
        missing = [item for item in target["items"] if str(item) not in index]
        if missing:
            raise DataError(f"target item {missing[0]!r} is not in dataset {data.name!r}")
        return np.array([index[str(item)] for item in target["items"]], dtype=np.int64)
    rng = np.random.default_rng(stable_seed("targets", config["seed"], config["dataset"], target))
    if target["type"] == "random":
        candidates = np.arange(data.n_items)
    else:
        threshold = target["threshold"] or transforms.default_unpopular_threshold(data)
        candidates = transforms.unpopular_items(data, threshold)
    if len(candidates) < target["count"]:
        raise ConfigError(
            f"{data.name}: {len(candidates)} {target['type']} candidate items for "
            f"{target['count']} targets; lower targets.count"
        )
    return np.sort(rng.choice(candidates, size=target["count"], replace=False)).astype(np.int64)


def attacker_view(
    data: Interactions, config: dict[str, Any], targets: np.ndarray | None = None
) -> Interactions:
    """What the attacker sees: all data, a fraction of the ratings, of the users, or of the
    ratings nearest to ``targets`` (``hops``)."""
    knowledge = config["knowledge"]
    seed = stable_seed("knowledge", config["seed"], config["dataset"], knowledge)
    if knowledge["kind"] == "hops":
        if targets is None or len(targets) == 0:
            raise ConfigError("knowledge 'hops' needs target items (not an availability attack)")
        return transforms.subsample_hops(data, knowledge["fraction"], targets, random_state=seed)
    if knowledge["kind"] == "ratings":
        return transforms.subsample_ratings(data, knowledge["fraction"], random_state=seed)
    if knowledge["kind"] == "users":
        return transforms.subsample_users(data, knowledge["fraction"], random_state=seed)
    return data


def attacker_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a cell's config that seeds its fake users and the attacker's surrogate.

    With a spec-level ``surrogate:`` (``shared_attacker`` in the config) the attacker knows
    nothing of the victim, so the victim is left out: every victim of the spec faces the same
    fake users (a transfer table). The remedy is always left out (:func:`before_remedy`), and so
    is ``attack_draws``: draw 0 of a cell that draws its attack several times is the single draw.
    """
    seeded = {k: v for k, v in before_remedy(config).items() if k != "attack_draws"}
    if not seeded.get("shared_attacker"):
        return seeded
    return {k: v for k, v in seeded.items() if k not in ("victim", "shared_attacker")}


# -- execution ----------------------------------------------------------------------------------
def execute_cell(
    config: dict[str, Any],
    device: str = "auto",
    status: Status | None = None,
    data: Interactions | None = None,
) -> CellOutcome:
    """Compute one cell (see the module doc). ``status`` receives short progress messages;
    ``data``, when given, is the cell's prepared dataset (a Ray backend ships it once)."""
    start = time.perf_counter()
    say = status or (lambda message: logger.debug("%s", message))
    if data is None:
        data = prepared_dataset(config["dataset"], config["seed"])
    outcome = CellOutcome(config_key(config))
    if config["kind"] == "quality":
        outcome.quality = _quality(data, config, device, say)
    else:
        protocol = PROTOCOLS[config.get("protocol", "targeted")]
        outcome.results, outcome.info = protocol(data, config, device, say)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _quality(
    data: Interactions, config: dict[str, Any], device: str, say: Status
) -> list[dict[str, Any]]:
    """Leave-one-out HR@10 / NDCG@10 of the clean victim, one row per retrain."""
    seed = stable_seed("quality", config)
    data = _victim_view(data, config)
    train, test_items = transforms.leave_one_out(data, random_state=seed)
    model = _new_victim(config["victim"], config["retrains"], seed, device)
    say(f"quality: training {config['retrains']} clean replicas")
    fit_without_held_out(model, train, test_items)
    return quality_rows(model, train, test_items, seed)


def _attack_cell(
    data: Interactions, config: dict[str, Any], device: str, say: Status
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Poison, retrain, measure (see the module doc)."""
    targets = resolve_targets(data, config)
    train, test = _rmse_split(data, config)
    victim_seed = stable_seed(
        "victim", config["seed"], config["dataset"], config["victim"], config["targets"]
    )
    retrain = functools.partial(_retrain, config, seed=victim_seed, device=device, say=say)
    info: dict[str, Any] = {"targets": data.item_ids[targets].tolist(), "n_real": train.n_real}
    attacked = config["attack"]["name"] != NO_ATTACK
    poisoned, n_fake = (
        _poison(config, train, targets, device, say, info) if attacked else ([train], 0)
    )

    hits = TargetHits(targets, config["ks"], config["retrains"])
    measurements: list[Measurement] = [hits]
    columns: list[Columns] = [hits.columns]
    explicit = None
    if test is not None:
        probe = probe_entries(train, stable_seed("probe", config["seed"]))
        explicit = ExplicitUtilities(test, targets, probe, config["retrains"])
        measurements.append(explicit)
        columns.append(explicit.columns)
    retrain(poisoned, measurements)

    if explicit is not None:
        if attacked:
            say("training the clean victim for RMSE / integrity / availability shifts")
            clean = ExplicitUtilities(test, targets, explicit.probe, config["retrains"])
            retrain([train], [clean])
            info["explicit"] = explicit_info(clean, explicit, [ttest_p(d) for d in poisoned])
        else:
            info["explicit"] = explicit_info(explicit, explicit)
    if config["detector"] is not None:
        attack_and_surrogate = functools.partial(_attack_and_surrogate, config, device)
        detections = detect(
            before_remedy(config), train, poisoned, targets, n_fake, attack_and_surrogate, say
        )
        info["detector"] = [d.info for d in detections]
        context = RemedyContext(
            targets=targets,
            ks=config["ks"],
            retrains=config["retrains"],
            seed=victim_seed,
            retrain=retrain,
            new_victim=lambda n: _new_victim(config["victim"], n, victim_seed, device),
            victim_view=lambda d: _victim_view(d, config),
            say=say,
        )
        remedied = make_remedy(config.get("remedy")).apply(poisoned, detections, context)
        columns += [functools.partial(rate_columns, detections), remedied.columns]
        if remedied.info:
            info["remedy"] = remedied.info
    return _rows(config, data, targets, columns), info


def _edge_cell(
    data: Interactions, config: dict[str, Any], device: str, say: Status
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The untargeted protocol (Aravind's thesis §3.5, §4.2): flip edges, retrain, measure
    accuracy / AUROC / BCE (see :mod:`recpoison.experiment.measures.untargeted`).

    The budget of an edge attack is ``max(1, round(size * |A⁻|))`` flips, ``|A⁻|`` the sampled
    training negatives (the thesis's "percentage of 0-edges perturbed"). Every cell of a
    (dataset, victim) uses the same split and victim seeds, so the ``none`` cell is the clean
    victim of each attack cell, retrain by retrain. With ``attack_draws: D`` the attack runs
    ``D`` times with independent seeds (draw 0 is the cell's single draw) and each perturbed
    dataset is retrained with the same victim seeds, so the cell holds ``D x retrains`` paired
    measurements and the report's standard errors cover the attack's randomness too.
    """
    seed = stable_seed("edges", config["seed"], config["dataset"], config["negative_ratio"])
    split = edge_split(data, config["negative_ratio"], seed)
    victim_seed = stable_seed(
        "victim", config["seed"], config["dataset"], config["victim"], config["targets"]
    )
    info: dict[str, Any] = {"n_real": data.n_real, "n_fake": 0}
    perturbed = [(split.train, np.zeros((0, 3), dtype=np.int64))]
    if config["attack"]["name"] != NO_ATTACK:
        draws = config.get("attack_draws", 1)
        perturbations = [_flip_edges(split, config, device, say, d) for d in range(draws)]
        perturbed = [(p.data, p.flips) for p in perturbations]
        info.update(n_fake=perturbations[0].n_flips, attack=[p.info for p in perturbations])
    held_out = np.full(perturbed[0][0].n_users, -1, dtype=np.int64)  # new users: all draws
    held_out[: len(split.test_items)] = split.test_items
    metrics: dict[int, UntargetedMetrics] = {}
    for draws_alike in _same_size(perturbed):
        group = {
            d: UntargetedMetrics(split, perturbed[d][1], config["retrains"], victim_seed, dataset=i)
            for i, d in enumerate(draws_alike)
        }
        _retrain(
            config,
            [perturbed[d][0] for d in draws_alike],
            list(group.values()),
            seed=victim_seed,
            device=device,
            say=say,
            held_out=held_out,
        )
        metrics.update(group)
    info["untargeted"] = merge_draws([metrics[d].info() for d in range(len(perturbed))])
    no_targets = np.zeros(0, dtype=np.int64)
    hits = TargetHits(no_targets, config["ks"], config["retrains"])
    return _rows(config, data, no_targets, [hits.columns]), info


def _same_size(perturbed: list[tuple[Interactions, np.ndarray]]) -> list[list[int]]:
    """The draws whose perturbed data have the same number of interactions, in draw order.

    A batched fit pads a smaller replica's epoch with resampled instances up to the largest
    one's, so only draws of one size train together: each draw's replicas then train exactly as
    in a fit of that draw alone, and draw 0 as in a one-draw cell (``meta-similar-users``'
    draws copy different numbers of real users' items)."""
    by_size: dict[int, list[int]] = {}
    for d, (poisoned, _) in enumerate(perturbed):
        by_size.setdefault(poisoned.n_ratings, []).append(d)
    return list(by_size.values())


def _flip_edges(
    split: EdgeSplit, config: dict[str, Any], device: str, say: Status, draw: int
) -> EdgePerturbation:
    """Draw ``draw`` of the cell's edge attack on the training interactions of ``split``.

    Draw 0 is seeded as a single-draw cell is (so ``attack_draws`` only adds draws); a
    meta-gradient attack's draw shares its flips with the same draw at other budgets and goes
    on from its checkpoint (:mod:`recpoison.experiment.progress`).
    """
    budget = max(1, round(config["size"] * split.n_negatives))
    what = f"attack {config['attack']['name']}: {budget} flips"
    if config.get("attack_draws", 1) > 1:
        what += f", draw {draw + 1}/{config['attack_draws']}"
    say(what)
    attack, surrogate = _attack_and_surrogate(config, device, draw)
    seeding = _attack_seeding(config, attack)
    if draw:
        seeding = {**seeding, "draw": draw}
    shared, progress_key = {}, stable_seed("progress", seeding)
    label = config["attack"]["name"] + (f" (draw {draw + 1})" if draw else "")
    if attack.grows_by_prefix():
        checkpoint = ATTACK_PROGRESS.checkpoint(progress_key, label)
        shared = {
            "resume_from": ATTACK_PROGRESS.resumable(progress_key, budget),
            "on_step": _step_hook(say, what, budget, checkpoint),
        }
    perturbation = attack.perturb(
        split.train,
        budget,
        surrogate=surrogate,
        random_state=stable_seed("attack", seeding),
        **shared,
    )
    if shared:
        ATTACK_PROGRESS.remember(progress_key, attack.progress_, label)
    return perturbation


def _poison(
    config: dict[str, Any],
    train: Interactions,
    targets: np.ndarray,
    device: str,
    say: Status,
    info: dict[str, Any],
) -> tuple[list[Interactions], int]:
    """The poisoned datasets (one per target; one for all with an availability goal) and the
    number of fake users in each; attack diagnostics go to ``info``."""
    n_fake = max(1, round(config["size"] * train.n_real))
    view = attacker_view(train, config, targets)
    info.update(n_fake=n_fake, n_attacker_users=view.n_users, n_attacker_ratings=view.n_ratings)
    untargeted = goal_of(ComponentSpec(**config["attack"])) == "availability"
    if not untargeted and len(targets) == 0:
        raise ConfigError(
            f"attack {config['attack']['name']} needs target items; the target "
            "set has none (type 'none' is for availability attacks only)"
        )
    attacked = [np.zeros(0, dtype=np.int64)] if untargeted else [np.array([t]) for t in targets]
    attack, surrogate = _attack_and_surrogate(config, device, 0)
    seeding = _attack_seeding(config, attack)
    seeds = [stable_seed("attack", seeding, t) for t in range(len(attacked))]
    per_target_view = config["knowledge"]["kind"] == "hops"
    progress_key = None
    if attack.grows_by_prefix():
        progress_key = stable_seed("progress", seeding, [t.tolist() for t in attacked])
    resumable = None if progress_key is None else ATTACK_PROGRESS.resumable(progress_key, n_fake)
    name = config["attack"]["name"]
    label = f"{name}, {len(attacked)} target set(s)"
    if hasattr(attack, "generate_many") and not per_target_view:  # all targets at once
        what = f"attack {name}: profiles for {len(attacked)} target set(s)"
        say(what)
        shared = {}
        if progress_key is not None:
            checkpoint = ATTACK_PROGRESS.checkpoint(progress_key, label)
            on_step = _step_hook(say, what, n_fake, checkpoint)
            shared = {"resume_from": resumable, "on_step": on_step}
        all_profiles = attack.generate_many(
            view, attacked, n_fake, surrogate=surrogate, random_states=seeds, **shared
        )
        progress = attack.progress_ if shared else None
    else:
        all_profiles, progress = [], []
        earlier = resumable if isinstance(resumable, list) else [None] * len(attacked)
        for t, target in enumerate(attacked):
            what = f"attack {name}: profiles {t + 1}/{len(attacked)}"
            say(what)
            attack, surrogate = _attack_and_surrogate(config, device, t)
            if per_target_view and len(target):
                view = attacker_view(train, config, target)
            shared = {}
            if progress_key is not None:  # a checkpoint holds every target's latest state
                done, later = list(progress), earlier[t + 1 :]
                checkpoint = ATTACK_PROGRESS.checkpoint(
                    progress_key, label, lambda state, d=done, rest=later: [*d, state, *rest]
                )
                shared = {
                    "resume_from": earlier[t],
                    "on_step": _step_hook(say, what, n_fake, checkpoint),
                }
            all_profiles.append(
                attack.generate(
                    view, target, n_fake, surrogate=surrogate, random_state=seeds[t], **shared
                )
            )
            progress.append(attack.progress_ if shared else None)
    if progress_key is not None:
        ATTACK_PROGRESS.remember(progress_key, progress, label)
    poisoned = [train.with_fake_users(profiles) for profiles in all_profiles]
    attack_info = [
        {**profiles.info, "filler_popularity": filler_popularity(view, profiles)}
        for profiles in all_profiles
    ]
    info["attack"] = attack_info
    return poisoned, n_fake


def _step_hook(say: Status, what: str, size: int, checkpoint: StepHook | None) -> StepHook:
    """The ``on_step`` of a size-sharing attack: says how many of the ``size`` fake users (or
    flips) are made (after ``what``: the attack and target), then writes the checkpoint, if
    any."""

    def on_step(state: Any) -> None:
        say(f"{what}: {state.size}/{size} {state.unit}")
        if checkpoint is not None:
            checkpoint(state)

    return on_step


#: The cell protocols: targeted / explicit / detection cells, and edge attacks (untargeted).
PROTOCOLS = {"targeted": _attack_cell, "untargeted": _edge_cell}


def before_remedy(config: dict[str, Any]) -> dict[str, Any]:
    """The config without its remedy: what seeds the attack, surrogate and detector, so that
    cells differing only by remedy compare remedies on the same poisoned data and flags."""
    return {key: value for key, value in config.items() if key != "remedy"}


def _victim_view(data: Interactions, config: dict[str, Any]) -> Interactions:
    """The data as the victim sees it (binarized with ``victim_data: binarized``)."""
    return transforms.binarize(data) if config.get("victim_data") == "binarized" else data


def _attack_and_surrogate(
    config: dict[str, Any], device: str, t: int
) -> tuple[Any, Recommender | None]:
    attack = make_attack(config["attack"]["name"], **config["attack"]["params"])
    surrogate = None
    if config["surrogate"] is not None:
        surrogate = make_victim(
            config["surrogate"]["name"],
            **config["surrogate"]["params"],
            random_state=stable_seed("surrogate", _attack_seeding(config, attack), t),
            device=device,
        )
    return attack, surrogate


def _attack_seeding(config: dict[str, Any], attack: Any) -> dict[str, Any]:
    """What seeds a cell's fake users and surrogate: :func:`attacker_config`, without the size
    for an attack whose sizes share their work (``grows_by_prefix``), so that its fake users at
    a larger size begin with those of a smaller one."""
    seeding = attacker_config(config)
    if attack.grows_by_prefix():
        return {key: value for key, value in seeding.items() if key != "size"}
    return seeding


def sharing_chain(config: dict[str, Any]) -> int | None:
    """The key of the cells that share their attack's work, or None for a cell that shares
    with no other: cells whose attack grows by prefix and whose seeding without the size is the
    same (:func:`_attack_seeding`; they differ by size, or only by what the attacker does not
    see). A larger size goes on from a smaller one computed before it in the same process, or
    in another one with the same checkpoint folder (:mod:`recpoison.experiment.progress`); a
    backend that spreads cells over processes keeps each chain together, smallest size first,
    so that its sizes never compute the same fake users side by side."""
    if config.get("attack") is None or config["attack"]["name"] == NO_ATTACK:
        return None  # a victim-quality cell, or no attack
    attack = make_attack(config["attack"]["name"], **config["attack"]["params"])
    if not attack.grows_by_prefix():
        return None
    return stable_seed("chain", _attack_seeding(config, attack))


def _retrain(
    config: dict[str, Any],
    datasets: list[Interactions],
    measurements: list[Measurement],
    *,
    seed: int,
    device: str,
    say: Status,
    held_out: np.ndarray | None = None,
) -> None:
    """Retrain the victim ``retrains`` times per dataset; every measurement observes each fit.

    ``datasets`` holds one poisoned dataset per target (or one dataset for all targets); the
    victim trains on their :func:`_victim_view`. Per-target datasets are trained together in
    batched fits of up to :func:`replicas_per_fit` replicas when the victim supports
    per-replica data, else one fit of ``retrains`` replicas per dataset. Every dataset's
    ``retrains`` replicas get the same seeds, those of the clean victim (the ``none`` cell and an
    explicit cell's clean fit use ``seed`` with ``retrains`` replicas), however the datasets are
    grouped: so each poisoned replica is paired with the clean replica of its seed. Datasets
    of one size train as they would alone, so their results do not depend on
    :func:`replicas_per_fit`; a smaller dataset batched with a larger one has its epochs padded
    with resampled instances up to the larger one's (see :func:`_same_size`). ``held_out``
    gives each user's held-out test item, never sampled as a training negative (the datasets
    then have the same users).
    """
    retrains = config["retrains"]
    trained = [_victim_view(d, config) for d in datasets]
    shared = len(trained) == 1
    batched = "per_replica_data" in victim_class(config["victim"]["name"]).capabilities
    cap = replicas_per_fit(config["victim"], device)
    group = max(1, cap // retrains) if batched and not shared else 1
    n = len(trained)
    groups = [[0]] if shared else [list(range(i, min(i + group, n))) for i in range(0, n, group)]
    seeds = replica_seeds(seed, retrains)
    for members in groups:
        n_replicas = retrains * len(members)
        model = _new_victim(config["victim"], n_replicas, seeds * len(members), device)
        say(f"training {n_replicas} {config['victim']['name']} replicas")
        per_replica = [trained[t] for t in members for _ in range(retrains)]
        data = per_replica if len(members) > 1 else trained[members[0]]
        if held_out is not None:
            fit_without_held_out(model, data, held_out)
        else:
            model.fit(data)
        say("measuring")
        fit = Fit(model, trained, members, shared, retrains)
        for measurement in measurements:
            measurement.observe(fit)


def replicas_per_fit(victim: dict[str, Any], device: str) -> int:
    """How many replicas one batched fit of ``victim`` stacks: :data:`MAX_REPLICAS_PER_FIT`,
    and on a CPU at most :data:`CPU_INSTANCES_PER_STEP` training instances per step."""
    batch = victim["params"].get("batch_size")
    if batch is None:
        parameter = inspect.signature(victim_class(victim["name"]).__init__).parameters
        batch = getattr(parameter.get("batch_size"), "default", None)
    if not isinstance(batch, int) or batch < 1 or resolve_device(device).type != "cpu":
        return MAX_REPLICAS_PER_FIT
    return max(1, min(MAX_REPLICAS_PER_FIT, CPU_INSTANCES_PER_STEP // batch))


def _new_victim(
    victim: dict[str, Any], n_replicas: int, seed: ReplicaRandomState, device: str
) -> Recommender:
    return make_victim(
        victim["name"], **victim["params"], n_replicas=n_replicas, random_state=seed, device=device
    )


def _rmse_split(
    data: Interactions, config: dict[str, Any]
) -> tuple[Interactions, Interactions | None]:
    """(train, test): the hold-out split for RMSE on explicit data, else (data, None)."""
    if data.is_implicit or config["rmse_holdout"] <= 0 or config.get("victim_data") == "binarized":
        return data, None
    seed = stable_seed("holdout", config["seed"], config["dataset"])
    return transforms.holdout_split(data, config["rmse_holdout"], random_state=seed)


def _rows(
    config: dict[str, Any], data: Interactions, targets: np.ndarray, columns: list[Columns]
) -> list[dict[str, Any]]:
    """One result row per (target, retrain, K); without targets one per (retrain, K) with
    ``target_index`` -1. Each of ``columns`` adds its result columns."""
    ids = data.item_ids[targets]
    rows = []
    for t in range(len(targets)) if len(targets) else [-1]:
        for r in range(config["retrains"]):
            for j, k in enumerate(config["ks"]):
                row = {
                    "target_index": t,
                    "target_id": str(ids[t]) if t >= 0 else "",
                    "target_type": config["targets"]["type"],
                    "retrain": r,
                    "k": k,
                    "rmse": None,
                }
                for part in columns:
                    row.update(part(t, r, j))
                rows.append(row)
    return rows
