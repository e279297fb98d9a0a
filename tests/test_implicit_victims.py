"""Victims from the implicit library: the Recommender contract, implicit's own rankings, seeds,
per-replica data and errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpoison.errors import ConfigError, DeviceError
from recpoison.victims import VICTIMS, make_victim, victim_class

pytest.importorskip("implicit")

IMPLICIT = sorted(name for name in VICTIMS if name.startswith("implicit-"))
FACTORIZATION = ["implicit-als", "implicit-bpr", "implicit-lmf"]
NEIGHBOURS = ["implicit-bm25", "implicit-cosine", "implicit-tfidf"]
SMALL = {"implicit-als": {"factors": 8}, "implicit-bpr": {"factors": 8, "iterations": 20}}


def victim(name, **params):
    return make_victim(name, **{**SMALL.get(name, {}), "device": "cpu", **params})


def test_every_implicit_model_is_registered():
    assert sorted(FACTORIZATION + NEIGHBOURS) == IMPLICIT


@pytest.mark.parametrize("name", IMPLICIT)
def test_scores_follow_the_recommender_contract(name, tiny_implicit):
    model = victim(name, n_replicas=3, random_state=0).fit(tiny_implicit)
    users = np.array([0, 5, 59])
    scores = model.score_replicas(users)
    assert scores.shape == (3, 3, tiny_implicit.n_items)
    assert scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    top = model.recommend(users, k=5)
    for row, user in zip(top, users, strict=True):
        assert not set(row) & set(tiny_implicit.matrix[user].indices)  # rated items excluded
    again = victim(name, n_replicas=3, random_state=0).fit(tiny_implicit)
    assert torch.equal(again.score_replicas(users), scores)  # one thread: reproducible


@pytest.mark.parametrize("name", FACTORIZATION)
def test_factorization_replicas_are_independent_seeds(name, tiny_implicit):
    model = victim(name, n_replicas=2, random_state=0).fit(tiny_implicit)
    scores = model.score_replicas(np.arange(10))
    assert not torch.equal(scores[0], scores[1])
    single = victim(name, n_replicas=1, random_state=0).fit(tiny_implicit)
    assert torch.equal(single.score_replicas(np.arange(10))[0], scores[0])


@pytest.mark.parametrize("name", NEIGHBOURS)
def test_neighbour_models_are_deterministic(name, tiny_implicit):
    scores = victim(name, n_replicas=2, random_state=0).fit(tiny_implicit).score_replicas([1, 2])
    assert torch.equal(scores[0], scores[1])


@pytest.mark.parametrize(
    ("name", "implicit_factory"),
    [
        ("implicit-als", "implicit.als:AlternatingLeastSquares"),
        ("implicit-cosine", "implicit.nearest_neighbours:CosineRecommender"),
        ("implicit-bm25", "implicit.nearest_neighbours:BM25Recommender"),
    ],
)
@pytest.mark.filterwarnings("ignore::implicit.utils.ParameterWarning")
def test_rankings_are_implicits_own(name, implicit_factory, tiny_implicit):
    """The victim's top-10 equals what implicit's ``recommend`` returns for the same model."""
    import importlib

    module, factory = implicit_factory.split(":")
    model = victim(name, random_state=4).fit(tiny_implicit)
    params = {"num_threads": 1}
    if name == "implicit-als":
        params.update(factors=8, random_state=model.seeds_[0] % 2**32, use_gpu=False)
    reference = getattr(importlib.import_module(module), factory)(**params)
    user_items = sp.csr_matrix(tiny_implicit.matrix > 0, dtype=np.float32)
    reference.fit(user_items, show_progress=False)
    for user in (0, 17, 42):
        ids, _ = reference.recommend(user, user_items[user], N=10)
        ours = model.recommend(np.array([user]), k=len(ids))[0]
        assert set(ours) == set(ids)


def test_each_replica_trains_on_its_own_dataset(tiny_implicit):
    other = tiny_implicit.replace(matrix=tiny_implicit.matrix[:, ::-1])
    model = victim("implicit-cosine", n_replicas=2).fit([tiny_implicit, other])
    alone = victim("implicit-cosine").fit(other)
    scores = model.score_replicas(np.arange(5))
    assert torch.equal(scores[1], alone.score_replicas(np.arange(5))[0])
    assert not torch.equal(scores[0], scores[1])


def test_explicit_data_is_refused(tiny_explicit):
    with pytest.raises(ConfigError, match="binarize"):
        victim("implicit-als").fit(tiny_explicit)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("implicit-als", {"factors": -1}, "implicit failed to fit: ValueError: negative"),
        ("implicit-bpr", {"learning_rate": "fast"}, "implicit failed to fit: TypeError"),
        ("implicit-cosine", {"K": 0}, "K must be an integer >= 1"),
        ("implicit-als", {"num_threads": -2}, "num_threads must be"),
    ],
)
def test_errors_from_implicit_are_one_config_line(name, params, message, tiny_implicit):
    with pytest.raises(ConfigError, match=message) as error:
        victim(name, **params).fit(tiny_implicit)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_device_error(tiny_implicit):
    with pytest.raises(DeviceError):
        victim("implicit-als", device="cuda").fit(tiny_implicit)


def test_unfitted_model_says_so():
    with pytest.raises(ConfigError, match="not fitted"):
        victim_class("implicit-bpr")().score_replicas(np.arange(3))


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["implicit-als", "implicit-bpr"])
def test_gpu_training_matches_the_contract(name, tiny_implicit):
    import implicit.gpu

    if not implicit.gpu.HAS_CUDA:
        pytest.skip("implicit was installed without CUDA support")
    model = victim(name, n_replicas=2, random_state=0, device="cuda").fit(tiny_implicit)
    scores = model.score_replicas(np.arange(10))
    assert scores.device.type == "cuda" and scores.shape == (2, 10, tiny_implicit.n_items)
