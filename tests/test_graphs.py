"""The GCN Metattack sanity check (thesis §4.1): graphs, the GCN, Metattack vs random flips."""

import numpy as np
import pytest

from recpoison.errors import ConfigError
from recpoison.graphs import (
    contextual_sbm,
    evaluate_gcn,
    karate_club,
    metattack,
    random_flips,
)


def test_karate_club_is_the_two_club_graph():
    g = karate_club(random_state=0)
    assert (g.n_nodes, g.n_edges, g.n_classes) == (34, 78, 2)
    assert (g.adjacency != g.adjacency.T).nnz == 0 and g.adjacency.diagonal().sum() == 0
    assert np.bincount(g.labels).tolist() == [17, 17]
    assert len(np.intersect1d(g.labeled, g.unlabeled)) == 0
    assert len(g.labeled) + len(g.unlabeled) == 34


def test_contextual_sbm_plants_classes_in_edges_and_features():
    g = contextual_sbm(120, random_state=0)
    rows, cols = g.adjacency.nonzero()
    assert (g.adjacency != g.adjacency.T).nnz == 0 and (rows != cols).all()
    assert np.mean(g.labels[rows] == g.labels[cols]) > 0.6  # 3 classes: 1/3 by chance
    means = np.stack([g.features[g.labels == c].mean(axis=0) for c in range(g.n_classes)])
    assert np.linalg.norm(means[0] - means[1]) > 0.5


@pytest.fixture(scope="module")
def sbm():
    return contextual_sbm(120, random_state=0)


def test_metattack_flips_distinct_pairs_symmetrically(sbm):
    perturbed, flips = metattack(sbm, 5, steps=10, random_state=0)
    assert flips.shape == (5, 2) and (flips[:, 0] < flips[:, 1]).all()
    assert len({tuple(f) for f in flips}) == 5
    changed = (perturbed.adjacency != sbm.adjacency).nonzero()
    assert len(changed[0]) == 10  # both directions of each pair
    assert (perturbed.adjacency != perturbed.adjacency.T).nnz == 0


def test_metattack_lowers_accuracy_more_than_random_flips(sbm):
    budget = round(0.1 * sbm.n_edges)
    attacked, _ = metattack(sbm, budget, steps=50, random_state=0)
    randomized, _ = random_flips(sbm, budget, random_state=0)
    clean = evaluate_gcn(sbm, 3, random_state=1).mean()
    meta = evaluate_gcn(attacked, 3, random_state=1).mean()
    rand = evaluate_gcn(randomized, 3, random_state=1).mean()
    assert meta < rand - 0.05 and meta < clean - 0.05


def test_graph_attacks_refuse_impossible_budgets(sbm):
    with pytest.raises(ConfigError, match="budget"):
        random_flips(sbm, -1)
    with pytest.raises(ConfigError, match="budget"):
        metattack(sbm, 10**6)
