"""Meta-gradient edge attacks (Aravind's thesis): gradients, contracts, errors and effect."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from recpoison.attacks import make_attack
from recpoison.attacks.edges import apply_flips
from recpoison.attacks.meta import sample_non_edges
from recpoison.attacks.meta_gradient import (
    OPTIMIZERS,
    FunctionalNCF,
    PairData,
    approx_meta_gradient,
    meta_gradient,
)
from recpoison.data import planted
from recpoison.data.transforms import holdout_split
from recpoison.errors import ConfigError
from recpoison.victims import make_victim


def tiny_problem(architecture: str):
    """12 x 10 implicit data, its pairs (all entries) and a float64 functional surrogate."""
    data = planted(12, 10, n_factors=2, ratings_per_user=4, rating_scale=None, random_state=0)
    victim = make_victim(architecture, random_state=0, device="cpu")
    if architecture == "neumf":
        victim.set_params(embedding_dim=4, layers=(8, 4))
    model = FunctionalNCF(victim.initial_module(data.n_users, data.n_items), dtype=torch.float64)
    # a larger initialisation than NCF's N(0, 0.01) so that a few steps move far from zero
    model.initial = {k: v * 30 if v.dim() == 2 else v for k, v in model.initial.items()}
    users, items = np.divmod(np.arange(data.n_users * data.n_items), data.n_items)
    pairs = PairData(torch.as_tensor(users), torch.as_tensor(items))
    labels = torch.as_tensor(data.matrix.toarray().ravel(), dtype=torch.float64)
    return model, pairs, labels


def unrolled_loss(model, pairs, labels, steps, optimizer) -> float:
    """L_train(θ_T(A), A) without any meta-graph (for finite differences)."""
    params = model.train(pairs, labels, steps, optimizer)
    with torch.no_grad():
        return float(model.loss(params, pairs, labels))


@pytest.mark.parametrize(
    ("architecture", "optimizer", "lr"),
    [("gmf", "sgd", 0.05), ("gmf", "adam", 0.05), ("neumf", "adam", 0.02)],
)
def test_meta_gradient_matches_finite_differences(architecture, optimizer, lr):
    model, pairs, labels = tiny_problem(architecture)
    opt = OPTIMIZERS[optimizer](lr)
    steps = 6
    grad, loss, _ = meta_gradient(model, pairs, labels, steps, opt)
    assert loss == pytest.approx(unrolled_loss(model, pairs, labels, steps, opt), rel=1e-10)
    eps = 1e-6
    for k in [0, 7, 31, 64, 118]:  # edges and non-edges
        bump = torch.zeros_like(labels)
        bump[k] = eps
        up = unrolled_loss(model, pairs, labels + bump, steps, opt)
        down = unrolled_loss(model, pairs, labels - bump, steps, opt)
        assert grad[k].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


def test_meta_approx_is_exact_for_one_step_and_close_for_more():
    model, pairs, labels = tiny_problem("gmf")
    opt = OPTIMIZERS["sgd"](0.05)
    exact, _, _ = meta_gradient(model, pairs, labels, 1, opt)
    approx, _, _ = approx_meta_gradient(model, pairs, labels, 1, opt)
    torch.testing.assert_close(approx, exact)
    steps = 10
    exact, _, _ = meta_gradient(model, pairs, labels, steps, opt)
    approx, _, _ = approx_meta_gradient(model, pairs, labels, steps, opt)
    # Algorithm 3 sums T per-step gradients: compare directions (scale differs by ~T)
    cosine = float(torch.nn.functional.cosine_similarity(exact, approx, dim=0))
    gap = float(torch.linalg.norm(approx / steps - exact) / torch.linalg.norm(exact))
    assert 0.5 < cosine < 0.9999  # measured 0.93: an approximation, but a faithful one
    assert gap < 1.0


@pytest.fixture(scope="module")
def small_data():
    return planted(40, 30, n_factors=3, ratings_per_user=6, rating_scale=None, random_state=1)


@pytest.mark.parametrize("name", ["meta", "meta-approx"])
def test_meta_inserts_distinct_sampled_non_edges(small_data, name):
    result = make_attack(name, steps=10, flips_per_step=2).perturb(small_data, 7, random_state=0)
    flips = result.flips
    assert flips.shape == (7, 3) and (flips[:, 2] == 1).all()
    keys = flips[:, 0] * small_data.n_items + flips[:, 1]
    assert len(np.unique(keys)) == 7
    assert (small_data.matrix[flips[:, 0], flips[:, 1]] == 0).all()  # were non-edges
    assert (result.data.matrix[flips[:, 0], flips[:, 1]] == 1).all()  # now edges
    assert result.data.n_ratings == small_data.n_ratings + 7
    assert len(result.info["surrogate_loss"]) == 4  # ceil(7 / 2) meta-gradients
    assert result.info["candidates"] == small_data.n_ratings  # negative_ratio 1


def test_meta_is_deterministic_and_uses_the_given_surrogate(small_data):
    gmf = make_victim("gmf", random_state=4, device="cpu")
    runs = [
        make_attack("meta-surrogate", steps=5).perturb(small_data, 3, surrogate=gmf, random_state=2)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].flips, runs[1].flips)
    neumf = make_victim("neumf", embedding_dim=4, layers=(8, 4), random_state=4, device="cpu")
    other = make_attack("meta-surrogate", steps=5).perturb(
        small_data, 3, surrogate=neumf, random_state=2
    )
    assert not np.array_equal(other.flips, runs[0].flips)


def test_meta_new_users_flip_only_the_appended_users(small_data):
    result = make_attack("meta-new-users", new_users=4, steps=5, flips_per_step=3).perturb(
        small_data, 9, random_state=0
    )
    assert result.data.n_users == small_data.n_users + 4
    assert result.data.is_fake[-4:].all() and not result.data.is_fake[:-4].any()
    assert (result.flips[:, 0] >= small_data.n_users).all()
    assert result.data.matrix[: small_data.n_users].nnz == small_data.n_ratings
    assert result.data.matrix[small_data.n_users :].nnz == 9
    assert result.info["candidates"] == 4 * small_data.n_items


@pytest.mark.parametrize("seeding", ["sample", "kmeans"])
def test_meta_similar_users_seed_then_attack(small_data, seeding):
    attack = make_attack("meta-similar-users", new_users=3, seeding=seeding, steps=5)
    result = attack.perturb(small_data, 4, random_state=0)
    new_rows = result.data.matrix[small_data.n_users :]
    seeded = result.info["seeded_edges"]
    assert new_rows.nnz == seeded + 4
    if seeding == "sample":  # half of a real user's 6 items each
        assert seeded == 3 * 3
    else:
        assert seeded == 0


@pytest.mark.parametrize(
    ("name", "params", "budget", "surrogate", "message"),
    [
        ("meta", {}, 0, None, "budget"),
        ("meta", {}, 10_000, None, "exceeds"),
        ("meta", {"steps": 0}, 3, None, "steps"),
        ("meta", {"optimizer": "rmsprop"}, 3, None, "optimizer"),
        ("meta", {"max_memory_gb": 1e-6}, 3, None, "GiB"),
        ("meta", {}, 3, "als-mf", "differentiable"),
        ("meta-surrogate", {}, 3, None, "surrogate"),
        ("meta-new-users", {"new_users": 0}, 3, None, "new_users"),
        ("meta-similar-users", {"seeding": "bogus"}, 3, None, "seeding"),
        ("meta-similar-users", {"new_users": 500}, 3, None, "real users"),
    ],
)
def test_meta_refuses_bad_configurations(small_data, name, params, budget, surrogate, message):
    model = None if surrogate is None else make_victim(surrogate)
    with pytest.raises(ConfigError, match=message):
        make_attack(name, steps=params.pop("steps", 3), **params).perturb(
            small_data, budget, surrogate=model, random_state=0
        )


def test_meta_refuses_explicit_ratings():
    data = planted(20, 15, ratings_per_user=4, random_state=0)
    with pytest.raises(ConfigError, match="binarize"):
        make_attack("meta").perturb(data, 2, random_state=0)


def test_meta_lowers_the_retrained_victims_quality_more_than_random_insertions():
    """Thesis §4.2 on planted data: 150 users x 100 items, 20 % of the ratings held out as unseen
    positives; a budget of 10 % of the sampled negatives; GMF victim (4 replicas)."""
    data = planted(150, 100, ratings_per_user=15, rating_scale=None, random_state=0)
    train, test = holdout_split(data, 0.2, random_state=0)
    rng = np.random.default_rng(1)
    pos_u, pos_i, _ = test.triples()
    neg_u, neg_i = sample_non_edges(data, np.arange(data.n_users), len(pos_u), rng)
    users, items = np.r_[pos_u, neg_u], np.r_[pos_i, neg_i]
    truth = np.r_[np.ones(len(pos_u)), np.zeros(len(neg_u))]

    def unseen_quality(poisoned):
        victim = make_victim("gmf", n_replicas=4, epochs=20, lr=0.01, random_state=3, device="cpu")
        scores = victim.fit(poisoned).score_replicas(np.arange(data.n_users)).numpy()
        scores = scores[:, users, items]
        auc = np.mean([roc_auc_score(truth, s) for s in scores])
        return auc, float(np.mean((scores > 0) == truth))

    budget = 180
    random_u, random_i = sample_non_edges(train, np.arange(data.n_users), budget, rng)
    surrogate = make_victim("gmf", random_state=3, device="cpu")
    meta = make_attack("meta", flips_per_step=6).perturb(
        train, budget, surrogate=surrogate, random_state=0
    )
    clean_auc, clean_acc = unseen_quality(train)
    random_auc, _ = unseen_quality(
        apply_flips(train, np.column_stack([random_u, random_i, np.ones_like(random_u)]))
    )
    meta_auc, meta_acc = unseen_quality(meta.data)
    # measured: AUROC 0.808 clean, 0.785 random, 0.779 meta; accuracy (0.62-0.63) moves within
    # the noise of this small problem, so only AUROC is asserted
    assert meta_auc < random_auc < clean_auc
    assert meta_acc < clean_acc
