"""Partial knowledge by hop distance from the target (Fang et al. 2020 §5.3), end to end."""

import json
import sqlite3

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from recpoison.data import planted
from recpoison.data.transforms import subsample_hops
from recpoison.errors import ConfigError
from recpoison.experiment import build_report, parse_spec
from recpoison.experiment.runner import run_experiment


def _edge_hops(data, target: int) -> np.ndarray:
    """Hop distance of each rating: that of its farther end from the target item."""
    m = data.n_users
    pattern = (data.matrix > 0).astype(float)
    graph = sp.bmat([[None, pattern], [pattern.T, None]])
    hops = shortest_path(graph, unweighted=True, indices=m + target)
    users, items, _ = data.triples()
    return np.maximum(hops[users], hops[m + items])


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.8])
def test_hops_keep_the_ratings_nearest_to_the_target(fraction):
    data = planted(80, 60, ratings_per_user=6, random_state=0)
    target = 7
    view = subsample_hops(data, fraction, [target], random_state=0)
    assert view.matrix.shape == data.matrix.shape
    assert view.n_ratings == round(fraction * data.n_ratings)
    kept = np.asarray(data.matrix.multiply(view.matrix > 0)[data.matrix.nonzero()]).ravel() > 0
    hops = _edge_hops(data, target)
    assert hops[kept].max() <= hops[~kept].min()
    if kept.sum() >= data.matrix[:, target].nnz:  # the target's own ratings come first
        assert view.matrix[:, target].nnz == data.matrix[:, target].nnz
    np.testing.assert_array_equal(view.matrix.data, data.matrix[view.matrix.nonzero()].A1)


def test_hops_are_seeded_and_checked():
    data = planted(40, 30, ratings_per_user=5, random_state=0)
    first = subsample_hops(data, 0.4, [3], random_state=1)
    again = subsample_hops(data, 0.4, [3], random_state=1)
    assert (first.matrix != again.matrix).nnz == 0
    with pytest.raises(ConfigError, match="target"):
        subsample_hops(data, 0.4, [])
    with pytest.raises(ConfigError, match="fraction"):
        subsample_hops(data, 0.0, [3])


def test_a_spec_runs_hops_knowledge_per_target(planted_csv, tmp_path):
    path = planted_csv(n_users=60, ratings_per_user=8, seed=1)
    spec = {
        "name": "hops",
        "datasets": [{"source": str(path)}],
        "victims": [{"name": "als-mf", "params": {"rank": 4, "iterations": 5}}],
        "attacks": [
            {"name": "none"},
            {"name": "s-tna-inf", "params": {"rank": 4, "n_fillers": 5, "n_iter": 1}},
        ],
        "sizes": [0.05],
        "targets": [{"type": "random", "count": 2}],
        "knowledge": [{"kind": "hops", "fraction": 0.3}],
        "retrains": 1,
        "rmse_holdout": 0,
        "device": "cpu",
        "victim_quality": False,
    }
    assert parse_spec(spec).knowledge[0].display == "hops 30%"
    run_experiment(spec, tmp_path / "h.db", progress=False)
    report = build_report(tmp_path / "h.db")
    assert set(report["knowledge"]) == {"hops 30%"}
    attacked = report[report["attack"] == "s-tna-inf"]
    assert attacked["hr_mean"].notna().all()

    infos = [
        json.loads(row[0])
        for row in sqlite3.connect(tmp_path / "h.db").execute("SELECT info_json FROM cells")
    ]
    attacked_info = [i for i in infos if "attack" in i]
    assert attacked_info[0]["n_attacker_ratings"] == round(0.3 * 60 * 8)
