"""Contracts of every profile attack (random, average, bandwagon, poison-model) and effect tests
of the heuristic baselines (Huang et al., NDSS 2021, section V-A)."""

import numpy as np
import pytest
import scipy.sparse as sp

from recpoison.attacks import make_attack
from recpoison.attacks.heuristic import BandwagonAttack, sample_distinct
from recpoison.attacks.ratings import RatingSampler, filler_popularity, rating_step
from recpoison.data import FakeProfiles, Interactions
from recpoison.data.transforms import item_popularity
from recpoison.errors import ConfigError
from recpoison.metrics import target_hit_ratio
from recpoison.victims.neural import NeuMF

ATTACK_NAMES = ["random", "average", "bandwagon", "poison-model"]
N_FAKE, N_FILLERS = 6, 5


def tiny_surrogate() -> NeuMF:
    return NeuMF(
        embedding_dim=4,
        layers=(8, 4),
        epochs=2,
        batch_size=256,
        lr=1e-2,
        random_state=0,
        device="cpu",
    )


def attack(name: str, **params):
    if name == "poison-model":
        params = {"rounds": 1, "fake_per_step": 3, "refit_after": False, **params}
    return make_attack(name, **{"n_fillers": N_FILLERS, **params})


def generate(name: str, data: Interactions, targets, n_fake: int = N_FAKE, seed: int = 0, **params):
    surrogate = tiny_surrogate() if name == "poison-model" else None
    return attack(name, **params).generate(
        data, targets, n_fake, surrogate=surrogate, random_state=seed
    )


@pytest.fixture(scope="module")
def half_star(tiny_explicit) -> Interactions:
    """``tiny_explicit`` on a 0.5-5 half-star scale (every other rating lowered by 0.5)."""
    matrix = tiny_explicit.matrix.copy()
    matrix.data[::2] -= 0.5
    return tiny_explicit.replace(matrix=matrix, rating_scale=(0.5, 5.0))


@pytest.mark.parametrize("name", ATTACK_NAMES)
@pytest.mark.parametrize("kind", ["implicit", "explicit", "half_star"])
def test_profile_contract(name, kind, request):
    data = request.getfixturevalue(
        {"implicit": "tiny_implicit", "explicit": "tiny_explicit", "half_star": "half_star"}[kind]
    )
    targets = np.array([3])
    fake = generate(name, data, targets)
    matrix = fake.matrix.toarray()
    assert matrix.shape == (N_FAKE, data.n_items)
    assert fake.n_fake == N_FAKE
    np.testing.assert_array_equal(fake.targets, targets)
    assert np.all((matrix > 0).sum(axis=1) == N_FILLERS + 1)
    top = 1.0 if data.is_implicit else data.rating_scale[1]
    np.testing.assert_array_equal(matrix[:, 3], top)
    ratings = matrix[matrix > 0]
    if data.is_implicit:
        np.testing.assert_array_equal(ratings, 1.0)
    else:
        low, high = data.rating_scale
        step = 0.5 if kind == "half_star" else 1.0
        assert ratings.min() >= low and ratings.max() <= high
        np.testing.assert_allclose((ratings - low) / step, np.round((ratings - low) / step))
    poisoned = data.with_fake_users(fake)
    assert poisoned.n_fake == N_FAKE and poisoned.n_real == data.n_users


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_several_targets_never_fillers_and_rate_target_false(name, tiny_implicit):
    targets = np.array([0, 7, 11])
    rated = generate(name, tiny_implicit, targets).matrix.toarray() > 0
    assert rated[:, targets].all()
    assert np.all(rated.sum(axis=1) == N_FILLERS + len(targets))

    omitted = generate(name, tiny_implicit, targets, rate_target=False).matrix.toarray() > 0
    assert not omitted[:, targets].any()
    # the variant of section V-B keeps the profile size: n + len(targets) non-target items
    assert np.all(omitted.sum(axis=1) == N_FILLERS + len(targets))


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_seeded_generation_is_deterministic(name, tiny_explicit):
    first = generate(name, tiny_explicit, [5], seed=7).matrix
    second = generate(name, tiny_explicit, [5], seed=7).matrix
    assert (first != second).nnz == 0
    assert (first != generate(name, tiny_explicit, [5], seed=8).matrix).nnz > 0


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_impossible_arguments_are_config_errors(name, tiny_implicit):
    with pytest.raises(ConfigError, match="fake users"):
        generate(name, tiny_implicit, [1], n_fake=0)
    with pytest.raises(ConfigError, match="not in the data"):
        generate(name, tiny_implicit, [tiny_implicit.n_items])
    with pytest.raises(ConfigError, match="non-target items"):
        generate(
            name, tiny_implicit, [1, 2], rate_target=False, n_fillers=tiny_implicit.n_items - 3
        )


def test_poison_model_needs_a_surrogate(tiny_implicit):
    with pytest.raises(ConfigError, match="surrogate"):
        make_attack("poison-model").generate(tiny_implicit, [1], 2, random_state=0)


def test_average_attack_uses_item_statistics_random_attack_global_ones():
    # two items: item 0 always rated 1, item 1 always rated 5; global mean 3
    users = np.repeat(np.arange(40), 2)
    items = np.tile([0, 1], 40)
    ratings = np.tile([1.0, 5.0], 40)
    extra = Interactions.from_triples(
        np.r_[users, 99], np.r_[items, 2], np.r_[ratings, 3.0], rating_scale=(1.0, 5.0)
    )
    per_item = RatingSampler.fit(extra, per_item=True)
    np.testing.assert_allclose(per_item.mean[:2], [1.0, 5.0])
    draws = per_item.sample(np.array([[0, 1]] * 50), np.random.default_rng(0))
    np.testing.assert_array_equal(draws[:, 0], 1.0)
    np.testing.assert_array_equal(draws[:, 1], 5.0)
    global_draws = RatingSampler.fit(extra, per_item=False).sample(
        np.zeros(500, dtype=int), np.random.default_rng(0)
    )
    assert abs(global_draws.mean() - 3.0) < 0.3 and len(np.unique(global_draws)) >= 3


def test_rating_step_detects_half_stars(tiny_explicit, half_star, tiny_implicit):
    assert rating_step(tiny_explicit) == 1.0
    assert rating_step(half_star) == 0.5
    assert rating_step(tiny_implicit) is None


def test_sample_distinct_is_uniform_and_distinct():
    rows = sample_distinct(np.arange(10, 20), 4000, 3, np.random.default_rng(0))
    assert all(len(set(row)) == 3 for row in rows[:200])
    counts = np.bincount(rows.ravel() - 10, minlength=10)
    assert counts.min() > 0.9 * 1200 and counts.max() < 1.1 * 1200


def test_bandwagon_draws_its_share_from_the_most_popular_items(tiny_implicit):
    attack = BandwagonAttack(n_fillers=10, popular_share=0.3, popular_fraction=0.25)
    candidates = np.setdiff1d(np.arange(tiny_implicit.n_items), [0])
    popular = attack.popular_items(tiny_implicit, candidates)
    popularity = item_popularity(tiny_implicit)
    assert len(popular) == 10  # ceil(0.25 * 40)
    assert popularity[popular].min() >= np.sort(popularity[candidates])[-10]
    fake = attack.generate(tiny_implicit, [0], 20, random_state=0)
    fillers = fake.matrix.toarray()[:, candidates] > 0
    from_pool = fillers[:, np.searchsorted(candidates, popular)].sum(axis=1)
    np.testing.assert_array_equal(from_pool, 3)
    assert fake.info["n_popular_fillers"] == 3


def test_bandwagon_popularity_defaults_follow_the_paper(tiny_explicit):
    """Average rating on explicit data, frequency on implicit data (section V-A)."""
    attack = BandwagonAttack(popular_fraction=0.05)
    candidates = np.arange(tiny_explicit.n_items)
    csc = tiny_explicit.matrix.tocsc()
    means = np.asarray(csc.sum(axis=0)).ravel() / np.maximum(np.diff(csc.indptr), 1)
    popular = attack.popular_items(tiny_explicit, candidates)
    assert means[popular].min() >= np.sort(means)[-len(popular)]
    by_count = BandwagonAttack(popular_fraction=0.05, popularity="count")
    counts = item_popularity(tiny_explicit)
    assert (
        counts[by_count.popular_items(tiny_explicit, candidates)].min()
        >= np.sort(counts)[-len(popular)]
    )
    with pytest.raises(ConfigError, match="popularity"):
        BandwagonAttack(popularity="views").generate(tiny_explicit, [0], 2, random_state=0)


def test_bandwagon_classic_variant_rates_popular_fillers_at_max(tiny_explicit):
    fake = BandwagonAttack(n_fillers=10, popular_share=0.5, popular_rating="max").generate(
        tiny_explicit, [0], 30, random_state=0
    )
    pool = BandwagonAttack(popular_fraction=0.1).popular_items(
        tiny_explicit, np.arange(1, tiny_explicit.n_items)
    )
    dense = fake.matrix.toarray()
    np.testing.assert_array_equal(dense[:, pool][dense[:, pool] > 0], 5.0)


# -- effect ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random", "average", "bandwagon"])
def test_heuristic_attacks_promote_an_unpopular_target(name, effect_setup):
    """20 % fake users with 10 fillers: every retrained replica recommends the target to more
    normal users than the best replica without attack (checked on 3 data x 2 victim seeds:
    the attacked minimum was >= 0.008, the clean maximum <= 0.004)."""
    data, target, clean, victim = effect_setup
    fake = make_attack(name, n_fillers=10).generate(data, [target], 50, random_state=0)
    poisoned = data.with_fake_users(fake)
    hr = target_hit_ratio(victim().fit(poisoned), poisoned, [target]).ratio()[:, 0, 0]
    assert hr.min() > clean.max(), (hr, clean)


def test_filler_popularity_counts_the_attackers_ratings_of_non_targets(tiny_implicit):
    popularity = np.bincount(tiny_implicit.matrix.indices, minlength=tiny_implicit.n_items)
    fillers = np.argsort(popularity)[-3:]  # the three most popular items
    target = int(np.argmin(popularity))
    rows = np.zeros((2, tiny_implicit.n_items), dtype=np.float32)
    rows[:, fillers] = rows[:, target] = 1.0
    profiles = FakeProfiles(sp.csr_matrix(rows), np.array([target]))
    assert filler_popularity(tiny_implicit, profiles) == popularity[fillers].mean()
    random = make_attack("random", n_fillers=3).generate(tiny_implicit, [target], 5, random_state=0)
    popular = make_attack("bandwagon", n_fillers=3, popular_share=1.0).generate(
        tiny_implicit, [target], 5, random_state=0
    )
    assert filler_popularity(tiny_implicit, popular) > filler_popularity(tiny_implicit, random)
