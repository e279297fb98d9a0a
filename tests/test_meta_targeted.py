"""``meta-targeted``: meta-gradient fillers that lower Huang's target loss (an extension)."""

import pytest

from recpoison.attacks import make_attack
from recpoison.data import planted
from recpoison.errors import ConfigError
from recpoison.metrics import target_hit_ratio
from recpoison.victims import make_victim


@pytest.fixture(scope="module")
def data():
    return planted(40, 30, n_factors=3, ratings_per_user=6, rating_scale=None, random_state=1)


def test_meta_targeted_profiles_rate_the_target_and_lower_the_target_loss(data):
    target = 7
    fake = make_attack("meta-targeted", n_fillers=4, steps=20, flips_per_step=3).generate(
        data, [target], 3, random_state=0
    )
    dense = fake.matrix.toarray()
    assert dense.shape == (3, data.n_items)
    assert (dense[:, target] == 1).all() and (dense.sum(axis=1) == 5).all()
    losses = fake.info["target_loss"]
    assert len(losses) == 4  # 12 fillers, 3 per meta-gradient
    assert losses[-1] < losses[0]  # the surrogate's target loss falls as fillers are added


def test_meta_targeted_refuses_explicit_data_and_non_differentiable_surrogates(data):
    explicit = planted(20, 15, ratings_per_user=4, random_state=0)
    with pytest.raises(ConfigError, match="binarize"):
        make_attack("meta-targeted", n_fillers=3).generate(explicit, [0], 2, random_state=0)
    with pytest.raises(ConfigError, match="differentiable"):
        make_attack("meta-targeted", n_fillers=3).generate(
            data, [0], 2, surrogate=make_victim("als-mf"), random_state=0
        )


@pytest.mark.slow
def test_meta_targeted_promotes_an_unpopular_target_more_than_random(effect_setup):
    """20 % fake users with 10 fillers against the 4-replica NeuMF (GMF surrogate): measured
    HR_t@10 per replica 0.033, 0.017, 0.025, 0.029 against random's 0.012, 0.017, 0.012, 0.017
    and 0 without attack (about 40 s)."""
    data, target, clean, victim = effect_setup
    hits = {}
    for name, params in [("random", {}), ("meta-targeted", {"flips_per_step": 50})]:
        fake = make_attack(name, n_fillers=10, **params).generate(
            data, [target], 50, random_state=0
        )
        poisoned = data.with_fake_users(fake)
        hits[name] = target_hit_ratio(victim().fit(poisoned), poisoned, [target]).ratio()[:, 0, 0]
    assert hits["meta-targeted"].min() > clean.max()
    assert hits["meta-targeted"].mean() > hits["random"].mean()
