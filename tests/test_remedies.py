"""Remedies after detection: SISA training and unlearning, full retrain, replica surgery."""

import json
import sqlite3

import numpy as np
import pytest
import torch

from recpoison.attacks import make_attack
from recpoison.data.transforms import leave_one_out
from recpoison.errors import ConfigError
from recpoison.experiment import build_report, parse_spec, run_experiment
from recpoison.experiment.report import to_markdown
from recpoison.metrics import leave_one_out_hr_ndcg, target_hit_ratio
from recpoison.remedies import SISA, removal_mask, retrain
from recpoison.remedies.sisa import slice_epochs
from recpoison.victims import make_victim
from recpoison.victims.ncf_replicas import put_replicas, take_replicas

SMALL = {"embedding_dim": 4, "layers": [8, 4], "epochs": 3, "batch_size": 128, "lr": 0.01}
EFFECT = {"embedding_dim": 8, "layers": [32, 16, 8], "epochs": 10, "batch_size": 512, "lr": 5e-3}


def sisa(**params):
    defaults = {"victim_params": SMALL, "shards": 3, "slices": 2, "random_state": 0}
    return SISA(**{**defaults, **params}, device="cpu")


@pytest.fixture(scope="module")
def attacked(effect_setup):
    """The effect data with 25 random fake users promoting its target, and the mask of them."""
    data, target, _, _ = effect_setup
    fake = make_attack("random", n_fillers=10).generate(data, [target], 25, random_state=0)
    poisoned = data.with_fake_users(fake)
    return poisoned, target


def test_slice_steps_cost_about_the_epochs_of_one_pass():
    assert [slice_epochs(20, slices) for slices in (1, 3, 5, 39, 100)] == [20, 10, 7, 1, 1]


def test_partition_is_disjoint_and_balanced(tiny_implicit):
    model = sisa(shards=3, slices=2, n_replicas=2).fit(tiny_implicit)
    for r in range(2):
        counts = np.bincount(model.shard_of_[r] * 2 + model.slice_of_[r], minlength=6)
        assert counts.sum() == tiny_implicit.n_users and counts.max() - counts.min() <= 1
    assert not np.array_equal(model.shard_of_[0], model.shard_of_[1])  # one split per retrain
    assert len(model.checkpoints_) == 2 and model.checkpoints_[-1].n_replicas == 6
    assert model.score_replicas(np.arange(4)).shape == (2, 4, tiny_implicit.n_items)


def test_the_ensemble_scores_the_mean_of_its_shards(tiny_implicit):
    model = sisa(n_replicas=2).fit(tiny_implicit)
    shards = model.checkpoints_[-1].score_replicas(np.arange(5)).view(2, 3, 5, -1)
    assert torch.allclose(model.score_replicas(np.arange(5)), shards.mean(1))


def test_a_shard_trains_only_on_its_users(tiny_implicit):
    """Rows of other shards are empty in every prefix a constituent sees."""
    model = sisa().fit(tiny_implicit)
    for step in range(model.slices):
        data = model._prefix(1, step)
        rated = np.diff(data.matrix.indptr) > 0
        assert (model.shard_of_[0][rated] == 1).all()
        assert (model.slice_of_[0][rated] <= step).all()


def test_unlearned_model_carries_no_trace_of_the_removed_users(tiny_implicit):
    """Two datasets that differ only in the removed users' items (same counts) give the same
    model after unlearning them, bit for bit; shards without them are not retrained."""
    rng = np.random.default_rng(0)
    removed = np.array([3, 40])
    matrix = tiny_implicit.matrix.tolil()
    for user in removed:
        matrix.rows[user] = sorted(rng.choice(tiny_implicit.n_items, 8, replace=False).tolist())
        matrix.data[user] = [1.0] * 8
    other = tiny_implicit.replace(matrix=matrix.tocsr(), timestamps=None)
    first = sisa(n_replicas=2).fit(tiny_implicit.replace(timestamps=None))
    before = first.score_replicas(np.arange(60))
    shards_before = first.checkpoints_[-1].score_replicas(np.arange(60)).clone()
    second = sisa(n_replicas=2).fit(other)
    assert not torch.equal(before, second.score_replicas(np.arange(60)))
    result = first.unlearn(removed)
    second.unlearn(removed)
    assert torch.equal(first.score_replicas(np.arange(60)), second.score_replicas(np.arange(60)))
    affected = {r * 3 + int(first.shard_of_[r, u]) for r in range(2) for u in removed}
    assert result.info["shards_retrained"] == len(affected) < 6
    after = first.checkpoints_[-1].score_replicas(np.arange(60))
    for j in set(range(6)) - affected:
        assert torch.equal(after[j], shards_before[j])
    assert (np.diff(result.data.matrix.indptr)[removed] == 0).all()


def test_unlearning_fake_users_undoes_the_attack_and_costs_less_than_the_fit(attacked):
    poisoned, target = attacked
    model = SISA(
        victim_params=EFFECT,
        shards=2,
        slices=2,
        slicing="order",
        n_replicas=3,
        random_state=1,
        device="cpu",
    ).fit(poisoned)
    before = target_hit_ratio(model, poisoned, [target]).mean(10)
    result = model.unlearn(poisoned.is_fake)
    after = target_hit_ratio(model, result.data.replace(is_fake=poisoned.is_fake), [target])
    assert before > 0.03 and after.mean(10) < before / 3
    # appended last, the fake users sit in the last slice: one slice step per shard
    assert result.info["slice_steps_retrained"] == result.info["shards_retrained"] == 6
    assert result.seconds < model.fit_seconds_
    again = model.unlearn(poisoned.is_fake)  # nothing new to remove
    assert again.info["shards_retrained"] == 0


def test_sisa_victim_quality_is_far_above_chance(effect_setup):
    data, _, _, _ = effect_setup
    train, test_items = leave_one_out(data, random_state=0)
    model = SISA(
        victim_params=EFFECT, shards=2, slices=2, n_replicas=1, random_state=0, device="cpu"
    )
    model.fit(train, exclude_items=test_items)
    quality = leave_one_out_hr_ndcg(model, train, test_items, 10, 99, random_state=0)
    assert quality["hr"][0] > 0.3  # chance: 10 / 100


def test_retrain_fits_a_fresh_copy_without_the_users(tiny_implicit):
    victim = make_victim("neumf", **SMALL, n_replicas=2, random_state=0, device="cpu")
    result = retrain(victim, tiny_implicit, np.array([0, 1]))
    assert result.model is not victim and result.seconds > 0
    assert result.data.matrix[:2].nnz == 0 and result.info == {"users_removed": 2}
    direct = victim.clone().fit(result.data)
    assert torch.equal(result.model.score_replicas([5]), direct.score_replicas([5]))


def test_taken_replicas_train_like_the_stack(tiny_implicit):
    model = make_victim("neumf", **SMALL, n_replicas=3, random_state=0, device="cpu")
    model.fit(tiny_implicit)
    sub = take_replicas(model, [2, 0])
    scores = model.score_replicas(np.arange(6))
    assert torch.equal(sub.score_replicas(np.arange(6)), scores[[2, 0]])
    model.partial_fit(tiny_implicit, 1)
    sub.partial_fit(tiny_implicit, 1)  # same data, generators and Adam state: same steps
    trained = model.score_replicas(np.arange(6))
    assert torch.allclose(sub.score_replicas(np.arange(6)), trained[[2, 0]], atol=1e-5)
    sub.partial_fit(tiny_implicit, 1)
    put_replicas(model, [2, 0], sub)
    written = model.score_replicas(np.arange(6))
    assert torch.equal(written[[2, 0]], sub.score_replicas(np.arange(6)))
    assert torch.equal(written[1], trained[1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"victim": "implicit-als"}, "sisa trains neural victims"),
        ({"shards": 0}, "shards must be an integer >= 1"),
        ({"shards": 40, "slices": 2}, "need at least that many users"),
        ({"slicing": "time"}, "slicing must be 'random' or 'order'"),
    ],
)
def test_bad_settings_are_config_errors(params, message, tiny_implicit):
    with pytest.raises(ConfigError, match=message):
        sisa(**params).fit(tiny_implicit)


def test_unlearning_before_fitting_and_bad_users_are_config_errors(tiny_implicit):
    with pytest.raises(ConfigError, match="not fitted"):
        sisa().unlearn(np.array([0]))
    with pytest.raises(ConfigError, match="user indices must lie in"):
        removal_mask(tiny_implicit, np.array([60]))
    with pytest.raises(ConfigError, match="a user mask needs 60 entries"):
        removal_mask(tiny_implicit, np.ones(3, dtype=bool))


def test_the_runner_unlearns_flagged_users_with_sisa(planted_csv, tmp_path):
    """`remedy: {name: sisa}` after a t-test detector: HR_t after unlearning, the seconds of
    unlearning against a full retrain, and the unlearned ensemble's quality, per cell."""
    spec = {
        "name": "sisa-remedy",
        "datasets": [{"source": str(planted_csv(n_users=60, ratings_per_user=8))}],
        "victim_data": "binarized",
        "victims": [{"name": "gmf", "params": {"epochs": 2, "embedding_dim": 4}}],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "random", "count": 2}],
        "detector": {"name": "ttest", "params": {"alpha": 0.05}},
        "remedy": {"name": "sisa", "params": {"shards": 2, "slices": 2, "slicing": "order"}},
        "retrains": 2,
        "victim_quality": False,
        "device": "cpu",
        "seed": 3,
    }
    run_experiment(spec, tmp_path / "sisa.db", progress=False)
    report = build_report(tmp_path / "sisa.db")
    attacked = report[report["attack"] == "random"].iloc[0]
    assert attacked["remedy"] == "sisa" and 0 <= attacked["hr_mean_detected"] <= 1
    assert attacked["remedy_seconds"] > 0 and attacked["remedy_retrain_seconds"] > 0
    assert 0 < attacked["remedy_ndcg"] <= attacked["remedy_hr"] <= 1
    (info,) = sqlite3.connect(tmp_path / "sisa.db").execute(
        "SELECT info_json FROM cells WHERE config_json LIKE '%\"sisa\"%'"
    )
    remedy = json.loads(info[0])["remedy"]
    assert remedy["fit_seconds"] > 0 and 0 < remedy["retrained_share"] <= 1
    assert len(remedy["quality"]) == 2 and "full retrain seconds" in to_markdown(report)
    spec["victims"] = [{"name": "implicit-als"}]
    with pytest.raises(ConfigError, match="sisa trains neural victims"):
        parse_spec(spec)
