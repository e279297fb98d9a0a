"""Bring your own model: a user's class named ``module:Class`` in the spec, --victim and Python."""

import json
import textwrap

import numpy as np
import pytest
import torch
import yaml

from recpoison.data import planted
from recpoison.errors import ConfigError
from recpoison.experiment import parse_spec
from recpoison.experiment.runner import run_experiment
from recpoison.victims import Recommender, make_victim, victim_class

USER_MODULE = '''
import numpy as np
import torch


class Popularity:
    """One replica: item popularity plus seeded noise of size ``noise``."""

    def __init__(self, noise=0.01, random_state=None):
        self.noise = noise
        self.random_state = random_state

    def fit(self, train):
        rng = np.random.default_rng(self.random_state)
        counts = np.asarray((train.matrix > 0).sum(axis=0)).ravel()
        self.item_scores_ = counts + self.noise * rng.standard_normal(len(counts))
        return self

    def score(self, users):
        return np.tile(self.item_scores_, (len(users), 1))


class BatchedPopularity:
    """Trains its replicas itself: replica r adds r to every score (same ranking)."""

    capabilities = frozenset({"implicit"})

    def __init__(self, n_replicas, shift=1.0, random_state=None, device="cpu"):
        self.n_replicas = n_replicas
        self.shift = shift

    def fit(self, train):
        self.counts_ = torch.as_tensor(np.asarray((train.matrix > 0).sum(axis=0)).ravel())
        return self

    def score_replicas(self, users):
        offsets = self.shift * torch.arange(self.n_replicas)[:, None, None]
        return self.counts_.float()[None, None, :].expand(1, len(users), -1) + offsets


class WrongShape(Popularity):
    def score(self, users):
        return np.zeros((len(users), 3))


class NoScore:
    def fit(self, train):
        return self


class NoFit:
    def score(self, users):
        return None


class NoReplicaArgument:
    def fit(self, train):
        return self

    def score_replicas(self, users):
        return None


NOT_A_CLASS = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``usermodels`` written to a folder on sys.path, as a user's own package would be."""
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "usermodels"


def test_a_one_replica_class_gets_one_seeded_instance_per_replica(user_module, tiny_implicit):
    model = make_victim(f"{user_module}:Popularity", noise=0.5, n_replicas=3, random_state=0)
    assert isinstance(model, Recommender)
    scores = model.fit(tiny_implicit).score_replicas(np.arange(4))
    assert scores.shape == (3, 4, tiny_implicit.n_items) and scores.dtype == torch.float32
    assert not torch.equal(scores[0], scores[1])  # replicas got different seeds
    again = model.clone().fit(tiny_implicit).score_replicas(np.arange(4))
    assert torch.equal(again, scores)
    counts = np.asarray((tiny_implicit.matrix > 0).sum(axis=0)).ravel()
    assert int(model.recommend([0], k=1)[0, 0]) in np.argsort(-counts)[:3]
    assert model.get_params()["noise"] == 0.5


def test_a_batched_class_scores_its_own_replicas(user_module, tiny_implicit):
    cls = victim_class(f"{user_module}:BatchedPopularity")
    assert cls.capabilities == frozenset({"implicit"})
    scores = cls(n_replicas=2, shift=10.0).fit(tiny_implicit).score_replicas(np.arange(3))
    assert torch.equal((scores[1] - scores[0]).cpu(), torch.full((3, tiny_implicit.n_items), 10.0))
    with pytest.raises(ConfigError, match="trains on implicit feedback"):
        cls().fit(tiny_implicit.replace(rating_scale=(1.0, 5.0)))


def test_a_recommender_subclass_is_used_as_it_is():
    assert victim_class("recpoison.victims.neural:NeuMF") is victim_class("neumf")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nosuchpackage.models:Model", "cannot import module 'nosuchpackage.models'"),
        ("usermodels:Missing", "module 'usermodels' has no attribute 'Missing'"),
        ("usermodels:NOT_A_CLASS", "'NOT_A_CLASS' is not a class"),
        ("usermodels:NoScore", "neither score_replicas\\(users\\) nor score\\(users\\)"),
        ("usermodels:NoFit", "has no fit\\(train\\) method"),
        ("usermodels:NoReplicaArgument", "constructor must accept n_replicas"),
        ("usermodels:", "written 'package.module:Class'"),
    ],
)
def test_what_is_missing_is_named(user_module, path, message):
    with pytest.raises(ConfigError, match=message):
        victim_class(path)


def test_bad_params_and_shapes_are_config_errors(user_module, tiny_implicit):
    with pytest.raises(ConfigError, match="has no parameter 'epochs'; valid: noise"):
        make_victim(f"{user_module}:Popularity", epochs=3)
    wrong = make_victim(f"{user_module}:WrongShape").fit(tiny_implicit)
    with pytest.raises(ConfigError, match="expected \\[users, items\\]"):
        wrong.score_replicas(np.arange(2))


def spec(csv, victim):
    return {
        "name": "byo",
        "datasets": [{"source": str(csv), "transforms": ["binarize"]}],
        "victims": [victim],
        "attacks": [{"name": "none"}, {"name": "bandwagon", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "unpopular", "count": 2}],
        "retrains": 2,
        "device": "cpu",
    }


def test_the_spec_accepts_and_checks_a_dotted_path(user_module, planted_csv, tmp_path):
    csv = planted_csv(n_users=60, ratings_per_user=8)
    with pytest.raises(ConfigError, match=r"victims.0.params.factors: .* valid: noise"):
        parse_spec(spec(csv, {"name": f"{user_module}:Popularity", "params": {"factors": 3}}))
    with pytest.raises(ConfigError, match=r"victims.0.name: .*cannot import module 'elsewhere'"):
        parse_spec(spec(csv, {"name": "elsewhere:Model"}))
    summary = run_experiment(
        spec(csv, {"name": f"{user_module}:Popularity", "params": {"noise": 0.1}}),
        tmp_path / "byo.db",
        progress=False,
    )
    assert summary.n_computed == 3 and summary.n_skipped == 0


def test_the_cli_trains_a_dotted_path(user_module, tmp_path, cli):
    csv = tmp_path / "implicit.csv"
    planted(100, 150, ratings_per_user=10, rating_scale=None, random_state=0).to_frame().drop(
        columns="rating"
    ).to_csv(csv, index=False)
    code, out, err = cli("train", csv, "--victim", f"{user_module}:Popularity", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["victim"] == f"{user_module}:Popularity" and 0 <= result["hr_at_10"] <= 1
    code, _, err = cli("train", csv, "--victim", f"{user_module}:NoScore")
    assert code == 2 and "neither score_replicas" in err and len(err.strip().splitlines()) == 1


def test_spec_yaml_example_from_the_docs_parses(user_module, planted_csv):
    text = f"""
    name: my-model
    datasets: [{{source: {planted_csv()}, transforms: [binarize]}}]
    victims: [{{name: "{user_module}:Popularity", params: {{noise: 0.1}}}}]
    attacks: [{{name: none}}, {{name: random}}]
    sizes: [0.05]
    targets: [{{type: random, count: 2}}]
    """
    parsed = parse_spec(yaml.safe_load(textwrap.dedent(text)))
    assert parsed.victims[0].name == f"{user_module}:Popularity"
