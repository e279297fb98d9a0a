"""Influence computation against the number of users, and seconds per fake user of the S-attacks.

Fang et al. 2020 (§4.3.2) claim linear time for the influential-user selection. Part 1 times
``user_influence`` (Eqs. 8-13) on the bundled MovieLens data subsampled to 1/8 ... all of its
users, for the default block-structured Hessian and, on the smaller sizes, the exact Hessian by
batched CG (one solve per user: quadratic); on tiny planted data all three are timed against the
plain baseline, Eq. (12) with the Hessian formed densely and solved. Part 2 times each S-attack
variant per fake user on the bundled data (one random target), with the random attack as the
plain baseline in the same process.

    .venv/bin/python benchmarks/s_attack_speed.py                     # paper's d = 64
    .venv/bin/python benchmarks/s_attack_speed.py --rank 16 --fake-users 1 --n-iter 3
    .venv/bin/python benchmarks/s_attack_speed.py --device cuda --skip-influence   # part 2 on a GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.influence import DTYPE, FittedMF, user_influence
from recpoison.data import planted
from recpoison.data.loaders import load_dataset
from recpoison.data.transforms import subsample_users
from recpoison.victims.mf import Entries


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank", type=int, default=64, help="the attacker's d (paper: 64)")
    parser.add_argument("--fake-users", type=int, default=2, help="fake users per variant")
    parser.add_argument("--n-iter", type=int, default=10, help="subgradient steps per fake user")
    parser.add_argument("--cg-max-users", type=int, default=170, help="largest size for CG")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for part 2")
    parser.add_argument("--skip-influence", action="store_true", help="run part 2 only")
    return parser.parse_args()


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def dense_influence(model: FittedMF, target: int) -> np.ndarray:
    """π(k,t) with the Hessian of Eq. (1) formed densely and solved (the plain baseline)."""
    m, d = model.users.shape
    theta = torch.cat([model.users.ravel(), model.items.ravel()])
    e = model.entries

    def loss(flat: torch.Tensor) -> torch.Tensor:
        u, v = flat[: m * d].view(m, d), flat[m * d :].view(-1, d)
        pred = (u[e.rows] * v[e.cols]).sum(1)
        return ((e.values - pred) ** 2).sum() + model.lam * (flat**2).sum()

    hessian = torch.autograd.functional.hessian(loss, theta)
    grad_pred = torch.zeros(m, len(theta), dtype=DTYPE)
    for o in range(m):
        grad_pred[o, o * d : (o + 1) * d] = model.items[target]
        grad_pred[o, (m + target) * d : (m + target + 1) * d] = model.users[o]
    solved = torch.linalg.solve(hessian, grad_pred.T).view(-1, d, m)  # H⁻¹∇r̂_ot per block
    phi = (
        -2
        * model.residuals[:, None]
        * (
            (solved[e.rows] * model.items[e.cols][..., None]).sum(1)
            + (solved[m + e.cols] * model.users[e.rows][..., None]).sum(1)
        )
    )
    return np.bincount(e.rows.numpy(), phi.abs().sum(1).numpy(), minlength=m)


def influence_scaling(data, rank: int, cg_max_users: int) -> None:
    print(f"\n## influence π(k,t) for every user, d = {rank} (seconds)\n")
    print("| users | ratings | block | exact CG |")
    print("|---:|---:|---:|---:|")
    target = int(np.argmax(np.bincount(data.matrix.indices)))
    for fraction in (0.125, 0.25, 0.5, 1.0):
        part = subsample_users(data, fraction, random_state=0) if fraction < 1 else data
        entries = Entries.from_interactions(part, 0.0, DTYPE, torch.device("cpu"))
        model = FittedMF.fit(entries, rank, 10.0, 10)
        block, _ = timed(user_influence, model, target, "block")
        cg = "—"
        if part.n_users <= cg_max_users:
            cg = f"{timed(user_influence, model, target, 'cg', max_iter=20, tol=1e-4)[0]:.2f}"
        print(f"| {part.n_users} | {part.n_ratings:,} | {block:.3f} | {cg} |")
    print("\n## tiny planted data (d = 4): against the dense Hessian (seconds)\n")
    print("| users | items | block | exact CG | dense H |")
    print("|---:|---:|---:|---:|---:|")
    for users in (20, 40, 80):
        small = planted(users, users // 2, ratings_per_user=8, random_state=0)
        entries = Entries.from_interactions(small, 0.0, DTYPE, torch.device("cpu"))
        model = FittedMF.fit(entries, 4, 1.0, 500)
        block, _ = timed(user_influence, model, 0, "block")
        cg, exact = timed(user_influence, model, 0, "cg", tol=1e-10)
        dense, truth = timed(dense_influence, model, 0)
        assert np.allclose(exact, truth, rtol=1e-5, atol=1e-8)
        print(f"| {users} | {users // 2} | {block:.4f} | {cg:.3f} | {dense:.3f} |")


def attack_speed(data, rank: int, fake_users: int, n_iter: int, device: str) -> None:
    print(f"\n## seconds per fake user, d = {rank}, {n_iter} steps (bundled data, {device})\n")
    print("| attack | s / fake user |")
    print("|---|---:|")
    target = np.random.default_rng(0).integers(data.n_items)
    seconds, _ = timed(
        make_attack("random", n_fillers=20).generate, data, [target], fake_users, random_state=0
    )
    print(f"| random (baseline) | {seconds / fake_users:.4f} |")
    for name in ("u-tna", "s-tna-rand", "s-tna-inf", "weighting"):
        attack = make_attack(name, rank=rank, n_iter=n_iter, device=device)
        seconds, _ = timed(attack.generate, data, [target], fake_users, random_state=0)
        print(f"| {name} | {seconds / fake_users:.1f} |")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("ml-latest-small")
    if not args.skip_influence:
        influence_scaling(data, args.rank, args.cg_max_users)
    attack_speed(data, args.rank, args.fake_users, args.n_iter, args.device)


if __name__ == "__main__":
    main()
