"""GMF / MLP / NeuMF victims: learning, batched-replica equivalence, sampling, attack hooks."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recpoison.data import FakeProfiles, Interactions, planted
from recpoison.data.transforms import item_popularity, leave_one_out
from recpoison.errors import ConfigError, DeviceError
from recpoison.metrics import leave_one_out_hr_ndcg
from recpoison.victims import make_victim, neural
from recpoison.victims.base import Recommender, replica_seeds
from recpoison.victims.ncf_backward import bce_step
from recpoison.victims.neural import GMF, MLP, NeuMF
from recpoison.victims.neural_modules import (
    NegativeSampler,
    ReplicaData,
    StackedNCF,
    fixed_negative_rows,
)

MODELS = [GMF, MLP, NeuMF]
FAST = {"epochs": 2, "batch_size": 512, "lr": 1e-2, "device": "cpu"}


@pytest.fixture(scope="module")
def small() -> Interactions:
    return planted(80, 60, ratings_per_user=8, rating_scale=None, random_state=3)


def all_scores(model: Recommender) -> torch.Tensor:
    return model.score_replicas(np.arange(model.train_.n_users))


class Popularity(Recommender):
    """Baseline: every user gets the items ranked by their number of training interactions."""

    capabilities = frozenset({"implicit"})

    def fit(self, train):
        self._check_fit_input(train)
        self.popularity_ = torch.as_tensor(item_popularity(train), dtype=torch.float32)
        return self

    def score_replicas(self, users):
        return self.popularity_.expand(1, len(users), -1).clone()


# -- learning ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MODELS)
def test_each_model_learns_far_above_popularity(cls):
    data = planted(300, 200, ratings_per_user=20, rating_scale=None, random_state=0)
    train, test_items = leave_one_out(data, random_state=0)
    popular = leave_one_out_hr_ndcg(
        Popularity(device="cpu").fit(train), train, test_items, random_state=0
    )["hr"][0]
    model = cls(epochs=5, lr=1e-2, batch_size=512, n_replicas=2, random_state=0, device="cpu")
    model.fit(train, exclude_items=test_items)
    hr = leave_one_out_hr_ndcg(model, train, test_items, random_state=0)["hr"]
    assert popular < 0.35
    assert hr.min() > popular + 0.12, (hr, popular)
    assert np.all(model.loss_history_[-1] < model.loss_history_[0])


def test_defaults_follow_ncf_and_huang():
    params = NeuMF().get_params()
    assert params["embedding_dim"] == 8 and tuple(params["layers"]) == (64, 32, 16, 8)
    assert (params["n_negatives"], params["lr"], params["batch_size"], params["epochs"]) == (
        4,
        1e-3,
        256,
        20,
    )
    assert "layers" not in GMF().get_params() and "embedding_dim" not in MLP().get_params()
    assert NeuMF.capabilities == {
        "implicit",
        "differentiable",
        "batched_replicas",
        "per_replica_data",
    }
    assert isinstance(make_victim("neumf", n_replicas=2), NeuMF)


def test_architecture_shapes(small):
    model = NeuMF(**FAST, n_replicas=2, random_state=0).fit(small)
    m = model.module_
    assert m.user_table.shape == (2 * small.n_users, 8 + 32)
    assert m.item_table.shape == (2 * small.n_items, 8 + 32)
    assert [tuple(w.shape) for w in m.mlp_weights] == [(2, 64, 32), (2, 32, 16), (2, 16, 8)]
    assert m.out_weight.shape == (2, 8 + 8, 1)
    init = NeuMF(**{**FAST, "epochs": 1, "lr": 1e-12}, random_state=0).fit(small).module_
    assert init.user_table.std().item() == pytest.approx(0.01, rel=0.1)  # N(0, 0.01) embeddings


# -- batched replicas -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MODELS)
def test_replica_in_batch_equals_replica_alone(cls, small):
    seeds = replica_seeds(7, 3)
    batched = cls(**FAST, n_replicas=3, random_state=7).fit(small)
    assert batched.seeds_ == seeds
    scores = all_scores(batched)
    for r in (0, 2):
        alone = cls(**FAST, seeds=[seeds[r]]).fit(small)
        assert torch.allclose(scores[r], all_scores(alone)[0], atol=1e-5)
        np.testing.assert_allclose(
            batched.loss_history_[:, r], alone.loss_history_[:, 0], rtol=1e-5
        )
    assert not torch.allclose(scores[0], scores[1], atol=1e-3)  # replicas are independent


def test_first_replica_equals_one_replica_run_with_same_seed(small):
    assert replica_seeds(5, 1) == replica_seeds(5, 4)[:1]
    batched = NeuMF(**FAST, n_replicas=2, random_state=5).fit(small)
    alone = NeuMF(**FAST, random_state=5).fit(small)
    assert torch.allclose(all_scores(batched)[0], all_scores(alone)[0], atol=1e-5)


def test_per_replica_data_equals_fitting_alone():
    first = planted(60, 50, ratings_per_user=6, rating_scale=None, random_state=1)
    second = planted(60, 50, ratings_per_user=6, rating_scale=None, random_state=2)
    seeds = replica_seeds(0, 2)
    together = NeuMF(**FAST, n_replicas=2, random_state=0).fit([first, second])
    scores = all_scores(together)
    for r, data in enumerate((first, second)):
        alone = NeuMF(**FAST, seeds=[seeds[r]]).fit(data)
        assert torch.allclose(scores[r], all_scores(alone)[0], atol=1e-5)


def test_per_replica_data_of_different_sizes():
    """The longest dataset sets the epoch; its replica is exactly the one trained alone, and the
    smaller one still trains (its instances padded by resampling, see the module docstring)."""
    large = planted(60, 50, ratings_per_user=8, rating_scale=None, random_state=1)
    smaller = planted(60, 50, ratings_per_user=5, rating_scale=None, random_state=2)
    seeds = replica_seeds(0, 2)
    together = NeuMF(**FAST, n_replicas=2, random_state=0).fit([large, smaller])
    alone = NeuMF(**FAST, seeds=[seeds[0]]).fit(large)
    assert torch.allclose(all_scores(together)[0], all_scores(alone)[0], atol=1e-5)
    assert np.all(np.isfinite(together.loss_history_))
    assert together.loss_history_[-1, 1] < together.loss_history_[0, 1]


def test_per_replica_data_checks_count_and_shape(small):
    other = planted(70, 60, ratings_per_user=8, rating_scale=None, random_state=4)
    with pytest.raises(ConfigError, match="datasets for 2 replicas"):
        NeuMF(**FAST, n_replicas=2).fit([small])
    with pytest.raises(ConfigError, match="share one shape"):
        NeuMF(**FAST, n_replicas=2).fit([small, other])


def test_seeded_determinism(small):
    a = all_scores(NeuMF(**FAST, n_replicas=2, random_state=11).fit(small))
    b = all_scores(NeuMF(**FAST, n_replicas=2, random_state=11).fit(small))
    c = all_scores(NeuMF(**FAST, n_replicas=2, random_state=12).fit(small))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)


def test_training_gradients_equal_autograd_through_the_tables():
    """The buffered table gradients of a training step match plain autograd, also when an extra
    loss has already put gradients on the tables (partial_fit's poison training)."""
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    module = StackedNCF(20, 15, 4, (8, 4), gens, torch.device("cpu"))
    users, items = torch.randint(20, (10,)), torch.randint(15, (10,))
    fu, fi = module.flat_users(users), module.flat_items(items)
    for with_extra in (False, True):
        expected = []
        for buffered in (False, True):
            module.zero_grad(set_to_none=True)
            if buffered:
                logits, table_gradients = module.training_logits(fu, fi)
            else:
                logits = module.pair_logits(fu, fi)
            loss = logits.square().sum()
            if with_extra:
                loss = loss + module.full_logits(users[:3]).sum()
            loss.backward()
            if buffered:
                table_gradients.add_dense()
            expected.append([p.grad.clone() for p in module.parameters()])
        for plain, buffered in zip(*expected, strict=True):
            assert torch.allclose(plain, buffered, atol=1e-6)


@pytest.mark.parametrize("gmf_dim, layers", [(4, (8, 4)), (4, ()), (0, (8, 4, 2)), (0, (6,))])
def test_closed_form_step_equals_autograd(gmf_dim, layers):
    """The hand-written backward of a training step (NeuMF, GMF, MLP, an MLP without hidden
    layers) gives autograd's gradients of sum_r mean_b BCE, for the dense parameters and for
    the gathered embedding rows (duplicates included), and the same per-replica BCE."""
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    module = StackedNCF(20, 15, gmf_dim, layers, gens, torch.device("cpu"))
    with torch.no_grad():  # non-zero biases, so every ReLU mask is exercised
        for bias in module.mlp_biases:
            bias.normal_(0, 0.1, generator=gens[0])
    users, items = torch.randint(20, (3, 12)), torch.randint(15, (12,))
    fu, fi = module.flat_users(users), module.flat_items(items)
    labels = (torch.rand(3, 12, generator=gens[1]) < 0.3).float()

    module.zero_grad(set_to_none=True)
    logits, autograd_rows = module.training_logits(fu, fi)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    bce.mean(dim=1).sum().backward()
    expected = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    expected_rows = [rows.grad.clone() for _, _, rows in autograd_rows.gathered]

    module.zero_grad(set_to_none=True)
    bce_sums, closed_rows = bce_step(module, fu, fi, labels)
    assert torch.allclose(bce_sums, bce.detach().sum(dim=1), atol=1e-6)
    got = {name: p.grad for name, p in module.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-7, rtol=1e-5), name
    for (_, _, grads), rows in zip(closed_rows.gathered, expected_rows, strict=True):
        assert torch.allclose(grads, rows, atol=1e-7, rtol=1e-5)


# -- negative sampling ------------------------------------------------------------------------
def test_sampler_never_returns_positives_or_excluded_and_is_uniform():
    n_users, n_items = 5, 12
    positives = {0: [0, 1, 2], 1: [11], 2: list(range(11)), 3: [3, 5, 7], 4: [0]}
    rows = [u for u, items in positives.items() for _ in items]
    cols = [i for items in positives.values() for i in items]
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    exclude = np.array([5, 0, -1, 3, 11])  # user 3's excluded item is also a positive
    sampler = NegativeSampler(matrix, exclude, torch.device("cpu"))
    users = torch.arange(n_users).repeat(4000)
    draws = sampler.sample(users, 3, torch.Generator().manual_seed(0)).numpy()
    assert draws.shape == (len(users), 3)
    for u in range(n_users):
        got = draws[users.numpy() == u].ravel()
        forbidden = set(positives[u]) | ({int(exclude[u])} if exclude[u] >= 0 else set())
        allowed = sorted(set(range(n_items)) - forbidden)
        assert set(np.unique(got)) == set(allowed)
        counts = np.bincount(got, minlength=n_items)[allowed]
        expected = len(got) / len(allowed)
        assert np.all(np.abs(counts - expected) < 0.1 * expected), (u, counts)
    assert np.all(draws[users.numpy() == 2] == 11)  # one allowed item left


def test_sampler_rejects_user_with_every_item_and_bad_exclude():
    full = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    with pytest.raises(ConfigError, match="every item"):
        NegativeSampler(full, None, torch.device("cpu"))
    with pytest.raises(ConfigError, match="every item"):
        NegativeSampler(
            sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32)),
            np.array([2]),
            torch.device("cpu"),
        )
    with pytest.raises(ConfigError, match="exclude_items"):
        NegativeSampler(full, np.array([0]), torch.device("cpu"))


def test_training_negatives_avoid_excluded_items(small):
    exclude = np.full(small.n_users, -1)
    unrated = np.flatnonzero(np.asarray(small.matrix[0].todense()).ravel() == 0)
    exclude[0] = unrated[0]
    model = NeuMF(**FAST, random_state=0).fit(small, exclude_items=exclude)
    users, items, _ = small.triples()
    sampler = NegativeSampler(small.matrix, model.exclude_items_, torch.device("cpu"))
    draws = sampler.sample(torch.zeros(5000, dtype=torch.int64), 4, model.generators_[0])
    assert not np.isin(draws.numpy(), np.r_[items[users == 0], unrated[0]]).any()


# -- scoring and attack hooks ---------------------------------------------------------------
def test_scores_agree_across_entry_points(small):
    model = NeuMF(**FAST, n_replicas=2, random_state=0).fit(small)
    users = np.array([0, 5, 9])
    logits = model.score_replicas(users)
    assert logits.shape == (2, 3, small.n_items) and not logits.requires_grad
    pairs_u = torch.as_tensor(users).repeat_interleave(small.n_items)
    pairs_i = torch.arange(small.n_items).repeat(len(users))
    prob = model.forward_scores(pairs_u, pairs_i)
    assert prob.shape == (2, 3 * small.n_items) and prob.requires_grad
    assert torch.allclose(prob.detach().view(2, 3, -1), torch.sigmoid(logits), atol=1e-6)
    rows = model.scores_with_grad(users)
    rows.sum().backward()
    assert model.module_.item_table.grad is not None
    assert torch.allclose(rows.detach(), torch.sigmoid(logits), atol=1e-6)
    assert np.allclose(model.score(users, replica=1), logits[1].numpy())
    top = model.recommend(users, k=5)
    assert not any(small.matrix[u, top[row]].nnz for row, u in enumerate(users))
    with pytest.raises(ConfigError, match="user indices"):
        model.score_replicas(np.array([small.n_users]))


def test_score_replicas_is_chunked_consistently(small, monkeypatch):
    model = MLP(**FAST, n_replicas=2, random_state=0).fit(small)
    whole = all_scores(model)
    chunks = []
    full_logits = model.module_.full_logits
    monkeypatch.setattr(
        model.module_, "full_logits", lambda u, *side: chunks.append(u) or full_logits(u, *side)
    )
    monkeypatch.setitem(neural.SCORE_CHUNK_ELEMENTS, "cpu", 1)  # one user a chunk
    assert torch.allclose(all_scores(model), whole, atol=1e-6)
    assert len(chunks) == small.n_users


@pytest.mark.parametrize("victim", [GMF, MLP, NeuMF])
def test_full_logits_give_every_pair_its_logit_and_gradient(small, victim):
    """``full_logits`` (its item side computed in the call, or passed in as ``score_replicas``
    does) gives every (user, item) logit and the gradients of the tables and layers that
    ``pair_logits`` (the training forward) gives over the same pairs."""
    module = victim(**FAST, n_replicas=2, random_state=0).fit(small).module_
    users = torch.tensor([0, 4, 7])
    grid_u = users.repeat_interleave(small.n_items)
    grid_i = torch.arange(small.n_items).repeat(len(users))

    def logits_and_gradients(score):
        module.zero_grad()
        logits = score().reshape(2, len(users), small.n_items)
        logits.square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in module.parameters()]

    pairs, pair_grads = logits_and_gradients(
        lambda: module.pair_logits(module.flat_users(grid_u), module.flat_items(grid_i))
    )
    own = logits_and_gradients(lambda: module.full_logits(users))
    shared = logits_and_gradients(lambda: module.full_logits(users, module.item_side()))
    for logits, grads in (own, shared):
        assert torch.allclose(logits, pairs, atol=1e-5)
        for grad, reference in zip(grads, pair_grads, strict=True):
            assert torch.allclose(grad, reference, rtol=1e-4, atol=1e-6)


def fake_profiles(data: Interactions, n_fake: int, target: int) -> FakeProfiles:
    rng = np.random.default_rng(0)
    dense = np.zeros((n_fake, data.n_items), dtype=np.float32)
    for row in dense:
        row[rng.choice(data.n_items, 5, replace=False)] = 1.0
    dense[:, target] = 1.0
    return FakeProfiles(sp.csr_matrix(dense), np.array([target]))


def test_partial_fit_adds_users_and_keeps_state(small):
    model = NeuMF(**FAST, n_replicas=2, random_state=0).fit(
        small, exclude_items=np.full(small.n_users, -1)
    )
    poisoned = small.with_fake_users(fake_profiles(small, 4, target=3))
    before = model.module_.user_table.detach().view(2, small.n_users, -1).clone()
    copy = model.copy_fitted()
    copy.partial_fit(poisoned, epochs=1)
    table = copy.module_.user_table
    assert table.shape == (2 * (small.n_users + 4), 40)
    assert copy.optimizer_.state[table]["exp_avg"].shape == table.shape
    assert copy.score_replicas(np.arange(poisoned.n_users)).shape == (
        2,
        poisoned.n_users,
        small.n_items,
    )
    new_rows = table.detach().view(2, -1, 40)[:, small.n_users :]
    assert 0.002 < new_rows.std().item() < 0.05  # N(0, 0.01) init, one epoch of training
    assert copy.loss_history_.shape == (3, 2) and copy.train_ is poisoned
    assert len(copy.exclude_items_) == poisoned.n_users
    # the original is untouched by training its copy
    assert model.module_.user_table.shape == (2 * small.n_users, 40)
    assert torch.equal(model.module_.user_table.detach().view(2, small.n_users, -1), before)
    with pytest.raises(ConfigError, match="at least"):
        copy.partial_fit(small.select_users(np.arange(small.n_users) < 10), epochs=1)


def test_partial_fit_extra_loss_changes_the_outcome(small):
    target = 7
    model = NeuMF(**FAST, n_replicas=2, random_state=0).fit(small)
    users = torch.arange(small.n_users)
    items = torch.full_like(users, target)

    def promote(m: NeuMF) -> torch.Tensor:
        return -torch.log(m.forward_scores(users, items)).mean(dim=1).sum()

    plain = model.copy_fitted().partial_fit(small, epochs=5)
    pushed = model.copy_fitted().partial_fit(small, epochs=5, extra_loss=promote, lam=1.0)
    before = all_scores(model)[:, :, target].mean(dim=1)
    after_plain = all_scores(plain)[:, :, target].mean(dim=1)
    after_pushed = all_scores(pushed)[:, :, target].mean(dim=1)
    assert torch.all(after_pushed > after_plain + 1.0), (before, after_plain, after_pushed)


def test_clone_is_unfitted_with_same_params(small):
    model = GMF(**FAST, n_replicas=2, random_state=3).fit(small)
    clone = model.clone(epochs=1)
    assert clone.get_params() == {**model.get_params(), "epochs": 1}
    assert not hasattr(clone, "module_")
    with pytest.raises(ConfigError, match="not fitted"):
        clone.score_replicas(np.arange(3))


def test_progress_callback_and_loss_logging(small, caplog):
    calls = []
    with caplog.at_level(logging.INFO, logger="recpoison.victims.neural"):
        NeuMF(**{**FAST, "epochs": 3}, random_state=0).fit(
            small, progress=lambda e, n: calls.append((e, n))
        )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert sum("mean training loss" in r.getMessage() for r in caplog.records) == 3


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"n_replicas": 0},
        {"layers": ()},
        {"layers": (63, 32)},
        {"embedding_dim": 0},
        {"n_negatives": 0},
        {"batch_size": 0},
        {"epochs": 0},
        {"lr": 0.0},
        {"seeds": [1, 2], "n_replicas": 1},
    ],
)
def test_bad_params_raise_config_error(params, small):
    with pytest.raises(ConfigError):
        NeuMF(**{**FAST, **params}).fit(small)


def test_explicit_data_is_refused():
    explicit = planted(40, 30, ratings_per_user=5, random_state=0)
    with pytest.raises(ConfigError, match="implicit"):
        NeuMF(**FAST).fit(explicit)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_raises_device_error(small):
    with pytest.raises(DeviceError):
        NeuMF(**{**FAST, "device": "cuda"}).fit(small)


def test_fixed_negatives_replace_the_sampled_ones_every_epoch():
    """A user with fixed negatives trains on exactly those, in every epoch; a user given an
    empty array trains on its positives alone (the authors' poison model, Huang et al.)."""
    data = planted(30, 20, ratings_per_user=4, rating_scale=None, random_state=0)
    fixed_user, bare_user = 3, 5
    n_pos = data.matrix[fixed_user].nnz
    rated = data.matrix[fixed_user].indices
    negatives = np.setdiff1d(np.arange(20), rated)[: n_pos * 4]
    model = GMF(epochs=1, batch_size=64, random_state=0, device="cpu")
    fixed = {fixed_user: negatives, bare_user: np.zeros(0, dtype=np.int64)}
    model.fit(data, fixed_negatives=fixed)
    replica = ReplicaData(
        *(torch.as_tensor(a) for a in data.triples()[:2]),
        NegativeSampler(data.matrix, None, torch.device("cpu")),
        fixed_negative_rows(data.matrix, fixed, 4, torch.device("cpu")),
    )
    length = replica.n_instances(4)
    assert length == data.n_ratings * 5 - data.matrix[bare_user].nnz * 4
    for _ in range(2):  # two epochs: the same fixed negatives
        users, items, labels = model._epoch_instances([replica], length)
        own = (users[0] == fixed_user) & (labels[0] == 0)
        assert sorted(items[0][own].tolist()) == sorted(negatives.tolist())
        assert not torch.any((users[0] == bare_user) & (labels[0] == 0))
    with pytest.raises(ConfigError, match="fixed negatives are needed"):
        GMF(epochs=1, random_state=0, device="cpu").fit(data, fixed_negatives={3: negatives[:3]})


def test_a_sequence_random_state_gives_the_replica_seeds():
    seeds = replica_seeds(7, 2)
    assert replica_seeds(seeds * 2, 4) == seeds * 2
    with pytest.raises(ConfigError, match="3 replica seeds for 4 replicas"):
        replica_seeds([1, 2, 3], 4)
