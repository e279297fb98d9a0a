"""Graphs for node classification: an undirected adjacency, node features, labels, a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recpoison.errors import ConfigError
from recpoison.utils import RandomState, check_random_state


@dataclass(frozen=True, eq=False)
class Graph:
    """``adjacency`` symmetric 0/1 CSR without self-loops; ``features`` ``[n, d]``; ``labels``
    ``[n]`` in ``0..n_classes-1``; ``labeled`` / ``unlabeled`` node indices (train / test)."""

    adjacency: sp.csr_matrix
    features: np.ndarray
    labels: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    name: str = "graph"

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.adjacency.nnz // 2)

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1

    def with_adjacency(self, adjacency: sp.csr_matrix) -> Graph:
        return Graph(
            sp.csr_matrix(adjacency, dtype=np.float32),
            self.features,
            self.labels,
            self.labeled,
            self.unlabeled,
            self.name,
        )


def stratified_split(
    labels: np.ndarray, labeled_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``labeled_fraction`` of each class (at least one node) labeled, the rest unlabeled."""
    if not 0 < labeled_fraction < 1:
        raise ConfigError(f"labeled_fraction must be in (0, 1), got {labeled_fraction}")
    labeled = []
    for c in np.unique(labels):
        nodes = np.flatnonzero(labels == c)
        n = max(1, round(labeled_fraction * len(nodes)))
        labeled.append(rng.choice(nodes, size=n, replace=False))
    chosen = np.sort(np.concatenate(labeled))
    return chosen, np.setdiff1d(np.arange(len(labels)), chosen)


def _symmetric(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    data = np.ones(2 * len(rows), dtype=np.float32)
    a = sp.csr_matrix((data, (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n))
    a.data[:] = 1.0  # duplicates summed to 2 become 1
    return a


def karate_club(labeled_fraction: float = 0.1, random_state: RandomState = None) -> Graph:
    """Zachary's karate club (34 nodes, 78 edges; networkx): the two clubs after the split are
    the classes, one-hot node identities the features (the usual choice for a featureless
    graph)."""
    try:
        import networkx as nx
    except ImportError as error:  # pragma: no cover - networkx ships with the dev extra
        raise ConfigError("karate_club() needs networkx: pip install recpoison[graphs]") from error
    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    edges = np.array(g.edges(), dtype=np.int64)
    labels = np.array([g.nodes[v]["club"] != "Mr. Hi" for v in range(n)], dtype=np.int64)
    labeled, unlabeled = stratified_split(
        labels, labeled_fraction, check_random_state(random_state)
    )
    adjacency = _symmetric(edges[:, 0], edges[:, 1], n)
    return Graph(adjacency, np.eye(n, dtype=np.float32), labels, labeled, unlabeled, "karate")


def contextual_sbm(
    n_nodes: int = 200,
    n_classes: int = 3,
    p_in: float = 0.06,
    p_out: float = 0.01,
    n_features: int = 32,
    feature_signal: float = 1.0,
    labeled_fraction: float = 0.1,
    random_state: RandomState = None,
) -> Graph:
    """A contextual stochastic block model: planted classes of equal size, an edge inside a
    class with probability ``p_in`` and across with ``p_out``, and Gaussian features
    ``feature_signal * μ_class + N(0, I)`` with ``μ_class`` random unit vectors, so both the
    graph and the features carry (noisy) class information."""
    if n_classes < 2 or n_nodes < 2 * n_classes:
        raise ConfigError("contextual_sbm(): need n_classes >= 2 and two nodes per class")
    if not (0 <= p_out <= 1 and 0 < p_in <= 1):
        raise ConfigError("contextual_sbm(): p_in and p_out must be probabilities")
    rng = check_random_state(random_state)
    labels = np.arange(n_nodes) % n_classes
    labels = labels[rng.permutation(n_nodes)]
    upper = np.triu(np.ones((n_nodes, n_nodes), dtype=bool), k=1)
    same = labels[:, None] == labels[None, :]
    draw = rng.random((n_nodes, n_nodes)) < np.where(same, p_in, p_out)
    rows, cols = np.nonzero(draw & upper)
    means = rng.normal(size=(n_classes, n_features))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    features = feature_signal * means[labels] + rng.normal(size=(n_nodes, n_features))
    labeled, unlabeled = stratified_split(labels, labeled_fraction, rng)
    return Graph(
        _symmetric(rows, cols, n_nodes),
        features.astype(np.float32),
        labels.astype(np.int64),
        labeled,
        unlabeled,
        "csbm",
    )
