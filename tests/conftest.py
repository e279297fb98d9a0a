"""Shared fixtures: tiny planted datasets (Interactions is immutable, so session scope is safe)."""

import pytest
import torch

from recpoison.data import Interactions, planted


@pytest.fixture(scope="session")
def tiny_explicit() -> Interactions:
    """60 users x 40 items, 8 ratings each on the 1-5 scale, with timestamps."""
    return planted(n_users=60, n_items=40, n_factors=3, ratings_per_user=8, random_state=0)


@pytest.fixture(scope="session")
def tiny_implicit() -> Interactions:
    """The same shape as ``tiny_explicit``, implicit (every interaction is 1)."""
    return planted(
        n_users=60, n_items=40, n_factors=3, ratings_per_user=8, rating_scale=None, random_state=0
    )


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models and small linear algebra run faster on one torch thread, and are immune to
    other processes' load on a shared 2-core machine (2 threads were up to 40x slower there)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
