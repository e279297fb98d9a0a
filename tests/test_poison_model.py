"""The poison-model attack (Huang et al., NDSS 2021, section IV): loss, selection, optimization,
diagnostics and effect."""

import math

import numpy as np
import pytest
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.filler_selection import SelectionProbability
from recpoison.attacks.poison_authors import masked_step
from recpoison.attacks.poison_loss import PoisonObjective, rank_gaps, seen_mask, user_losses
from recpoison.attacks.poison_model import PoisonModelAttack
from recpoison.data.transforms import item_popularity
from recpoison.errors import ConfigError
from recpoison.metrics import target_hit_ratio
from recpoison.victims.base import Recommender
from recpoison.victims.neural import NeuMF


def test_user_loss_eq2_hand_computed_and_differentiable():
    # user 0: item 0 seen; L_u = top-2 unseen = items 1, 2 -> l = logσ(1) - logσ(-1) = 1
    # user 1: the target is ranked first -> l = logσ(0) - logσ(5) (negative, above -κ)
    # user 2: has rated the target (not in S) -> 0
    logits = torch.tensor(
        [[3.0, 2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]],
        requires_grad=True,
    )
    seen = torch.tensor(
        [[True, False, False, False, False], [False] * 5, [False, False, False, False, True]]
    )
    eligible = torch.tensor([[True], [True], [False]])
    gaps = rank_gaps(logits, seen, torch.tensor([4]), top_k=2)
    loss = user_losses(gaps, eligible, kappa=1.0)
    expected_1 = math.log(0.5) - math.log(1 / (1 + math.exp(-5)))
    torch.testing.assert_close(loss[:, 0], torch.tensor([1.0, expected_1, 0.0]))
    clamped = user_losses(gaps, eligible, kappa=0.5)
    torch.testing.assert_close(clamped[1, 0], torch.tensor(-0.5))

    clamped.sum().backward()
    grad = logits.grad
    assert grad[0, 4] < 0 and grad[0, 2] > 0  # push the target up, the K-th item down
    assert torch.all(grad[1] == 0) and torch.all(grad[2] == 0)  # clamped at -κ, not in S


def test_selection_probability_eq7_eq8():
    selection = SelectionProbability(n_items=5, targets=np.array([4]), delta=0.5)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 1.0])  # the target scores highest but is never taken
    np.testing.assert_array_equal(selection.choose(scores, 2), [0, 1])
    np.testing.assert_allclose(selection.p, [0.5, 0.5, 1.0, 1.0])
    # adjusted scores 0.45, 0.4, 0.7, 0.6 -> items 2 and 3; then every p < 1 -> reset
    np.testing.assert_array_equal(selection.choose(scores, 2), [2, 3])
    np.testing.assert_allclose(selection.p, 1.0)
    assert selection.resets == 1


class Fixed(Recommender):
    """A non-differentiable 'victim'."""

    capabilities = frozenset({"implicit"})

    def fit(self, train):
        self._check_fit_input(train)
        return self

    def score_replicas(self, users):
        return torch.zeros(1, len(users), self.train_.n_items)


def test_a_non_differentiable_surrogate_is_refused(tiny_implicit):
    with pytest.raises(ConfigError, match="differentiable"):
        PoisonModelAttack(n_fillers=3).generate(
            tiny_implicit, [1], 2, surrogate=Fixed(), random_state=0
        )


def small_surrogate(epochs: int = 10) -> NeuMF:
    return NeuMF(
        embedding_dim=8,
        layers=(32, 16, 8),
        epochs=epochs,
        batch_size=512,
        lr=5e-3,
        n_replicas=3,
        seeds=[1, 2, 3],
        random_state=1,
        device="cpu",
    )


def objective_for(data, targets) -> PoisonObjective:
    """The poison objective (κ = 1, η = 100, K = 10) of ``targets`` with fake user 0."""
    return PoisonObjective(
        data,
        targets,
        np.array([0]),
        1,
        1,
        top_k=10,
        kappa=1.0,
        eta=100.0,
        users_per_step=64,
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
    )


def test_objective_hit_ratio_matches_the_metric(effect_setup):
    """The poison model's own HR_t, computed from the scores that give G, is HR_t@K."""
    data, target, _, _ = effect_setup
    targets = np.r_[target, np.argsort(item_popularity(data))[-3:]]  # with popular ones: hits
    model = small_surrogate(epochs=3).fit(data)
    objective = objective_for(data, targets)
    value = objective.value(model)
    assert value["hr"] == pytest.approx(target_hit_ratio(model, data, targets).mean(10))
    assert value["hr"] > 0.05


def test_batched_loss_has_the_value_and_gradient_of_eq2_on_all_items(effect_setup):
    """The objective scores only the K-th item and the target with autograd; its l_u and their
    gradient must equal Eq. 2 back-propagated through the full score matrix."""
    data, target, _, _ = effect_setup
    model = NeuMF(
        embedding_dim=4,
        layers=(8, 4),
        epochs=2,
        batch_size=512,
        lr=1e-2,
        n_replicas=2,
        random_state=0,
        device="cpu",
    ).fit(data)
    targets = np.array([target, 11])
    objective = objective_for(data, targets)
    users = objective.users[:40]
    params = list(model.module_.parameters())

    fast = objective.user_terms(model, users)
    fast_grads = torch.autograd.grad(fast.sum(), params)
    full_logits = model.scores_with_grad(users, logits=True)
    eligible = torch.as_tensor(objective.eligible[users])
    reference = user_losses(
        rank_gaps(
            full_logits,
            seen_mask(data.matrix, users, torch.device("cpu")),
            torch.as_tensor(targets),
            10,
        ),
        eligible,
        1.0,
    )
    reference_grads = torch.autograd.grad(reference.sum(), params)

    torch.testing.assert_close(fast, reference)
    for got, want in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert all(torch.any(g != 0) for g in fast_grads)


@pytest.mark.parametrize("schedule", ["authors", "fast"])
def test_steps_diagnostics_and_the_surrogate_is_left_untouched(effect_setup, schedule):
    data, target, _, _ = effect_setup
    surrogate = small_surrogate()
    attack = PoisonModelAttack(n_fillers=10, rounds=2, fake_per_step=4, schedule=schedule)
    fake = attack.generate(data, [target], 10, surrogate=surrogate, random_state=0)
    info = fake.info
    assert not hasattr(surrogate, "module_")  # cloned, never fitted in place
    assert len(info["trace"]) == 3  # steps of 4, 4 and 2 fake users
    assert all(len(step["hr"]) == 3 for step in info["trace"])  # round 0 + 2 rounds
    assert info["chosen_rounds"] == [step["chosen_round"] for step in info["trace"]]
    hr = info["surrogate_hr"]
    assert hr["k"] == 10 and 0.0 <= hr["before"] <= 1.0 and 0.0 <= hr["after"] <= 1.0
    assert hr["after"] > hr["before"]  # the surrogate itself is poisoned
    parts = info["seconds_pretrain"] + 10 * info["seconds_per_fake_user"] + info["seconds_refit"]
    assert info["seconds"] == pytest.approx(parts)


def test_authors_schedule_drives_the_poison_model_to_the_target(effect_setup):
    """The authors' procedure (one step per normal user on λη l_u, one on λ||ŷ_v||², one epoch
    of ℒ per round) took their poison model's HR_t from 0 to 0.91-1.00 on the bundled data
    (shared/reference); on planted data it must likewise end far above the fresh model, each
    step from a freshly pre-trained model (round 0: the target not yet recommended)."""
    data, target, _, _ = effect_setup
    attack = PoisonModelAttack(n_fillers=10, rounds=3, fake_per_step=5, refit_after=False)
    fake = attack.generate(data, [target], 10, surrogate=small_surrogate(), random_state=0)
    for step in fake.info["trace"]:
        assert step["hr"][0] < 0.2  # fresh pre-training: the target is not recommended yet
        assert max(step["hr"]) > 0.8
        assert step["hr"][step["chosen_round"]] == max(step["hr"])


@pytest.mark.parametrize("schedule", ["authors", "fast"])
def test_poison_training_optimizes_the_attack_objective(effect_setup, schedule):
    """Eq. 6 must move the poison model: with λ > 0 the attack loss Σ l_u collapses and the
    poison model's own HR_t rises in the first round; with λ = 0 (plain training for the same
    epochs) it does not. A loss on detached tensors would make the two runs identical."""
    data, target, _, _ = effect_setup

    def first_step(lam: float) -> dict:
        attack = PoisonModelAttack(
            n_fillers=10, rounds=1, fake_per_step=5, lam=lam, refit_after=False, schedule=schedule
        )
        fake = attack.generate(data, [target], 5, surrogate=small_surrogate(), random_state=0)
        return fake.info["trace"][0]

    poisoned, plain = first_step(1e-2), first_step(0.0)
    assert poisoned["target_loss"][0] == pytest.approx(plain["target_loss"][0])  # same start
    assert poisoned["target_loss"][1] < 0.5 * poisoned["target_loss"][0]
    assert plain["target_loss"][1] > 0.8 * plain["target_loss"][0]
    assert poisoned["G"][1] < poisoned["G"][0]
    assert poisoned["hr"][1] > poisoned["hr"][0] + 0.2
    assert poisoned["chosen_round"] == 1


@pytest.mark.parametrize("schedule", ["authors", "fast"])
def test_poison_model_beats_random_and_no_attack(effect_setup, schedule):
    """10 % fake users, 10 fillers. With the fast schedule, on 3 planted datasets x 2 victim
    seeds the poison-model attack's mean HR_t@10 exceeded the random attack's in all 6 runs, by
    1.6 to 7.2 standard errors (1.3x to 4.9x); this seed (data 0, victim 1) had 3.2 standard
    errors and 4.9x. The authors' schedule must pass the same bounds on this seed."""
    data, target, clean, victim = effect_setup
    results = {}
    for name, params in [
        ("random", {}),
        (
            "poison-model",
            {"rounds": 2, "fake_per_step": 5, "refit_after": False, "schedule": schedule},
        ),
    ]:
        fake = make_attack(name, n_fillers=10, **params).generate(
            data, [target], 25, surrogate=small_surrogate(), random_state=0
        )
        poisoned = data.with_fake_users(fake)
        hit_ratio = target_hit_ratio(victim().fit(poisoned), poisoned, [target])
        results[name] = hit_ratio.ratio()[:, 0, 0]
    ours, rand = results["poison-model"], results["random"]
    stderr = math.sqrt(ours.var(ddof=1) / len(ours) + rand.var(ddof=1) / len(rand))
    assert ours.min() > clean.max(), (ours, clean)
    assert ours.mean() - rand.mean() > 2 * stderr, (ours, rand)
    assert ours.mean() > 1.5 * rand.mean(), (ours, rand)


def test_target_sets_stacked_match_each_generated_alone(effect_setup):
    """generate_many trains the poison models of several target sets as stacked replicas; each
    set must come out as generate makes it alone with the same random state. Exact where the
    stacked Adam's shared step counter equals each replica's own (it counts the steps a replica
    skips; in the paper's setting both bias corrections are 1 after pre-training anyway): here
    both replicas take and skip the same steps (same target and random state)."""
    data, target, _, _ = effect_setup
    attack = PoisonModelAttack(n_fillers=8, rounds=2, fake_per_step=3, refit_after=False)
    targets = [np.array([target]), np.array([target])]
    stacked = attack.generate_many(
        data, targets, 6, surrogate=small_surrogate(epochs=4), random_states=[5, 5]
    )
    alone = attack.generate(
        data, targets[0], 6, surrogate=small_surrogate(epochs=4), random_state=5
    )
    for fake in stacked:
        np.testing.assert_array_equal(fake.matrix.toarray(), alone.matrix.toarray())
        for got, want in zip(fake.info["trace"], alone.info["trace"], strict=True):
            np.testing.assert_allclose(got["G"], want["G"], rtol=1e-3)
        assert fake.info["stacked_target_sets"] == 2


def test_a_skipped_replica_keeps_its_parameters_and_moments(effect_setup):
    """masked_step: the active replica moves exactly as in an unmasked step, the idle one (the
    authors skip the step of a clamped l_u) keeps parameters and Adam moments."""
    data, _, _, _ = effect_setup
    model = small_surrogate(epochs=1).fit(data)
    reference = model.copy_fitted()
    active = torch.tensor([True, False, True])

    def loss_of(m):
        return m.forward_scores(np.array([0, 1]), np.array([2, 3]), logits=True)[active].sum()

    masked_step(model, loss_of(model), active)
    reference.optimizer_step(loss_of(reference))
    user_new = model.module_.user_table.detach().view(3, -1, model.module_.user_table.shape[1])
    user_ref = reference.module_.user_table.detach().view_as(user_new)
    before = small_surrogate(epochs=1).fit(data).module_.user_table.detach().view_as(user_new)
    torch.testing.assert_close(user_new[0], user_ref[0])
    torch.testing.assert_close(user_new[1], before[1])
    assert not torch.equal(user_ref[1], before[1])  # unmasked, momentum would have moved it
    state = model.optimizer_.state[model.module_.out_weight]
    ref_state = reference.optimizer_.state[reference.module_.out_weight]
    torch.testing.assert_close(state["exp_avg"][2], ref_state["exp_avg"][2])
    assert not torch.equal(state["exp_avg"][1], ref_state["exp_avg"][1])


def test_a_larger_attack_goes_on_from_a_smaller_one(effect_setup):
    """The authors' schedule grows by prefix: 2 fake users, then 4 going on from them, equal 4
    made at once (same random state), and the resumed call runs 2 steps only."""
    data, target, _, _ = effect_setup
    attack = PoisonModelAttack(n_fillers=8, rounds=2, refit_after=True)
    assert attack.grows_by_prefix()
    assert not PoisonModelAttack(schedule="fast").grows_by_prefix()
    targets = [np.array([target])]
    kwargs = {"surrogate": small_surrogate(epochs=3), "random_states": [7]}
    attack.generate_many(data, targets, 2, **kwargs)
    smaller = attack.progress_
    assert smaller.n_fake == 2
    resumed = attack.generate_many(data, targets, 4, resume_from=smaller, **kwargs)[0]
    direct = attack.generate_many(data, targets, 4, **kwargs)[0]
    np.testing.assert_array_equal(resumed.matrix.toarray(), direct.matrix.toarray())
    assert resumed.info["resumed_from"] == 2 and direct.info["resumed_from"] == 0
    assert (
        len(resumed.info["trace"]) == 4
        and resumed.info["chosen_rounds"] == direct.info["chosen_rounds"]
    )
    assert resumed.info["surrogate_hr"] == direct.info["surrogate_hr"]  # refit on all 4
    assert smaller.n_fake == 2  # the state given is not changed


def test_a_progress_from_other_inputs_is_not_resumed(effect_setup):
    """Another target, another seed, or a last step cut short (3 fake users by 2 per step):
    the attack starts over."""
    data, target, _, _ = effect_setup
    attack = PoisonModelAttack(n_fillers=8, rounds=1, fake_per_step=2, refit_after=False)
    kwargs = {"surrogate": small_surrogate(epochs=2)}
    attack.generate_many(data, [np.array([target])], 3, random_states=[7], **kwargs)
    odd = attack.progress_
    attack.generate_many(data, [np.array([target])], 2, random_states=[7], **kwargs)
    even = attack.progress_
    cases = [([target], [7], odd), ([target + 1], [7], even), ([target], [8], even)]
    for items, seeds, progress in cases:
        fake = attack.generate_many(
            data, [np.array(items)], 4, random_states=seeds, resume_from=progress, **kwargs
        )[0]
        assert fake.info["resumed_from"] == 0
    fake = attack.generate_many(
        data, [np.array([target])], 4, random_states=[7], resume_from=even, **kwargs
    )[0]
    assert fake.info["resumed_from"] == 2
