"""A two-layer graph convolutional network (Kipf and Welling, ICLR 2017) in plain torch.

``softmax(Â · act(Â X W1) · W2)`` with ``Â = D^-1/2 (A + I) D^-1/2``; no biases (Kipf's
default), ``act`` = ReLU for the victim, the identity for Metattack's linearised surrogate.
The victim trains as Kipf does: hidden 16, dropout 0.5, Adam lr 0.01, weight decay 5e-4 on the
first layer, 200 epochs, cross-entropy on the labeled nodes; the adjacency is a torch sparse
tensor. ``Â`` is differentiable in a dense ``A`` for the meta-gradient.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recpoison.graphs.data import Graph
from recpoison.utils import RandomState, check_random_state, derive_seed

Weights = dict[str, torch.Tensor]


def normalized_dense(adjacency: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` of a dense (possibly differentiable) adjacency."""
    a = adjacency + torch.eye(adjacency.shape[0], dtype=adjacency.dtype)
    d = a.sum(dim=1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def normalized_sparse(adjacency: sp.csr_matrix) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a torch sparse COO tensor."""
    a = sp.coo_matrix(adjacency + sp.eye(adjacency.shape[0]), dtype=np.float32)
    d = np.asarray(a.sum(axis=1)).ravel() ** -0.5
    values = d[a.row] * a.data * d[a.col]
    index = torch.as_tensor(np.vstack([a.row, a.col]), dtype=torch.int64)
    return torch.sparse_coo_tensor(
        index, torch.as_tensor(values), a.shape, check_invariants=True
    ).coalesce()


def glorot_weights(
    n_features: int, hidden: int, n_classes: int, generator: torch.Generator
) -> Weights:
    """Glorot-uniform ``W1 [d, hidden]`` and ``W2 [hidden, classes]`` (Kipf's initialisation)."""

    def glorot(fan_in: int, fan_out: int) -> torch.Tensor:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * limit

    return {"w1": glorot(n_features, hidden), "w2": glorot(hidden, n_classes)}


def gcn_logits(
    weights: Weights,
    a_hat: torch.Tensor,
    features: torch.Tensor,
    *,
    relu: bool = True,
    dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Class logits ``[n, classes]``; ``dropout`` (training only) on both layers' inputs."""

    def drop(x: torch.Tensor) -> torch.Tensor:
        if dropout == 0:
            return x
        keep = torch.rand(x.shape, generator=generator) >= dropout
        return x * keep / (1 - dropout)

    hidden = a_hat @ (drop(features) @ weights["w1"])
    if relu:
        hidden = torch.relu(hidden)
    return a_hat @ (drop(hidden) @ weights["w2"])


def train_gcn(
    graph: Graph,
    *,
    hidden: int = 16,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    dropout: float = 0.5,
    random_state: RandomState = None,
) -> Weights:
    """Train the victim GCN on ``graph``'s labeled nodes (see the module doc)."""
    generator = torch.Generator().manual_seed(derive_seed(check_random_state(random_state)))
    weights = glorot_weights(graph.features.shape[1], hidden, graph.n_classes, generator)
    for w in weights.values():
        w.requires_grad_()
    optimizer = torch.optim.Adam(
        [
            {"params": [weights["w1"]], "weight_decay": weight_decay},
            {"params": [weights["w2"]], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    a_hat = normalized_sparse(graph.adjacency)
    x = torch.as_tensor(graph.features)
    labeled = torch.as_tensor(graph.labeled)
    y = torch.as_tensor(graph.labels)[labeled]
    for _ in range(epochs):
        optimizer.zero_grad()
        logits = gcn_logits(weights, a_hat, x, dropout=dropout, generator=generator)
        F.cross_entropy(logits[labeled], y).backward()
        optimizer.step()
    return {k: w.detach() for k, w in weights.items()}


def predict(graph: Graph, weights: Weights) -> np.ndarray:
    """Predicted class of every node."""
    with torch.no_grad():
        logits = gcn_logits(
            weights, normalized_sparse(graph.adjacency), torch.as_tensor(graph.features)
        )
    return logits.argmax(dim=1).numpy()


def evaluate_gcn(graph: Graph, n_runs: int = 5, random_state: RandomState = None) -> np.ndarray:
    """Accuracy on the unlabeled nodes of ``n_runs`` victims trained from different seeds."""
    rng = check_random_state(random_state)
    accuracies = []
    for _ in range(n_runs):
        predicted = predict(graph, train_gcn(graph, random_state=derive_seed(rng)))
        accuracies.append(np.mean(predicted[graph.unlabeled] == graph.labels[graph.unlabeled]))
    return np.array(accuracies)
