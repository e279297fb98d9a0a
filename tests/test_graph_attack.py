"""The Fang 2018 graph attack and S-Graph: gradient, influence (Eqs. 24-29), Algorithm 1, effect."""

import sqlite3

import numpy as np
import pytest
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.graph_attack import FakeUserGraph, Objective
from recpoison.attacks.graph_influence import user_influence
from recpoison.data import planted
from recpoison.errors import ConfigError
from recpoison.metrics import target_hit_ratio
from recpoison.victims import make_victim
from recpoison.victims.random_walk import BipartiteWalk

CPU = torch.device("cpu")


def test_gradient_matches_finite_differences_of_the_power_iteration(tiny_explicit):
    """dL/dw by implicit differentiation against central differences of the solved walk."""
    walk = BipartiteWalk.from_interactions(tiny_explicit, torch.float64, CPU)
    targets = np.array([3])
    users = np.arange(tiny_explicit.n_users)
    eligible = tiny_explicit.matrix[:, targets].toarray().T == 0
    objective = Objective(
        FakeUserGraph(walk), tiny_explicit, users, eligible, targets,
        alpha=0.3, top_n=5, width=0.1, eta=0.01, tol=1e-14, max_iter=3000, batch_size=25,
    )  # fmt: skip
    w = torch.as_tensor(np.random.default_rng(0).uniform(0.2, 2.0, tiny_explicit.n_items))
    _, grad = objective.value_and_grad(w)
    eps = 1e-6
    for item in (0, 3, 7, 20, 33):
        step = torch.zeros_like(w)
        step[item] = eps
        numeric = (
            objective.value_and_grad(w + step)[0] - objective.value_and_grad(w - step)[0]
        ) / (2 * eps)
        assert grad[item].item() == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def dense_m(data, alpha):
    ratings = data.matrix.toarray().astype(np.float64)
    n_users, n_items = ratings.shape
    adjacency = np.zeros((n_users + n_items,) * 2)
    adjacency[:n_users, n_users:] = ratings
    adjacency[n_users:, :n_users] = ratings.T
    q = (adjacency / adjacency.sum(1, keepdims=True)).T  # the Q of Eq. (22)
    return q, np.linalg.inv(np.eye(n_users + n_items) - (1 - alpha) * q)


@pytest.mark.parametrize("series_terms", [None, 1, 3])
def test_user_influence_follows_eqs_28_29(tiny_explicit, series_terms):
    """π(k,t) = Σ_{j∈Ω_k} Σ_u (1-α) p_uj M(t,k), with M exact or its truncated Taylor series."""
    alpha, target = 0.3, 11
    n_users = tiny_explicit.n_users
    q, m = dense_m(tiny_explicit, alpha)
    p = alpha * m[:, :n_users]  # p_u of every user (all are normal here)
    if series_terms is not None:
        m = sum(np.linalg.matrix_power((1 - alpha) * q, i) for i in range(series_terms + 1))
    expected = np.zeros(n_users)
    for k in range(n_users):
        for j in tiny_explicit.matrix[k].indices:
            delta = (1 - alpha) * p[n_users + j, :] * m[n_users + target, k]  # Eq. (28)
            expected[k] += delta.sum()  # Eq. (29), then Eq. (8)
    walk = BipartiteWalk.from_interactions(tiny_explicit, torch.float64, CPU)
    normal = np.ones(n_users, dtype=bool)
    got = user_influence(walk, np.array([target]), normal, alpha, series_terms)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


@pytest.fixture(scope="module")
def effect_data():
    """Planted ratings; target 50 has 12 ratings and is in nobody's top-10 before the attack."""
    data = planted(n_users=200, n_items=100, ratings_per_user=15, random_state=0)
    return data, 50


def hit_ratio(data, target, attack=None, **params):
    poisoned = data
    fake = None
    if attack is not None:
        fake = make_attack(attack, **params).generate(
            data, [target], 6, random_state=0
        )  # 3 % fake users
        poisoned = data.with_fake_users(fake)
    victim = make_victim("random-walk", device="cpu").fit(poisoned)
    return target_hit_ratio(victim, poisoned, [target]).mean(10), fake


@pytest.mark.parametrize("attack, params", [("graph-attack", {}), ("s-graph", {"delta": 40})])
def test_graph_attacks_beat_no_attack_and_random(effect_data, attack, params):
    data, target = effect_data
    none, _ = hit_ratio(data, target)
    random, _ = hit_ratio(data, target, "random", n_fillers=20)
    attacked, fake = hit_ratio(data, target, attack, device="cpu", **params)
    assert none == 0.0
    assert attacked > random + 0.05
    assert attacked > none + 0.08
    for first, best in fake.info["objective"]:  # every fake user's objective was lowered
        assert best < first
    assert fake.matrix.getnnz(axis=1).tolist() == [21] * 6  # 20 fillers + the target
    assert np.all(fake.matrix[:, target].toarray() == 5.0)


def test_s_graph_selects_delta_users(tiny_explicit):
    fake = make_attack("s-graph", delta=7, steps=1, device="cpu").generate(
        tiny_explicit, [2], 2, random_state=0
    )
    assert fake.info["n_influential"] == 7
    assert np.all(np.diff(fake.info["influence_path"]) >= 0)


@pytest.mark.parametrize("params", [{"alpha": 1.5}, {"width": 0.0}, {"top_n": 0}, {"delta": 0}])
def test_bad_parameters_are_config_errors(tiny_explicit, params):
    with pytest.raises(ConfigError):
        make_attack("s-graph", **params).generate(tiny_explicit, [2], 1, random_state=0)


def test_runner_cells_with_the_random_walk_victim(planted_csv, tmp_path):
    from recpoison.experiment import build_report
    from recpoison.experiment.runner import run_experiment

    spec = {
        "name": "graph",
        "datasets": [{"source": str(planted_csv(n_users=60, ratings_per_user=8))}],
        "victims": [{"name": "random-walk"}],
        "attacks": [
            {"name": "none"},
            {"name": "graph-attack", "params": {"n_fillers": 5, "steps": 2}},
            {"name": "s-graph", "params": {"n_fillers": 5, "steps": 2, "delta": 10}},
        ],
        "sizes": [0.05],
        "targets": [{"type": "random", "count": 2}],
        "retrains": 2,
        "ks": [10],
        "rmse_holdout": 0,
        "device": "cpu",
        "seed": 0,
    }
    store = tmp_path / "graph.db"
    run_experiment(spec, store, progress=False)
    report = build_report(store)
    assert set(report["attack"]) == {"none", "graph-attack", "s-graph"}
    assert report["n_retrains"].eq(2).all()
    hits = sqlite3.connect(store).execute(
        "SELECT cell_key, target_index, retrain, hits FROM results ORDER BY 1, 2, 3"
    )
    by_retrain = np.array([row[3] for row in hits]).reshape(-1, 2)
    np.testing.assert_array_equal(by_retrain[:, 0], by_retrain[:, 1])  # identical replicas


def test_graph_attack_from_the_command_line(cli, planted_csv, tmp_path):
    source = planted_csv(n_users=60, ratings_per_user=8)
    out = tmp_path / "poisoned.csv"
    args = ["attack", source, "--attack", "graph-attack", "--size", "0.05", "--targets"]
    code, stdout, _ = cli(*args, "random:1", "--out", out, "--fillers", "5", "--json",
                          "--param", "steps=1", "--param", "device=cpu")  # fmt: skip
    assert code == 0
    assert '"fake_users": 3' in stdout
    code, _, stderr = cli(*args, "random:1", "--out", out, "--param", "alpha=2")
    assert code == 2
    assert stderr.count("\n") == 1 and "alpha" in stderr
