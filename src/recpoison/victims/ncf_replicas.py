"""Take some replicas out of a fitted stacked NCF model, and write them back.

A stacked NCF victim (:mod:`recpoison.victims.neural`) trains ``R`` independent models in one
module; replicas never share a parameter, and Adam is element-wise. So a subset of replicas can be
lifted out with its parameters, Adam moments and generators, trained further on its own (at the
cost of that subset only), and written back. SISA unlearning (:mod:`recpoison.remedies.sisa`)
uses this to retrain only the shards that held a removed user.

Every stacked tensor has the replica as its leading block: flat embedding tables are
``[R * n, d]`` and the layer weights ``[R, ...]``, so ``tensor.reshape(R, -1)[index]`` selects
replicas of any of them. Adam's ``step`` counter is shared by the replicas of one stack; the
written-back replicas keep the stack's counter (it only enters the bias correction
``1 - β^t``, which is 1 to float precision after a few hundred steps).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from recpoison.victims.neural import NCFRecommender


def _replica_rows(tensor: torch.Tensor, n_replicas: int, index: Sequence[int]) -> torch.Tensor:
    """The replicas ``index`` of a stacked tensor, stacked the same way."""
    return tensor.reshape(n_replicas, -1)[list(index)].reshape(-1, *tensor.shape[1:]).clone()


def take_replicas(model: NCFRecommender, index: Sequence[int]) -> NCFRecommender:
    """A fitted copy of ``model`` holding only replicas ``index`` (in that order): parameters,
    Adam state and generator states are copied; training it leaves ``model`` unchanged."""
    model._check_fitted()
    index = list(index)
    R = model.n_replicas
    sub = copy.copy(model)
    sub.n_replicas = len(index)
    sub.seeds = [model.seeds_[i] for i in index]
    sub.seeds_ = list(sub.seeds)
    sub.generators_ = [_copy_generator(model.generators_[i]) for i in index]
    sub.loss_history_ = model.loss_history_[:, index]
    sub.module_ = copy.deepcopy(model.module_, memo={id(model.module_._grad_buffers): {}})
    sub.module_.n_replicas = len(index)
    old_params = list(model.module_.parameters())
    new_params = list(sub.module_.parameters())
    with torch.no_grad():
        for param in new_params:
            param.data = _replica_rows(param.data, R, index)
    group = model.optimizer_.param_groups[0]
    sub.optimizer_ = torch.optim.Adam(
        new_params, lr=group["lr"], weight_decay=group["weight_decay"], fused=True
    )
    for old, new in zip(old_params, new_params, strict=True):
        state = model.optimizer_.state.get(old)
        if state:
            sub.optimizer_.state[new] = {
                key: _replica_rows(value, R, index)
                if torch.is_tensor(value) and value.shape == old.shape
                else copy.deepcopy(value)
                for key, value in state.items()
            }
    return sub


def put_replicas(model: NCFRecommender, index: Sequence[int], sub: NCFRecommender) -> None:
    """Write the replicas of ``sub`` (as taken by :func:`take_replicas`, then trained) back into
    replicas ``index`` of ``model``: parameters, Adam moments and generator states."""
    index = list(index)
    R = model.n_replicas
    with torch.no_grad():
        for full, part in zip(model.module_.parameters(), sub.module_.parameters(), strict=True):
            full.data.view(R, -1)[index] = part.data.reshape(len(index), -1)
            full_state = model.optimizer_.state.get(full, {})
            part_state = sub.optimizer_.state.get(part, {})
            for key, value in part_state.items():
                target = full_state.get(key)
                if torch.is_tensor(target) and target.shape == full.shape:
                    target.view(R, -1)[index] = value.reshape(len(index), -1)
    for i, generator in zip(index, sub.generators_, strict=True):
        model.generators_[i].set_state(generator.get_state())


def _copy_generator(generator: torch.Generator) -> torch.Generator:
    copied = torch.Generator(device=generator.device)
    copied.set_state(generator.get_state())
    return copied
