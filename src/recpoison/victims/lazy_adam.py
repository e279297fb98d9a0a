"""Lazy Adam for embedding tables: update only the rows a mini-batch used.

NCF trains with dense Adam (Keras' ``Adam`` over ``Embedding`` layers): every step moves every
row of the user and item tables, because rows a batch did not touch still carry momentum. At the
paper's batch size (256 instances) a step touches a few hundred rows of tables with about ten
thousand, so on a CPU the dense update of the tables costs more than the forward and backward
pass together (``benchmarks/train_speed.py --optimizers``).

*Lazy* Adam (TensorFlow Addons' ``LazyAdam``; PyTorch's ``SparseAdam``) updates the first and
second moments and the parameters of the touched rows only, with the bias correction of the
global step count; untouched rows keep their values and their moments. This changes NCF's update
rule, so it is an option (``optimizer="lazy-adam"`` on the NCF victims), measured in the README
for equal HR@10. The moments live in the model's ``torch.optim.Adam`` state, in the same tensors
the dense optimizer uses, so a model trained lazily can continue with dense steps (the attack
steps of poison-model do) and the other way round. Weight decay (L2, as torch's Adam adds it to
the gradient) applies to the touched rows only.
"""

from __future__ import annotations

import torch
from torch import nn


def unique_row_gradients(
    index: torch.Tensor, row_grads: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum the gradients of gathered rows per distinct table row: ``(rows, grads)``, the rows
    in no particular order (unsorted ``unique`` is several times faster on a CPU)."""
    rows, inverse = torch.unique(index, sorted=False, return_inverse=True)
    summed = row_grads.new_zeros(len(rows), row_grads.shape[1]).index_add_(0, inverse, row_grads)
    return rows, summed


@torch.no_grad()
def lazy_adam_step(
    optimizer: torch.optim.Adam, table: nn.Parameter, rows: torch.Tensor, grads: torch.Tensor
) -> None:
    """One Adam step on ``rows`` of ``table`` with their summed gradients ``grads``.

    Uses (and creates, zero, on first use) ``optimizer``'s state of ``table``: ``step``,
    ``exp_avg`` and ``exp_avg_sq``, with the hyperparameters of ``table``'s parameter group.
    The update of a row is exactly dense Adam's for that row (Kingma and Ba, Algorithm 1).
    """
    group = next(g for g in optimizer.param_groups if any(p is table for p in g["params"]))
    beta1, beta2 = group["betas"]
    state = optimizer.state[table]
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32, device=table.device)
        state["exp_avg"] = torch.zeros_like(table)
        state["exp_avg_sq"] = torch.zeros_like(table)
    state["step"] += 1
    step = state["step"]
    values = table.index_select(0, rows)
    if group["weight_decay"]:
        grads = grads.add(values, alpha=group["weight_decay"])
    exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(grads, alpha=1 - beta1)
    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
    exp_avg_sq.addcmul_(grads, grads, value=1 - beta2)
    state["exp_avg"].index_copy_(0, rows, exp_avg)
    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
    bias1 = 1 - beta1**step
    bias2_sqrt = (1 - beta2**step).sqrt()
    denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(group["eps"])
    table.index_copy_(0, rows, values - (group["lr"] / bias1) * exp_avg / denom)
