"""Metattack (Zügner and Günnemann, ICLR 2019), Meta-Self variant, and random flips.

Per perturbation: a linearised two-layer GCN surrogate (hidden 16) is trained from a fixed
Glorot initialisation for ``steps`` (T = 100) steps of gradient descent with momentum 0.9 and
learning rate 0.1 (the authors' settings) on the labeled nodes of the current graph; the attack
loss is the surrogate's cross-entropy on the unlabeled nodes against *self-training* labels
(the predictions of a victim GCN trained on the clean graph; Meta-Self, λ = 0); its gradient
with respect to the dense adjacency, back-propagated through the T steps, scores each node pair
``(i, j)`` by ``(g_ij + g_ji)(1 - 2 A_ij)`` (insert where positive for a 0, remove for a 1),
and the best pair not flipped before is flipped, symmetrically, without self-loops. As in the
thesis (§4.1), the unnoticeability constraints (degree-distribution test, no singletons) are
not applied.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recpoison.errors import ConfigError
from recpoison.graphs.data import Graph
from recpoison.graphs.gcn import gcn_logits, glorot_weights, normalized_dense, predict, train_gcn
from recpoison.utils import RandomState, check_random_state, derive_seed

logger = logging.getLogger(__name__)


def _check_budget(graph: Graph, budget: int) -> None:
    pairs = graph.n_nodes * (graph.n_nodes - 1) // 2
    if budget < 0 or budget > pairs:
        raise ConfigError(f"budget must be in 0..{pairs} node pairs, got {budget}")


def metattack(
    graph: Graph,
    budget: int,
    *,
    steps: int = 100,
    lr: float = 0.1,
    momentum: float = 0.9,
    hidden: int = 16,
    with_relu: bool = False,
    random_state: RandomState = None,
) -> tuple[Graph, np.ndarray]:
    """Flip ``budget`` node pairs by meta-gradient (see the module doc); return the perturbed
    graph and the flipped pairs ``[budget, 2]`` (i < j) in order."""
    _check_budget(graph, budget)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    rng = check_random_state(random_state)
    pseudo = predict(graph, train_gcn(graph, random_state=derive_seed(rng)))
    pseudo[graph.labeled] = graph.labels[graph.labeled]
    generator = torch.Generator().manual_seed(derive_seed(rng))
    start = glorot_weights(graph.features.shape[1], hidden, graph.n_classes, generator)
    x = torch.as_tensor(graph.features)
    labeled, unlabeled = torch.as_tensor(graph.labeled), torch.as_tensor(graph.unlabeled)
    y = torch.as_tensor(graph.labels)
    y_self = torch.as_tensor(pseudo)
    adjacency = torch.as_tensor(graph.adjacency.toarray())
    n = graph.n_nodes
    allowed = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    flips = []
    for k in range(budget):
        a = adjacency.clone().requires_grad_()
        a_hat = normalized_dense(a)
        weights = {name: w.clone().requires_grad_() for name, w in start.items()}
        velocity = {name: torch.zeros_like(w) for name, w in start.items()}
        for _ in range(steps):
            logits = gcn_logits(weights, a_hat, x, relu=with_relu)
            loss = F.cross_entropy(logits[labeled], y[labeled])
            grads = torch.autograd.grad(loss, list(weights.values()), create_graph=True)
            for (name, w), g in zip(list(weights.items()), grads, strict=True):
                velocity[name] = momentum * velocity[name] + g
                weights[name] = w - lr * velocity[name]
        logits = gcn_logits(weights, a_hat, x, relu=with_relu)
        attack_loss = F.cross_entropy(logits[unlabeled], y_self[unlabeled])
        (grad,) = torch.autograd.grad(attack_loss, a)
        score = (grad + grad.T) * (1 - 2 * adjacency)
        score = score.masked_fill(~allowed, -torch.inf)
        best = int(torch.argmax(score))
        i, j = divmod(best, n)
        adjacency[i, j] = adjacency[j, i] = 1 - adjacency[i, j]
        allowed[i, j] = False
        flips.append((i, j))
        logger.info(
            "metattack: flip %d/%d (%d, %d), attack loss %.4f", k + 1, budget, i, j, attack_loss
        )
    perturbed = graph.with_adjacency(sp.csr_matrix(adjacency.numpy()))
    return perturbed, np.array(flips, dtype=np.int64).reshape(-1, 2)


def random_flips(
    graph: Graph, budget: int, random_state: RandomState = None
) -> tuple[Graph, np.ndarray]:
    """Flip ``budget`` distinct node pairs drawn uniformly at random (the baseline)."""
    _check_budget(graph, budget)
    rng = check_random_state(random_state)
    rows, cols = np.triu_indices(graph.n_nodes, k=1)
    pick = rng.choice(len(rows), size=budget, replace=False)
    adjacency = graph.adjacency.toarray()
    for i, j in zip(rows[pick], cols[pick], strict=True):
        adjacency[i, j] = adjacency[j, i] = 1 - adjacency[i, j]
    flips = np.column_stack([rows[pick], cols[pick]]).astype(np.int64)
    return graph.with_adjacency(sp.csr_matrix(adjacency)), flips
