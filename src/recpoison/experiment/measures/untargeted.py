"""Untargeted measures (Aravind's thesis §3.4-3.5, §4.2, §4.7): how well the retrained victim
still separates interactions from non-interactions.

The labelled edges. The thesis trains and evaluates on A = A⁺ ∪ A⁻: the observed interactions
and a sample of unobserved ones (Table 4.19: on MovieLens as many negatives as positives), and
reports accuracy and loss on the training edges (the perturbed ones excluded by default, §4.2)
and on unseen edges (Algorithm 5). :func:`edge_split` builds them from a dataset with the
project's seeded, leak-free rules:

- *unseen edges*: the latest interaction of every user (leave-one-out, as the victim-quality
  check) plus ``negative_ratio`` times as many non-interactions (thesis: a held-out split; its
  size is not given);
- *training edges*: every remaining interaction plus ``round(negative_ratio * positives)``
  non-interactions A⁻ (none of them a held-out positive or an unseen negative).

The victim trains on the training interactions with its own negative sampling (4 fresh
negatives per positive and epoch for the NCF victims), not on the fixed A⁻ (a documented
deviation: the recpoison victims are trained the same way under every protocol). A⁻ defines
the budget (``size`` is a fraction of ``|A⁻|``, the thesis's "percentage of 0-edges
perturbed") and the negatives of the training evaluation.

The metrics, per retrain: accuracy (a pair is predicted an interaction when ŷ > 0.5, i.e. the
victim's logit > 0), AUROC (scikit-learn ``roc_auc_score`` on the logits) and mean BCE, on the
training edges minus the flipped ones and on the unseen edges; and the NCF-protocol HR@10 /
NDCG@10 of the held-out interactions against 99 sampled non-interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from recpoison.data import transforms
from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.experiment.measures.base import Fit
from recpoison.experiment.measures.quality import QUALITY_K, quality_negatives
from recpoison.metrics import leave_one_out_hr_ndcg
from recpoison.utilities import pair_predictions

#: The metrics recorded per retrain, in the cell info under ``"untargeted"``.
METRICS = (
    "train_accuracy",
    "train_auroc",
    "train_loss",
    "unseen_accuracy",
    "unseen_auroc",
    "unseen_loss",
    "hr_at_10",
    "ndcg_at_10",
)


@dataclass(frozen=True)
class LabelledEdges:
    """(user, item) pairs with labels 1 (interaction) or 0 (sampled non-interaction)."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray

    def without(self, keys: np.ndarray, n_items: int) -> LabelledEdges:
        """The edges whose ``user * n_items + item`` is not in ``keys``."""
        keep = ~np.isin(self.users * n_items + self.items, keys)
        return LabelledEdges(self.users[keep], self.items[keep], self.labels[keep])


@dataclass(frozen=True)
class EdgeSplit:
    """The training data and labelled edges of an untargeted cell (see the module doc)."""

    train: Interactions
    train_edges: LabelledEdges
    unseen_edges: LabelledEdges
    test_items: np.ndarray

    @property
    def n_negatives(self) -> int:
        """|A⁻|, the training negatives: the base of an edge attack's budget."""
        return int((self.train_edges.labels == 0).sum())


def edge_split(data: Interactions, negative_ratio: float, seed: int) -> EdgeSplit:
    """Split ``data`` (implicit, real users) into training and unseen labelled edges."""
    rng = np.random.default_rng(seed)
    train, test_items = transforms.leave_one_out(data, random_state=rng)
    held = np.flatnonzero(test_items >= 0)
    n_items = data.n_items
    positives = _keys(train)
    n_train_neg = round(negative_ratio * len(positives))
    n_unseen_neg = round(negative_ratio * len(held))
    negatives = _non_edges(data, n_train_neg + n_unseen_neg, rng)
    unseen_neg, train_neg = negatives[:n_unseen_neg], negatives[n_unseen_neg:]
    train_edges = _labelled(positives, train_neg, n_items)
    unseen_edges = _labelled(held * n_items + test_items[held], unseen_neg, n_items)
    return EdgeSplit(train, train_edges, unseen_edges, test_items)


class UntargetedMetrics:
    """Accuracy, AUROC and BCE on training and unseen edges, HR@10 / NDCG@10, per retrain.

    ``flips`` (``[n, 3]`` rows ``(user, item, new_value)`` of the perturbation) are excluded
    from the training edges (thesis §4.2 default) and from the unseen edges: the thesis's
    attacks flip only sampled training negatives, which never hold an unseen edge, but an
    attack that sees only the training interactions (``random-edges``) may insert an unseen
    one, whose label the victim would then have been trained on. A user whose held-out
    interaction was inserted is left out of HR@10 / NDCG@10 for the same reason. ``dataset``
    is the index of the perturbed dataset among those the retrain step trains on (one per
    attack draw): the measurement reads the replicas that trained on it.
    """

    def __init__(
        self, split: EdgeSplit, flips: np.ndarray, retrains: int, seed: int, dataset: int = 0
    ) -> None:
        n_items = split.train.n_items
        flipped = flips[:, 0] * n_items + flips[:, 1] if len(flips) else np.zeros(0, np.int64)
        self.split, self.seed, self.dataset = split, seed, dataset
        self.train_edges = split.train_edges.without(flipped, n_items)
        self.unseen_edges = split.unseen_edges.without(flipped, n_items)
        users = np.arange(len(split.test_items))
        self.test_items = np.where(
            np.isin(users * n_items + split.test_items, flipped), -1, split.test_items
        )
        self.values = {name: np.full(retrains, np.nan) for name in METRICS}

    def observe(self, fit: Fit) -> None:
        if self.dataset not in fit.members:
            return  # another draw's replicas
        block = fit.block(fit.members.index(self.dataset))  # a shared fit: all its replicas
        model, trained = fit.model, fit.datasets[self.dataset]
        for prefix, edges in (("train", self.train_edges), ("unseen", self.unseen_edges)):
            logits = pair_predictions(model, edges.users, edges.items)[block]
            for name, values in edge_metrics(logits, edges.labels).items():
                self.values[f"{prefix}_{name}"][:] = values
        test_items = np.full(trained.n_users, -1, dtype=np.int64)
        test_items[: len(self.test_items)] = self.test_items
        scores = leave_one_out_hr_ndcg(
            model,
            trained,
            test_items,
            QUALITY_K,
            quality_negatives(trained),
            random_state=self.seed,
        )
        self.values["hr_at_10"][:] = scores["hr"][block]
        self.values["ndcg_at_10"][:] = scores["ndcg"][block]

    def info(self) -> dict[str, Any]:
        """The per-retrain metrics and the number of labelled edges they were measured on."""
        return {
            **{name: values.tolist() for name, values in self.values.items()},
            "n_train_edges": len(self.train_edges.labels),
            "n_unseen_edges": len(self.unseen_edges.labels),
            "n_negatives": self.split.n_negatives,
        }


def merge_draws(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's ``"untargeted"`` info from the :meth:`UntargetedMetrics.info` of each attack
    draw: a single draw's as it is; several draws' metrics concatenated draw by draw (``draws x
    retrains`` values, retrain ``r`` of every draw with the same victim seed), with ``draws``
    and each draw's edge counts."""
    if len(infos) == 1:
        return infos[0]
    return {
        **{name: [v for info in infos for v in info[name]] for name in METRICS},
        "draws": len(infos),
        "n_train_edges": [info["n_train_edges"] for info in infos],
        "n_unseen_edges": [info["n_unseen_edges"] for info in infos],
        "n_negatives": infos[0]["n_negatives"],
    }


def edge_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy at ŷ = 0.5, AUROC and mean BCE of ``logits`` ``[R, n]`` against ``labels``."""
    y = torch.as_tensor(labels, dtype=torch.float64).expand(logits.shape[0], -1)
    z = torch.as_tensor(logits, dtype=torch.float64)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    both = len(np.unique(labels)) == 2
    return {
        "accuracy": ((logits > 0) == (labels[None] == 1)).mean(axis=1),
        "auroc": np.array([roc_auc_score(labels, row) if both else np.nan for row in logits]),
        "loss": loss.mean(dim=1).numpy(),
    }


def _keys(data: Interactions) -> np.ndarray:
    m = data.matrix
    return np.repeat(np.arange(data.n_users), np.diff(m.indptr)) * data.n_items + m.indices


def _non_edges(data: Interactions, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct keys drawn uniformly among the non-interactions of ``data``."""
    total = data.n_users * data.n_items
    taken = _keys(data)
    if count > total - len(taken):
        raise ConfigError(
            f"{data.name}: {count} sampled negatives asked, only {total - len(taken)} "
            "non-interactions; lower negative_ratio"
        )
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < count:
        draws = rng.integers(0, total, size=2 * (count - len(chosen)) + 64)
        draws = draws[~np.isin(draws, taken)]
        _, first = np.unique(np.concatenate([chosen, draws]), return_index=True)
        merged = np.concatenate([chosen, draws])[np.sort(first)]  # keep the draw order
        chosen = merged[:count]
    return chosen


def _labelled(positives: np.ndarray, negatives: np.ndarray, n_items: int) -> LabelledEdges:
    keys = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.int8)
    return LabelledEdges(keys // n_items, keys % n_items, labels)
