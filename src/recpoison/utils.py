"""Seeding and device helpers shared by victims, attacks and the runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recpoison.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

RandomState = int | np.random.Generator | None


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Return a numpy Generator from a seed, an existing Generator, or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, int | np.integer):
        return np.random.default_rng(random_state)
    raise ConfigError(
        f"random_state must be an int, a numpy Generator or None, not {random_state!r}"
    )


def derive_seed(rng: np.random.Generator) -> int:
    """Draw a 63-bit seed from ``rng`` for a torch Generator or a child component."""
    return int(rng.integers(0, 2**63 - 1))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda[:i]"`` to a torch device; CUDA without a GPU is an error."""
    import torch  # imported here so that data-only code paths start without torch

    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was asked for but no CUDA GPU is available; "
                "use --device cpu or --device auto"
            )
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'")
