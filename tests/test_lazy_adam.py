"""Lazy Adam for embedding tables: the touched rows move exactly as under dense Adam."""

import numpy as np
import torch
from torch import nn

from recpoison.data import planted
from recpoison.victims.lazy_adam import lazy_adam_step, unique_row_gradients
from recpoison.victims.neural import NeuMF


def _tables(seed: int = 0) -> tuple[nn.Parameter, nn.Parameter]:
    init = torch.randn(6, 3, generator=torch.Generator().manual_seed(seed))
    return nn.Parameter(init.clone()), nn.Parameter(init.clone())


def test_touched_rows_follow_dense_adam_and_the_others_stay_put():
    dense, lazy = _tables()
    dense_opt = torch.optim.Adam([dense], lr=0.1, weight_decay=0.01)
    lazy_opt = torch.optim.Adam([lazy], lr=0.1, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # every step touches all rows (row 2 twice): lazy == dense
        index = torch.tensor([0, 1, 2, 2, 3, 4, 5])
        row_grads = torch.randn(len(index), 3, generator=g)
        dense.grad = torch.zeros_like(dense).index_add_(0, index, row_grads)
        dense_opt.step()
        lazy_adam_step(lazy_opt, lazy, *unique_row_gradients(index, row_grads))
        torch.testing.assert_close(lazy.detach(), dense.detach())
    before = lazy.detach().clone()
    lazy_adam_step(lazy_opt, lazy, torch.tensor([1]), torch.ones(1, 3))
    changed = (lazy.detach() != before).any(dim=1)
    assert changed.tolist() == [False, True, False, False, False, False]


def test_lazy_adam_ncf_learns_and_replicas_stay_independent():
    data = planted(60, 40, ratings_per_user=8, rating_scale=None, random_state=0)
    params = dict(embedding_dim=4, layers=(8, 4), epochs=3, batch_size=64, optimizer="lazy-adam")
    together = NeuMF(n_replicas=2, random_state=0, device="cpu", **params).fit(data)
    history = together.loss_history_
    assert np.all(history[-1] < history[0])
    seed = together.seeds_[1]
    alone = NeuMF(n_replicas=1, seeds=[seed], device="cpu", **params).fit(data)
    torch.testing.assert_close(
        together.score_replicas(np.arange(5))[1], alone.score_replicas(np.arange(5))[0]
    )
