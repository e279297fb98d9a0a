"""Hand-written backward of an NCF training step: binary cross-entropy on sampled instances.

At NCF's batch size (256 instances per replica) a stacked training step is a few dozen small
tensor operations, and on a CPU autograd's bookkeeping and the layouts it picks cost more than
the arithmetic (``benchmarks/train_speed.py``). The network is fixed and small, so the gradients
of the step's loss ``sum_r mean_b BCE(logit_rb, y_rb)`` (each replica's mean BCE, as
:meth:`NCFRecommender.fit` trains) are written out here in closed form:

* ``dL/dlogit = (sigmoid(logit) - y) / B`` (B instances per replica);
* prediction unit ``logit = h . w_out + b_out``: ``dw_out = h^T dlogit``, ``db_out = sum dlogit``,
  ``dh = dlogit w_out^T``;
* GMF tower ``p_u * q_i``: ``dp_u = dh_gmf * q_i``, ``dq_i = dh_gmf * p_u``;
* MLP tower, layer ``x_k = relu(x_{k-1} W_k + b_k)``: ``dpre = dx_k * [x_k > 0]``,
  ``dW_k = x_{k-1}^T dpre``, ``db_k = sum dpre``, ``dx_{k-1} = dpre W_k^T``; the input
  ``x_0 = [p_u, q_i]`` splits back into the user and item embedding gradients.

The forward pass is :meth:`StackedNCF.rows_forward`, the same code autograd differentiates, so
the logits are bit-identical; the gradients equal autograd's up to float rounding
(``tests/test_neural.py``). Training with an extra loss (poison-model's Eq. 6) goes through
autograd instead.
"""

from __future__ import annotations

import torch

from recpoison.victims.neural_modules import StackedNCF, TableGradients


@torch.no_grad()
def bce_step(
    module: StackedNCF, flat_users: torch.Tensor, flat_items: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, TableGradients]:
    """Forward and backward of one training step of ``module`` on flat table rows.

    Sets ``.grad`` of the module's dense parameters (MLP weights and biases, prediction unit)
    and returns each replica's summed BCE ``[R]`` and the :class:`TableGradients` of the
    gathered embedding rows (to add densely or apply with lazy Adam, as after autograd).
    """
    R, g, d = module.n_replicas, module.gmf_dim, module.mlp_dim
    user_rows = module.user_table.index_select(0, flat_users)
    item_rows = module.item_table.index_select(0, flat_items)
    logits, h, activations = module.rows_forward(user_rows, item_rows)
    B = logits.shape[1]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    dlogits = (torch.sigmoid(logits) - labels).div_(B)  # [R, B]

    module.out_bias.grad = dlogits.sum(dim=1, keepdim=True)
    module.out_weight.grad = torch.bmm(h.transpose(1, 2), dlogits[:, :, None])
    dh = dlogits[:, :, None] * module.out_weight.transpose(1, 2)  # [R, B, out_in]

    eu = user_rows.view(R, B, -1)
    ei = item_rows.view(R, B, -1)
    user_grads = torch.empty_like(eu)
    item_grads = torch.empty_like(ei)
    if g:
        torch.mul(dh[:, :, :g], ei[:, :, :g], out=user_grads[:, :, :g])
        torch.mul(dh[:, :, :g], eu[:, :, :g], out=item_grads[:, :, :g])
    if d:
        dx = dh[:, :, g:]
        layers = list(zip(module.mlp_weights, module.mlp_biases, strict=True))
        for k in range(len(layers) - 1, -1, -1):
            weight, bias = layers[k]
            dpre = torch.ops.aten.threshold_backward(dx, activations[k + 1], 0)  # ReLU'
            weight.grad = torch.bmm(activations[k].transpose(1, 2), dpre)
            bias.grad = dpre.sum(dim=1, keepdim=True)
            dx = torch.bmm(dpre, weight.transpose(1, 2))
        user_grads[:, :, g:] = dx[:, :, :d]
        item_grads[:, :, g:] = dx[:, :, d:]
    gradients = TableGradients(
        module,
        (
            (module.user_table, flat_users, user_grads.view(R * B, -1)),
            (module.item_table, flat_items, item_grads.view(R * B, -1)),
        ),
    )
    return bce.sum(dim=1), gradients
