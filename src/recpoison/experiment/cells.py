"""Running one cell (see :mod:`recpoison.experiment.expansion` for what a cell is).

:func:`execute_cell` is a pure function of ``config`` (the device only decides
where it runs): every random choice is seeded from the spec seed and the parts of the config it
depends on, via :func:`stable_seed` (SHA-256, never Python's ``hash()``). Seeds are shared on
purpose (common random numbers): every cell of a dataset and target set uses the same targets,
every cell of a knowledge setting the same attacker's view, and every attack cell of a
(dataset, victim, target set) the same victim seeds, so differences between attacks are not
differences between random draws.

The protocol of one attack cell (Huang et al. 2021, section V):

1. The data is the whole dataset after its transforms (the paper trains on all data). For
   explicit data with ``rmse_holdout > 0`` it is the train part of a seeded hold-out split and
   RMSE is measured on the rest (``recpoison.utilities.rmse``), clean in the ``none`` cell,
   poisoned in the attack cells.
2. Targets are drawn once per (dataset, target set); each target is attacked separately with
   ``max(1, round(size * n_real_users))`` fake users generated from the attacker's view only
   (full data, a fraction of the ratings, or of the users), with a surrogate victim when the
   attack requires one.
3. The victim is retrained from scratch ``retrains`` times per target: one batched ``fit`` over
   ``targets x retrains`` per-replica datasets when it has ``per_replica_data``, else one fit of
   ``retrains`` replicas per target. HR_t@K counts normal users only (see
   :func:`recpoison.metrics.target_hit_ratio`).
4. With a detector, each poisoned dataset goes through ``evaluate_detector``; the victim is
   retrained on the data with the flagged users emptied and HR_t is measured over the normal
   users not flagged (flagged users are no longer part of the system).

Explicit victims (Li et al. 2016, section 5). On explicit data with a hold-out, every attack
cell also trains the clean victim (same seeds as the ``none`` cell) and records in its info,
under ``"explicit"``, per target and retrain: ``rmse_clean`` / ``rmse_poisoned`` (RMSE on the
held-out ratings, which no model saw), ``integrity_shift`` (poisoned minus clean mean predicted
rating of the target item over the normal users, Li's integrity utility as a difference),
``prediction_shift`` (root mean squared difference of the poisoned and clean predictions on
:data:`PROBE_ENTRIES` entries drawn uniformly from those the normal users did not rate: Li's
availability utility, §5 footnote 4, estimated on a sample) and, per
poisoned dataset, ``ttest_p`` (p-value of ``ttest_detectability``: popularity of the rated items,
fake vs normal users). An attack whose goal is ``availability`` ignores targets: it is generated
once per cell (without target items) and that one poisoned dataset serves every target, whose
HR_t and integrity shift are then side effects. A target set of type ``none`` has no target items
(availability attacks only); its cells store one row per retrain and K with ``target_index`` -1.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.ratings import filler_popularity
from recpoison.data import transforms
from recpoison.data.interactions import Interactions
from recpoison.data.loaders import load_dataset
from recpoison.errors import ConfigError, DataError
from recpoison.experiment.expansion import CellOutcome, config_key, stable_seed
from recpoison.experiment.spec import NO_ATTACK, NO_TARGETS, ComponentSpec, goal_of
from recpoison.metrics import leave_one_out_hr_ndcg, target_hit_ratio
from recpoison.utilities import pair_predictions, unseen_entries
from recpoison.utilities import rmse as utility_rmse
from recpoison.victims import Recommender, make_victim, victim_class

logger = logging.getLogger(__name__)

Status = Callable[[str], None]

#: At most this many replicas are trained in one batched fit (targets are grouped to fit).
MAX_REPLICAS_PER_FIT = 64
#: Budget (elements) of one ``[replicas, users, items]`` score block when measuring HR_t.
SCORE_BLOCK_ELEMENTS = 2**25
#: Unrated (user, item) entries on which explicit cells compare clean and poisoned predictions.
PROBE_ENTRIES = 20_000
#: List length and number of sampled negatives of the victim-quality metric (NCF protocol).
QUALITY_K, QUALITY_NEGATIVES = 10, 99


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


# -- execution ----------------------------------------------------------------------------------
def execute_cell(
    config: dict[str, Any], device: str = "auto", status: Status | None = None
) -> CellOutcome:
    """Compute one cell (see the module doc). ``status`` receives short progress messages."""
    start = time.perf_counter()
    say = status or (lambda message: logger.debug("%s", message))
    data = prepared_dataset(config["dataset"], config["seed"])
    outcome = CellOutcome(config_key(config))
    if config["kind"] == "quality":
        outcome.quality = _quality(data, config, device, say)
    else:
        outcome.results, outcome.info = _attack_cell(data, config, device, say)
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
    if "exclude_items" in inspect.signature(model.fit).parameters:
        model.fit(train, exclude_items=test_items)  # never a negative while training
    else:
        model.fit(train)
    # 99 negatives (NCF); fewer where some user has not that many unrated items
    most_rated = int(np.diff(train.matrix.indptr).max(initial=0))
    negatives = max(1, min(QUALITY_NEGATIVES, train.n_items - most_rated - 1))
    scores = leave_one_out_hr_ndcg(
        model, train, test_items, QUALITY_K, negatives, random_state=seed
    )
    return [
        {
            "retrain": r,
            "k": QUALITY_K,
            "hr": float(scores["hr"][r]),
            "ndcg": float(scores["ndcg"][r]),
            "users": int(scores["users"]),
            "negatives": negatives,
        }
        for r in range(config["retrains"])
    ]


def _attack_cell(
    data: Interactions, config: dict[str, Any], device: str, say: Status
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    targets = resolve_targets(data, config)
    train, test = _rmse_split(data, config)
    victim_seed = stable_seed(
        "victim", config["seed"], config["dataset"], config["victim"], config["targets"]
    )
    measure = functools.partial(
        _train_and_measure, config, targets, device=device, seed=victim_seed, say=say
    )
    if config.get("victim_data") == "binarized":
        measure = functools.partial(_measure_binarized, measure)
    info: dict[str, Any] = {"targets": data.item_ids[targets].tolist(), "n_real": train.n_real}
    shape = (len(targets), config["retrains"])
    scores = np.full(shape, np.nan) if test is not None else None
    probe, clean_probe = None, None
    if test is not None:
        probe = unseen_entries(
            train, PROBE_ENTRIES, np.random.default_rng(stable_seed("probe", config["seed"]))
        )
        clean_probe = np.full((max(len(targets), 1), config["retrains"], len(probe[0])), np.nan)
    if config["attack"]["name"] == NO_ATTACK:
        hits, eligible, rmse = measure(
            [train], test=test, target_scores=scores, probe=probe, probe_scores=clean_probe
        )
        if test is not None:
            info["explicit"] = _explicit_info(rmse, rmse, scores, scores, clean_probe, clean_probe)
        return _rows(config, data, targets, hits, eligible, rmse), info

    n_fake = max(1, round(config["size"] * train.n_real))
    view = attacker_view(train, config, targets)
    info.update(n_fake=n_fake, n_attacker_users=view.n_users, n_attacker_ratings=view.n_ratings)
    poisoned, attack_info = [], []
    untargeted = goal_of(ComponentSpec(**config["attack"])) == "availability"
    if not untargeted and len(targets) == 0:
        raise ConfigError(
            f"attack {config['attack']['name']} needs target items; the target "
            "set has none (type 'none' is for availability attacks only)"
        )
    attacked = [None] if untargeted else list(targets)
    for t, target in enumerate(attacked):
        say(f"attack {config['attack']['name']}: profiles {t + 1}/{len(attacked)}")
        attack, surrogate = _attack_and_surrogate(config, device, t)
        if config["knowledge"]["kind"] == "hops" and target is not None:  # per target
            view = attacker_view(train, config, np.array([target]))
        profiles = attack.generate(
            view,
            np.zeros(0, dtype=np.int64) if target is None else np.array([target]),
            n_fake,
            surrogate=surrogate,
            random_state=stable_seed("attack", config, t),
        )
        poisoned.append(train.with_fake_users(profiles))
        popularity = filler_popularity(view, profiles)
        attack_info.append({**profiles.info, "filler_popularity": popularity})
    info["attack"] = attack_info
    poisoned_scores = None if scores is None else scores.copy()
    poisoned_probe = None if clean_probe is None else clean_probe.copy()
    hits, eligible, rmse = measure(
        poisoned,
        test=test,
        target_scores=poisoned_scores,
        probe=probe,
        probe_scores=poisoned_probe,
    )
    if test is not None:
        say("training the clean victim for RMSE / integrity / availability shifts")
        _, _, rmse_clean = measure(
            [train], test=test, target_scores=scores, probe=probe, probe_scores=clean_probe
        )
        info["explicit"] = _explicit_info(
            rmse_clean,
            rmse,
            scores,
            poisoned_scores,
            clean_probe,
            poisoned_probe,
            [_ttest_p(d) for d in poisoned],
        )
    detection = None
    if config["detector"] is not None:
        detection = _detect(config, train, poisoned, targets, n_fake, device, say, measure)
        info["detector"] = [d.info for d in detection["results"]]
    return _rows(config, data, targets, hits, eligible, rmse, detection), info


def _victim_view(data: Interactions, config: dict[str, Any]) -> Interactions:
    """The data as the victim sees it (binarized with ``victim_data: binarized``)."""
    return transforms.binarize(data) if config.get("victim_data") == "binarized" else data


def _measure_binarized(
    measure: Callable[..., Any],
    datasets: list[Interactions],
    eval_data: list[Interactions] | None = None,
    **kwargs: Any,
) -> Any:
    """``measure`` on the binarized datasets (the attacks and the detector saw the ratings)."""
    binary = [transforms.binarize(d) for d in datasets]
    views = None if eval_data is None else [transforms.binarize(d) for d in eval_data]
    return measure(binary, eval_data=views, **kwargs)


def _ttest_p(data: Interactions) -> float:
    from recpoison.utilities import ttest_detectability

    return float(ttest_detectability(data)["p_value"])


def _explicit_info(
    rmse_clean: np.ndarray,
    rmse_poisoned: np.ndarray,
    scores_clean: np.ndarray,
    scores_poisoned: np.ndarray,
    probe_clean: np.ndarray,
    probe_poisoned: np.ndarray,
    ttest_p: Sequence[float] = (),
) -> dict[str, Any]:
    """The Li et al. 2016 measurements of an explicit cell (see the module doc), ``[T, R]``
    lists (one row when there are no targets)."""
    shift = np.sqrt(np.mean((probe_poisoned - probe_clean) ** 2, axis=-1))
    return {
        "rmse_clean": rmse_clean.tolist(),
        "rmse_poisoned": rmse_poisoned.tolist(),
        "prediction_shift": shift.tolist(),
        "integrity_shift": (scores_poisoned - scores_clean).tolist(),
        "ttest_p": list(ttest_p),
    }


def _detect(
    config: dict[str, Any],
    clean: Interactions,
    poisoned: list[Interactions],
    targets: np.ndarray,
    n_fake: int,
    device: str,
    say: Status,
    measure: Callable[..., tuple[np.ndarray, np.ndarray, Any]],
) -> dict[str, Any]:
    """Detect per target, then retrain (same victim seeds) without the flagged users."""
    from recpoison.detectors.protocol import empty_flagged, evaluate_detector

    detector = config["detector"]
    results, cleaned, views = [], [], []
    for t, data in enumerate(poisoned):
        say(f"detector {detector['name']}: target {t + 1}/{len(targets)}")
        attack, surrogate = _attack_and_surrogate(config, device, t)
        result = evaluate_detector(
            detector["name"],
            detector["params"],
            clean,
            data,
            attack,
            n_fake,
            targets if len(poisoned) == 1 else targets[t : t + 1],
            surrogate=surrogate,
            random_state=stable_seed("detector", config, t),
        )
        results.append(result)
        cleaned.append(empty_flagged(data, result.flagged))
        views.append(cleaned[-1].replace(is_fake=data.is_fake | result.flagged))
    hits, eligible, _ = measure(cleaned, eval_data=views)
    return {"results": results, "hits": hits, "eligible": eligible}


def _attack_and_surrogate(
    config: dict[str, Any], device: str, t: int
) -> tuple[Any, Recommender | None]:
    attack = make_attack(config["attack"]["name"], **config["attack"]["params"])
    surrogate = None
    if config["surrogate"] is not None:
        surrogate = make_victim(
            config["surrogate"]["name"],
            **config["surrogate"]["params"],
            random_state=stable_seed("surrogate", config, t),
            device=device,
        )
    return attack, surrogate


def _train_and_measure(
    config: dict[str, Any],
    targets: np.ndarray,
    datasets: list[Interactions],
    *,
    device: str,
    seed: int,
    say: Status,
    test: Interactions | None = None,
    eval_data: list[Interactions] | None = None,
    target_scores: np.ndarray | None = None,
    probe: tuple[np.ndarray, np.ndarray] | None = None,
    probe_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Retrain the victim ``retrains`` times per dataset and measure HR_t@K of its target.

    ``datasets`` holds one poisoned dataset per target (or one dataset for all targets).
    ``eval_data`` (default ``datasets``) says which users count and what they have seen.
    Returns hits ``[T, R, K]``, eligible users ``[T]`` and RMSE ``[T, R]`` (None without
    ``test``; ``[1, R]`` when there are no targets). ``target_scores`` (``[T, R]``), when given,
    receives the mean predicted rating of each target over the normal users; ``probe_scores``
    (``[max(T, 1), R, n]``) the predictions on the ``probe`` (users, items) pairs.
    """
    retrains, ks, n_targets = config["retrains"], config["ks"], len(targets)
    if n_targets == 0:  # no target items (availability): RMSE only
        rmse = None if test is None else np.full((1, retrains), np.nan)
        model = _new_victim(config["victim"], retrains, seed, device)
        say(f"training {retrains} {config['victim']['name']} replicas")
        model.fit(datasets[0])
        if test is not None:
            rmse[0] = utility_rmse(model, test)
        if probe_scores is not None:
            probe_scores[0] = pair_predictions(model, *probe)
        empty = np.zeros((0, retrains, len(ks)), dtype=np.int64)
        return empty, np.zeros(0, dtype=np.int64), rmse
    eval_data = eval_data or datasets
    hits = np.zeros((n_targets, retrains, len(ks)), dtype=np.int64)
    eligible = np.zeros(n_targets, dtype=np.int64)
    rmse = None if test is None else np.full((n_targets, retrains), np.nan)
    shared = len(datasets) == 1
    batched = "per_replica_data" in victim_class(config["victim"]["name"]).capabilities
    group = max(1, MAX_REPLICAS_PER_FIT // retrains) if batched and not shared else 1
    groups = (
        [[0]]
        if shared
        else [list(range(i, min(i + group, n_targets))) for i in range(0, n_targets, group)]
    )
    for members in groups:
        n_replicas = retrains * len(members)
        model = _new_victim(config["victim"], n_replicas, seed, device)
        say(f"training {n_replicas} {config['victim']['name']} replicas")
        if len(members) > 1:
            model.fit([datasets[t] for t in members for _ in range(retrains)])
        else:
            model.fit(datasets[0] if shared else datasets[members[0]])
        say("measuring HR_t")
        if shared:
            thr = target_hit_ratio(
                model, eval_data[0], targets, ks, batch_size=_score_batch(model, datasets[0])
            )
            hits[:] = thr.hits.transpose(1, 0, 2)
            eligible[:] = thr.eligible
            if test is not None:
                rmse[:] = utility_rmse(model, test)[None, :]
            if target_scores is not None:
                target_scores[:] = _mean_normal_scores(model, datasets[0], targets).T
            if probe_scores is not None:
                probe_scores[:] = pair_predictions(model, *probe)[None]
            continue
        for j, t in enumerate(members):
            thr = target_hit_ratio(
                model,
                eval_data[t],
                targets[t : t + 1],
                ks,
                batch_size=_score_batch(model, datasets[t]),
            )
            hits[t] = thr.hits[j * retrains : (j + 1) * retrains, 0]
            eligible[t] = thr.eligible[0]
            if target_scores is not None:
                means = _mean_normal_scores(model, datasets[t], targets[t : t + 1])[:, 0]
                target_scores[t] = means[j * retrains : (j + 1) * retrains]
        if test is not None:
            rmse[members] = utility_rmse(model, test).reshape(len(members), retrains)
        if probe_scores is not None:
            predictions = pair_predictions(model, *probe)
            probe_scores[members] = predictions.reshape(len(members), retrains, -1)
    return hits, eligible, rmse


def _mean_normal_scores(model: Recommender, data: Interactions, items: np.ndarray) -> np.ndarray:
    """Mean predicted score of ``items`` over the normal users of ``data``, ``[replicas, items]``
    (normal users are the first rows of every per-replica dataset)."""
    users = np.flatnonzero(~data.is_fake)
    total = np.zeros((model.n_replicas, len(items)))
    index = torch.as_tensor(items, dtype=torch.long)
    for start in range(0, len(users), 1024):
        scores = model.score_replicas(users[start : start + 1024])
        total += scores[:, :, index.to(scores.device)].double().sum(1).cpu().numpy()
    return total / max(len(users), 1)


def _new_victim(victim: dict[str, Any], n_replicas: int, seed: int, device: str) -> Recommender:
    return make_victim(
        victim["name"], **victim["params"], n_replicas=n_replicas, random_state=seed, device=device
    )


def _score_batch(model: Recommender, data: Interactions) -> int:
    """Users per scoring block so that ``[replicas, users, items]`` stays within budget."""
    return int(np.clip(SCORE_BLOCK_ELEMENTS // (model.n_replicas * data.n_items), 1, 1024))


def _rmse_split(
    data: Interactions, config: dict[str, Any]
) -> tuple[Interactions, Interactions | None]:
    """(train, test): the hold-out split for RMSE on explicit data, else (data, None)."""
    if data.is_implicit or config["rmse_holdout"] <= 0 or config.get("victim_data") == "binarized":
        return data, None
    seed = stable_seed("holdout", config["seed"], config["dataset"])
    return transforms.holdout_split(data, config["rmse_holdout"], random_state=seed)


def _rows(
    config: dict[str, Any],
    data: Interactions,
    targets: np.ndarray,
    hits: np.ndarray,
    eligible: np.ndarray,
    rmse: np.ndarray | None,
    detection: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One result row per (target, retrain, K); without targets one per (retrain, K) with
    ``target_index`` -1 (RMSE only)."""
    rows = []
    ids = data.item_ids[targets]
    if len(targets) == 0:
        for r in range(config["retrains"]):
            for k in config["ks"]:
                row = {
                    "target_index": -1,
                    "target_id": "",
                    "target_type": config["targets"]["type"],
                    "retrain": r,
                    "k": k,
                    "eligible": 0,
                    "hits": 0,
                    "hr": None,
                    "rmse": None if rmse is None else float(rmse[0, r]),
                }
                if detection is not None:
                    result = detection["results"][0]
                    row.update(fpr=float(result.fpr), fnr=float(result.fnr))
                rows.append(row)
        return rows
    for t in range(len(targets)):
        for r in range(config["retrains"]):
            for j, k in enumerate(config["ks"]):
                row = {
                    "target_index": t,
                    "target_id": str(ids[t]),
                    "target_type": config["targets"]["type"],
                    "retrain": r,
                    "k": k,
                    "eligible": int(eligible[t]),
                    "hits": int(hits[t, r, j]),
                    "hr": _ratio(hits[t, r, j], eligible[t]),
                    "rmse": None if rmse is None else float(rmse[t, r]),
                }
                if detection is not None:
                    result = detection["results"][min(t, len(detection["results"]) - 1)]
                    row.update(
                        eligible_detected=int(detection["eligible"][t]),
                        hits_detected=int(detection["hits"][t, r, j]),
                        hr_detected=_ratio(detection["hits"][t, r, j], detection["eligible"][t]),
                        fpr=float(result.fpr),
                        fnr=float(result.fnr),
                    )
                rows.append(row)
    return rows


def _ratio(hits: int, eligible: int) -> float | None:
    return float(hits) / float(eligible) if eligible > 0 else None
