"""Meta-gradients of an NCF model's training loss with respect to the interaction matrix.

Aravind (thesis §3.4-3.9). The training data is the set of pairs ``A⁺ ∪ A⁻`` (observed
interactions plus sampled unobserved ones) with labels ``y_ui = A(u, i)``; the labels are the
hyper-parameter. Eq. 3.1 is the *summed* binary cross-entropy over those pairs::

    L_train(θ, A) = - Σ_(u,i) A(u,i) log ŷ_ui + (1 - A(u,i)) log(1 - ŷ_ui)

The surrogate is trained from ``θ_0`` by T plain (full-batch) gradient steps
``θ_{t+1} = θ_t - η ∇_θ L_train(θ_t, A)`` (Algorithm 1, lines 7-10). Adam is not supported: the
thesis's algorithms write plain steps, and they are what the meta-gradient is checked against.

* :func:`meta_gradient` (Algorithm 1, §3.6): ``∇_A L_train(θ_T(A), A)`` exactly, by
  back-propagating through the T steps (``create_graph``); memory grows with T (§3.8.1).
* :func:`approx_meta_gradient` (Algorithm 3, §3.9): ``Σ_{t=1..T} ∇_A L_train(θ̂_t, A)`` where
  ``θ̂_{t+1} = sg(θ̂_t) - η ∇_θ L_train(sg(θ̂_t), A)``: the chain ``θ_t -> θ_{t+1}`` is cut (the
  stopGradient of line 8), but each ``θ̂_{t+1}`` keeps its dependence on A through its own update
  step, as Zügner and Günnemann's approximate meta-gradient does. (With θ detached from A as
  well, the gradient would be only the direct term ``-logit ŷ_ui``, blind to training.) Memory is
  one step's graph; for ``T = 1`` it equals the exact meta-gradient.

The attacker minimises ``L_atk = -L_train`` (§3.5), so the entry to insert is the non-edge with
the *largest* ``∂L_train / ∂A(u,i)``: flipping ``A(u,i)`` from 0 to 1 raises the training loss
most to first order (§3.7, Algorithm 1 line 14). See :func:`flip_scores`.

The model is the surrogate victim's own :class:`~recpoison.victims.neural_modules.StackedNCF`
(one replica, its initialisation), called functionally on a dictionary of parameter tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from recpoison.victims.neural_modules import StackedNCF

Params = dict[str, torch.Tensor]
Objective = Callable[[Params], torch.Tensor]


class _PairModel(nn.Module):
    """``forward(users, items)`` = logits of (user, item) pairs of a one-replica StackedNCF."""

    def __init__(self, ncf: StackedNCF) -> None:
        super().__init__()
        if ncf.n_replicas != 1:
            raise ValueError("the meta-gradient surrogate has exactly one replica")
        self.ncf = ncf

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.ncf.pair_logits(users, items)[0]


class _FullModel(nn.Module):
    """``forward(users)`` = logits ``[len(users), n_items]`` of a one-replica StackedNCF."""

    def __init__(self, ncf: StackedNCF) -> None:
        super().__init__()
        self.ncf = ncf

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.ncf.full_logits(users)[0]


@dataclass
class PairData:
    """The pairs ``A⁺ ∪ A⁻`` the surrogate trains on: ``users``, ``items`` (int64 ``[n]``)."""

    users: torch.Tensor
    items: torch.Tensor


@dataclass
class TrainState:
    """Parameters plus optimizer moments (empty for plain steps) and the step count."""

    params: Params
    moments: dict[str, Params] = field(default_factory=dict)
    t: int = 0

    def detached(self) -> TrainState:
        """The same values cut from any graph, parameters again leaves that require grad."""
        return TrainState(
            {k: v.detach().requires_grad_() for k, v in self.params.items()},
            {m: {k: v.detach() for k, v in d.items()} for m, d in self.moments.items()},
            self.t,
        )


class Optimizer:
    """Plain gradient descent ``θ - η ∇θ`` (Algorithm 1, line 9)."""

    name = "sgd"

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def init(self, params: Params) -> TrainState:
        return TrainState(dict(params))

    def update(self, state: TrainState, grads: Params) -> TrainState:
        params = {k: p - self.lr * grads[k] for k, p in state.params.items()}
        return TrainState(params, state.moments, state.t + 1)


class Adam(Optimizer):
    """Adam (β = 0.9, 0.999, ε = 1e-8) written with differentiable tensor operations.

    The thesis reports trying Adam as well as plain steps (§4.4). ``sqrt(v̂ + 1e-30)`` instead
    of ``sqrt(v̂)`` keeps the meta-gradient finite for parameters whose gradient is exactly 0."""

    name = "adam"
    betas = (0.9, 0.999)
    eps = 1e-8

    def init(self, params: Params) -> TrainState:
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        return TrainState(dict(params), {"m": zeros, "v": dict(zeros)})

    def update(self, state: TrainState, grads: Params) -> TrainState:
        b1, b2 = self.betas
        t = state.t + 1
        m = {k: b1 * state.moments["m"][k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * state.moments["v"][k] + (1 - b2) * g * g for k, g in grads.items()}
        params = {}
        for k, p in state.params.items():
            m_hat = m[k] / (1 - b1**t)
            v_hat = v[k] / (1 - b2**t)
            params[k] = p - self.lr * m_hat / (torch.sqrt(v_hat + 1e-30) + self.eps)
        return TrainState(params, {"m": m, "v": v}, t)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": Optimizer, "adam": Adam}


class FunctionalNCF:
    """A one-replica NCF (GMF, MLP or NeuMF) evaluated on explicit parameter dictionaries."""

    def __init__(self, ncf: StackedNCF, dtype: torch.dtype = torch.float32) -> None:
        self._model = _PairModel(ncf)
        self._full = _FullModel(ncf)
        self.initial: Params = {
            name: p.detach().to(dtype).clone() for name, p in self._model.named_parameters()
        }

    def logits(self, params: Params, pairs: PairData) -> torch.Tensor:
        return functional_call(self._model, params, (pairs.users, pairs.items))

    def full_logits(self, params: Params, users: torch.Tensor) -> torch.Tensor:
        """Logits ``[len(users), n_items]`` of ``users`` for every item."""
        return functional_call(self._full, params, (users,))

    def loss(self, params: Params, pairs: PairData, labels: torch.Tensor) -> torch.Tensor:
        """Eq. 3.1: the summed BCE of the pairs with labels ``A(u, i)``."""
        return self.loss_of(self.logits(params, pairs), labels)

    @staticmethod
    def loss_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")

    def step(
        self,
        state: TrainState,
        pairs: PairData,
        labels: torch.Tensor,
        optimizer: Optimizer,
        create_graph: bool,
    ) -> TrainState:
        """One optimizer step on ``L_train(θ, A)`` (differentiable in A and θ if asked)."""
        loss = self.loss(state.params, pairs, labels)
        grads = torch.autograd.grad(loss, list(state.params.values()), create_graph=create_graph)
        new = optimizer.update(state, dict(zip(state.params, grads, strict=True)))
        return new if create_graph else new.detached()

    def train(
        self,
        pairs: PairData,
        labels: torch.Tensor,
        steps: int,
        optimizer: Optimizer,
        start: Params | None = None,
    ) -> Params:
        """``θ_T`` after ``steps`` steps from ``start`` (default ``θ_0``), no meta-graph."""
        state = optimizer.init(start or self.initial).detached()
        labels = labels.detach()
        for _ in range(steps):
            state = self.step(state, pairs, labels, optimizer, create_graph=False)
        return {k: v.detach() for k, v in state.params.items()}


def meta_gradient(
    model: FunctionalNCF,
    pairs: PairData,
    labels: torch.Tensor,
    steps: int,
    optimizer: Optimizer,
    start: Params | None = None,
    objective: Objective | None = None,
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Exact ``∇_A L(θ_T(A), A)`` over the pairs, ``L(θ_T)`` and the pairs' logits at θ_T
    (Algorithm 1). ``L`` is ``L_train`` (Eq. 3.1) unless ``objective(θ_T)`` is given (the
    targeted extension's attack loss)."""
    a = labels.detach().clone().requires_grad_()
    state = optimizer.init(start or model.initial).detached()
    for _ in range(steps):
        state = model.step(state, pairs, a, optimizer, create_graph=True)
    logits = model.logits(state.params, pairs)
    loss = model.loss_of(logits, a) if objective is None else objective(state.params)
    (grad,) = torch.autograd.grad(loss, a)
    return grad, float(loss.detach()), logits.detach()


def approx_meta_gradient(
    model: FunctionalNCF,
    pairs: PairData,
    labels: torch.Tensor,
    steps: int,
    optimizer: Optimizer,
    start: Params | None = None,
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """``Σ_{t=1..T} ∇_A L_train(θ̂_t, A)`` with θ (and the optimizer moments) detached between
    steps (Algorithm 3, see the module doc), ``L_train(θ̂_T)`` and the logits at θ̂_T."""
    a = labels.detach().clone().requires_grad_()
    state = optimizer.init(start or model.initial).detached()
    total = torch.zeros_like(a)
    for _ in range(steps):
        updated = model.step(state, pairs, a, optimizer, create_graph=True)
        logits = model.logits(updated.params, pairs)
        loss = model.loss_of(logits, a)
        (grad,) = torch.autograd.grad(loss, a)
        total += grad
        state = updated.detached()
    return total, float(loss.detach()), logits.detach()


def flip_scores(grad: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """First-order rise of ``L_train`` (fall of ``L_atk``) when each entry is flipped:
    ``(1 - 2 A(u,i)) ∂L_train/∂A(u,i)`` -- the gradient itself for an insertion (0 -> 1), its
    negative for a removal (1 -> 0). The attack flips the entries with the largest score."""
    return (1 - 2 * labels) * grad


def graph_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct tensors autograd saves while ``fn()`` runs (its graph's memory)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def estimate_peak_bytes(
    model: FunctionalNCF,
    pairs: PairData,
    labels: torch.Tensor,
    steps: int,
    optimizer: Optimizer,
    exact: bool,
) -> int:
    """Peak memory of one meta-gradient, from one probe step (§3.8.1: memory ∝ n·m·T).

    The graph of one differentiable step (forward, ``create_graph`` backward and update) is
    measured with saved-tensor hooks; the exact meta-gradient keeps ``T`` of them plus the final
    loss, the approximate one keeps one plus the backward pass's temporaries (counted as two
    more). Against the measured growth of peak resident memory (``benchmarks/meta_speed.py``)
    this overestimates the exact case by about 1.4x and matches the approximate one."""
    a = labels.detach().clone().requires_grad_()
    state = optimizer.init(model.initial).detached()

    def probe() -> None:
        model.loss(model.step(state, pairs, a, optimizer, create_graph=True).params, pairs, a)

    per_step = graph_bytes(probe)
    kept = (max(steps, 1) + 1) if exact else 3
    return per_step * kept
