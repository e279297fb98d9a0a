"""The attacker's copy of a factorization victim's training problem (Li et al. 2016, §4).

:mod:`recpoison.attacks.pga_sgld` retrains it after every change of the fake ratings, warm-started
from the previous solution (``state``), and differentiates the utility at its solution.
"""

from __future__ import annotations

import torch

from recpoison.attacks.kkt import Factors
from recpoison.errors import ConfigError
from recpoison.victims.mf import Entries, als, initial_items
from recpoison.victims.nuclear import soft_impute

DTYPE = torch.float64
#: ALS sweeps refining the nuclear-norm solution's balanced factors before differentiating.
_POLISH_SWEEPS = 10


class ALSProblem:
    """Eq. (4) solved by ALS, warm-started from the previous item factors."""

    kind = "als-mf"

    def __init__(
        self,
        rank: int,
        lambda_u: float,
        lambda_v: float,
        n_items: int,
        seed: int,
        device: torch.device,
    ) -> None:
        self.lambda_u, self.lambda_v = lambda_u, lambda_v
        self.items = initial_items(n_items, rank, seed, DTYPE, device)[None]

    @property
    def state(self) -> torch.Tensor:
        """The warm start of the next solve."""
        return self.items

    @state.setter
    def state(self, items: torch.Tensor) -> None:
        self.items = items

    def solve(self, entries: Entries, iterations: int) -> Factors:
        users, self.items, _ = als(
            entries, self.items, self.lambda_u, self.lambda_v, iterations, record=False
        )
        return users[0], self.items[0]


class NuclearProblem:
    """Eq. (5) solved by soft-impute; returns the balanced factors ``(UΣ^½, VΣ^½)`` (see kkt)."""

    kind = "nuclear-norm"

    def __init__(
        self, lam: float, max_rank: int, oversampling: int, power_iterations: int, seed: int
    ) -> None:
        self.lambda_u = self.lambda_v = lam
        self.max_rank, self.oversampling, self.power_iterations = (
            max_rank,
            oversampling,
            power_iterations,
        )
        self.gen = torch.Generator().manual_seed(seed)
        self.factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The warm start of the next solve."""
        return self.factors

    @state.setter
    def state(self, factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None) -> None:
        self.factors = factors

    def solve(self, entries: Entries, iterations: int) -> Factors:
        init = self.factors
        if init is not None and init[0].shape[0] < entries.shape[0]:
            extra = entries.shape[0] - init[0].shape[0]
            init = (torch.nn.functional.pad(init[0], (0, 0, 0, extra)), init[1], init[2])
        self.factors, _ = soft_impute(
            entries,
            self.lambda_u,
            self.max_rank,
            iterations,
            0.0,
            self.gen,
            init,
            self.oversampling,
            self.power_iterations,
        )
        _, s, v = self.factors
        if s.numel() == 0:
            raise ConfigError(
                f"the nuclear-norm model of these data has rank 0 (lam = "
                f"{self.lambda_u} thresholds every singular value); lower lam"
            )
        # A few exact ALS sweeps on the equivalent factored problem (see kkt) make the point
        # stationary up to round-off, so its Hessian is the one the implicit gradient needs.
        users, items, _ = als(
            entries,
            (v * s.sqrt())[None],
            self.lambda_u,
            self.lambda_v,
            _POLISH_SWEEPS,
            record=False,
        )
        return users[0], items[0]
