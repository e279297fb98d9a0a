"""Graph node classification: the GCN Metattack sanity check of Aravind's thesis (§4.1).

A separate package (it does not depend on the recommender code): a two-layer GCN, Zügner and
Günnemann's Metattack (ICLR 2019, Meta-Self) on the adjacency matrix, random perturbations as
the baseline, and two graphs that need no download (Zachary's karate club from networkx and a
synthetic contextual stochastic block model).
"""

from recpoison.graphs.data import Graph, contextual_sbm, karate_club
from recpoison.graphs.gcn import evaluate_gcn, train_gcn
from recpoison.graphs.metattack import metattack, random_flips

__all__ = [
    "Graph",
    "contextual_sbm",
    "evaluate_gcn",
    "karate_club",
    "metattack",
    "random_flips",
    "train_gcn",
]
