"""Graph-based top-N recommender: random walk with restart on the user-item bipartite graph.

Fang, Gong, Liu (WWW 2020) §7.1, Eqs. (22)-(23), after Fang et al. (ACSAC 2018) and Pirotte et
al. (2007): users and items are the nodes of a bipartite graph whose edge weights are the
ratings; ``p_u`` is the stationary distribution of a walk that restarts at user ``u`` with
probability α, and ``u`` is recommended the N unrated items with the largest ``p_u``.

Orientation (a documented reading of Eq. 22). Eq. (23) defines ``q_xy = r_xy / Σ_z r_xz``, the
probability of stepping from ``x`` to ``y`` (a row-stochastic matrix); a probability vector is
propagated by its transpose, so Eq. (22) is read as ``p_u = (1 − α) Qᵀ p_u + α e_u``. Here
``T = Qᵀ`` (column-stochastic) is never formed: with ``R`` the users x items rating matrix,
``d_U`` / ``d_I`` its row / column sums,

    ``T p = [R (p_I / d_I) ; Rᵀ (p_U / d_U)]``  and  ``Tᵀ λ = [(R λ_I) / d_U ; (Rᵀ λ_U) / d_I]``,

two sparse products with ``R`` per step, so memory is O(nnz + batch x nodes). The fixed point is
found for a batch of users at once, on the GPU when there is one (torch sparse) and with scipy on
the CPU, by block Gauss-Seidel sweeps (:func:`solve_fixed_point`): ``T`` only links users to
items, so the plain power iteration from ``α e_u`` advances two independent chains (its user half
at step k reads only the item half of step k − 1, which read the user half of step k − 2), and
updating the items from the users and then the users from those new items contracts the error by
``(1 − α)²`` for the same two sparse products that give the power iteration ``1 − α``: half the
products for the same tolerance.

The walk is deterministic: every replica is the same model. ``fit`` accepts any ``n_replicas``
(the runner asks for one per retrain) and ``score_replicas`` solves each walk once and returns
``n_replicas`` copies ``[n_replicas, users, items]`` (copies, not a view: metrics mask entries in
place), so replicas agree exactly and cost no extra solve.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender
from recpoison.victims.mf import Entries, torch_dtype

logger = logging.getLogger(__name__)

#: Restart probability α when none is given. The seed (Fang et al. 2020) does not print the
#: value used in its Table 3 ("the same settings as [10]"); 0.3 is our default.
DEFAULT_ALPHA = 0.3


@dataclass(frozen=True)
class HalfSteps:
    """A bipartite operator ``T = [[0, A], [B, 0]]`` on ``[users; items]`` vectors, by its blocks.

    ``to_users(x_items) = A x_items`` and ``to_items(x_users) = B x_users``, both ``[·, B]``
    (one column per walk); the first ``n_users`` nodes are the users.
    """

    n_users: int
    to_users: Callable[[torch.Tensor], torch.Tensor]
    to_items: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``T x`` for ``x`` ``[nodes, B]``."""
        users, items = x[: self.n_users], x[self.n_users :]
        return torch.cat([self.to_users(items), self.to_items(users)])


class BipartiteWalk:
    """The transition operator ``T`` of a weighted user-item bipartite graph, applied in batches.

    Node order: the ``n_users`` users, then the ``n_items`` items. Vectors are ``[nodes, B]``
    (one column per walk). A node without edges has no out-transitions (it is reachable from no
    other node, so only a walk started there is affected: it keeps its restart mass only).
    """

    def __init__(self, entries: Entries) -> None:
        self.entries = entries
        self.transposed = entries.transpose()
        self.n_users, self.n_items = entries.shape
        values = entries.values
        self.user_degree = values.new_zeros(self.n_users).index_add_(0, entries.rows, values)
        self.item_degree = values.new_zeros(self.n_items).index_add_(0, entries.cols, values)
        self.inverse_user_degree = 1.0 / safe_degree(self.user_degree)[:, None]
        self.inverse_item_degree = 1.0 / safe_degree(self.item_degree)[:, None]

    @classmethod
    def from_interactions(
        cls, data: Interactions, dtype: torch.dtype, device: torch.device
    ) -> BipartiteWalk:
        """The graph of ``data``: one edge per rating, weighted by the rating (Eq. 23)."""
        return cls(Entries.from_interactions(data, 0.0, dtype, device))

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def forward(self) -> HalfSteps:
        """``T``: where the mass ``p`` goes in one step of the walk."""
        return HalfSteps(
            self.n_users,
            lambda p_items: self.entries.matrix_mm(p_items * self.inverse_item_degree),
            lambda p_users: self.transposed.matrix_mm(p_users * self.inverse_user_degree),
        )

    @property
    def adjoint(self) -> HalfSteps:
        """``Tᵀ``: each node averages its neighbours' values."""
        return HalfSteps(
            self.n_users,
            lambda lam_items: self.entries.matrix_mm(lam_items) * self.inverse_user_degree,
            lambda lam_users: self.transposed.matrix_mm(lam_users) * self.inverse_item_degree,
        )


def safe_degree(degree: torch.Tensor) -> torch.Tensor:
    """Degrees with 0 replaced by 1 (an isolated node carries no mass to divide anyway)."""
    return torch.where(degree > 0, degree, torch.ones_like(degree))


def solve_fixed_point(
    operator: HalfSteps,
    source: torch.Tensor,
    decay: float,
    tol: float,
    max_iter: int,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """``x = source + decay · T x`` for the bipartite ``T`` of ``operator``, ``[nodes, B]``.

    ``tol > 0``: block Gauss-Seidel sweeps from ``source`` (or ``start``, never modified), the
    item block from the users, then the user block from those items (the module docstring:
    error ``× decay²`` per sweep, the cost of one power iteration). Stops when the largest
    per-column L1 change of a sweep is below ``tol`` times that column's L1 source mass, or after
    ``max_iter`` sweeps; as the error after a sweep is at most ``decay² / (1 − decay²)`` times its
    change (against ``decay / (1 − decay)`` for a power iteration), the same ``tol`` leaves a
    smaller error than the power iteration did.

    ``tol = 0``: exactly ``max_iter`` power iterations from ``source``, which equal the Taylor
    series of ``(I − decay·T)⁻¹ source`` truncated after ``max_iter`` terms (Fang et al. 2020,
    after Eq. 29).

    Returns ``(x, sweeps or iterations)``.
    """
    if tol == 0:
        x = source.clone() if start is None else start.clone()
        for _ in range(max_iter):
            x = source + decay * operator(x)
        return x, max_iter
    n = operator.n_users
    x = source.clone() if start is None else start.clone()
    new, change = torch.empty_like(x), torch.empty_like(x)
    scale = source.abs().sum(0).clamp_min(torch.finfo(source.dtype).tiny)
    for sweep in range(1, max_iter + 1):
        torch.add(source[n:], operator.to_items(x[:n]), alpha=decay, out=new[n:])
        torch.add(source[:n], operator.to_users(new[n:]), alpha=decay, out=new[:n])
        largest = (torch.sub(new, x, out=change).abs_().sum(0) / scale).max()
        x, new = new, x
        if float(largest) < tol:
            return x, sweep
    return x, max_iter


def restart_vectors(
    n_nodes: int, users: np.ndarray, alpha: float, like: torch.Tensor
) -> torch.Tensor:
    """``α e_u`` for each user, ``[n_nodes, len(users)]`` columns with ``like``'s dtype/device."""
    source = like.new_zeros((n_nodes, len(users)))
    source[torch.as_tensor(users, device=source.device), torch.arange(len(users))] = alpha
    return source


class RandomWalk(Recommender):
    """Random walk with restart on the rating graph (Fang et al. 2020 §7.1, Eqs. 22-23).

    Parameters: ``alpha`` the restart probability α; ``tol`` and ``max_iter`` stop the power
    iteration (relative L1 change of each walk's distribution); ``batch_size`` walks solved
    together (memory ``batch_size x (users + items)``); ``dtype`` ``"float32"`` or
    ``"float64"``. Scores are the stationary probabilities of the item nodes. Deterministic:
    replicas are identical (see the module docstring). Fitted: ``walk_`` (the graph operator).
    """

    name = "random-walk"
    capabilities = frozenset({"explicit", "implicit"})

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        tol: float = 1e-6,
        max_iter: int = 200,
        batch_size: int = 1024,
        dtype: str = "float32",
        *,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.dtype = dtype

    def fit(self, train: Interactions | Sequence[Interactions]) -> Self:
        """Build the graph of ``train`` (the walks are solved when scores are asked for)."""
        data = self._check_fit_input(train)[0]
        check_walk_params(self.alpha, self.tol, self.max_iter)
        if self.batch_size < 1:
            raise ConfigError(f"{self.name}: batch_size must be >= 1, got {self.batch_size}")
        self.walk_ = BipartiteWalk.from_interactions(data, torch_dtype(self.dtype), self.device_)
        logger.info("%s: graph of %r, alpha %g", self.name, data, self.alpha)
        return self

    def stationary(self, users: np.ndarray) -> torch.Tensor:
        """Stationary distributions ``p_u`` of ``users`` over all nodes, ``[nodes, len(users)]``."""
        source = restart_vectors(self.walk_.n_nodes, users, self.alpha, self.walk_.user_degree)
        p, _ = solve_fixed_point(
            self.walk_.forward, source, 1.0 - self.alpha, self.tol, self.max_iter
        )
        return p

    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        """Item probabilities ``p_ui``, ``[n_replicas, len(users), n_items]`` (all the same)."""
        users = np.asarray(users, dtype=np.int64)
        blocks = [
            self.stationary(users[start : start + self.batch_size])[self.walk_.n_users :].T
            for start in range(0, len(users), self.batch_size)
        ]
        empty = self.walk_.user_degree.new_zeros((0, self.walk_.n_items))
        scores = torch.cat(blocks) if blocks else empty
        return scores[None].expand(self.n_replicas, -1, -1).contiguous()


def check_walk_params(alpha: float, tol: float, max_iter: int) -> None:
    """:class:`ConfigError` unless ``0 < alpha < 1``, ``tol >= 0`` and ``max_iter >= 1``."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"random-walk: alpha (restart probability) must be in (0, 1): {alpha}")
    if tol < 0 or max_iter < 1:
        raise ConfigError(f"random-walk: need tol >= 0 and max_iter >= 1 (got {tol}, {max_iter})")
