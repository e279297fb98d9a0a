"""Random-walk recommender and graph attacks: scoring speed and seconds per fake user.

On the bundled MovieLens ratings (ml-latest-small, 671 users x 9,066 items, explicit ratings as
edge weights), each figure twice in the same run: with recpoison's fixed-point solver (block
Gauss-Seidel sweeps, :func:`recpoison.victims.random_walk.solve_fixed_point`) and with the
plain power iteration it replaced (defined below, patched in for the comparison):

1. seconds to score every user with the batched solves (1,024 walks per solve), and with a loop
   that solves one walk at a time (the usual per-user implementation; extrapolated from
   ``--loop-users``);
2. seconds of the influence computation of S-Graph (Eqs. 24-29) for all users;
3. seconds per fake user of graph-attack (S = all normal users) and s-graph (S = Δ influential
   users), and whether both solvers pick the same fillers.

    .venv/bin/python benchmarks/graph_speed.py --device cpu
    .venv/bin/python benchmarks/graph_speed.py --device cuda --loop-users 671 --fake-users 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

import recpoison.attacks.graph_attack as graph_attack_module
import recpoison.attacks.graph_influence as graph_influence_module
import recpoison.victims.random_walk as random_walk_module
from recpoison.attacks.graph_attack import GraphAttack, SGraphAttack
from recpoison.attacks.graph_influence import user_influence
from recpoison.data.loaders import load_dataset
from recpoison.utils import resolve_device
from recpoison.victims.random_walk import BipartiteWalk, HalfSteps, RandomWalk

SOLVER_MODULES = (random_walk_module, graph_attack_module, graph_influence_module)


def power_iteration(
    operator: HalfSteps,
    source: torch.Tensor,
    decay: float,
    tol: float,
    max_iter: int,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """The baseline: ``x ← source + decay · T x`` over all nodes at once, same stopping rule."""
    x = source.clone() if start is None else start
    scale = source.abs().sum(0).clamp_min(torch.finfo(source.dtype).tiny)
    for iteration in range(1, max_iter + 1):
        new = source + decay * operator(x)
        change = ((new - x).abs().sum(0) / scale).max()
        x = new
        if tol > 0 and float(change) < tol:
            return x, iteration
    return x, max_iter


@contextmanager
def solver(function: Callable) -> Iterator[None]:
    """Every graph module solves its fixed points with ``function`` inside the block."""
    saved = [module.solve_fixed_point for module in SOLVER_MODULES]
    for module in SOLVER_MODULES:
        module.solve_fixed_point = function
    try:
        yield
    finally:
        for module, original in zip(SOLVER_MODULES, saved, strict=True):
            module.solve_fixed_point = original


SOLVERS = {"power iteration": power_iteration, "block Gauss-Seidel": None}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--loop-users", type=int, default=50, help="users scored by the loop")
    parser.add_argument("--fake-users", type=int, default=2, help="fake users per attack")
    parser.add_argument("--steps", type=int, default=10, help="subgradient steps per fake user")
    return parser.parse_args()


def timed(function: Callable[[], object], device: torch.device) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def measure(args: argparse.Namespace, data, device: torch.device) -> dict[str, tuple]:
    """Every figure of the table with the solver now in place: ``{row: (seconds, result)}``."""
    users = np.arange(data.n_users)
    batched = RandomWalk(device=str(device)).fit(data)
    loop = RandomWalk(batch_size=1, device=str(device)).fit(data)
    few = users[: args.loop_users]
    loop_seconds, _ = timed(lambda: loop.score_replicas(few), device)
    target = np.array([int(np.argsort(np.diff(data.matrix.tocsc().indptr))[-200])])
    walk = BipartiteWalk.from_interactions(data, torch.float32, device)
    figures = {
        "score all users, batched": timed(lambda: batched.score_replicas(users), device),
        "score all users, one walk at a time (extrapolated)": (
            loop_seconds * len(users) / len(few),
            None,
        ),
        "influence π(k, t) of all users (Eqs. 24-29)": timed(
            lambda: user_influence(walk, target, ~data.is_fake, batched.alpha), device
        ),
    }
    for attack in (
        GraphAttack(steps=args.steps, device=str(device)),
        SGraphAttack(steps=args.steps, device=str(device)),
    ):
        seconds, fake = timed(
            lambda attack=attack: attack.generate(data, target, args.fake_users, random_state=0),
            device,
        )
        label = f"{attack.name} per fake user (S = {fake.info['n_influential']})"
        figures[label] = (seconds / args.fake_users, fake)
    return figures


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("ml-latest-small")
    runs = {}
    for name, function in SOLVERS.items():
        if function is None:
            runs[name] = measure(args, data, device)
        else:
            with solver(function):
                runs[name] = measure(args, data, device)
    baseline, ours = runs["power iteration"], runs["block Gauss-Seidel"]
    print(f"{data!r} on {device}, {args.threads} thread(s), {args.steps} steps per fake user")
    print("| seconds | power iteration | block Gauss-Seidel | speed-up |")
    print("|---|---:|---:|---:|")
    for row, (seconds, _) in ours.items():
        before = baseline[row][0]
        print(f"| {row} | {before:.2f} | {seconds:.2f} | {before / seconds:.1f}x |")
    scores = [run["score all users, batched"][1][0] for run in (baseline, ours)]
    gap = float((scores[0] - scores[1]).abs().max() / scores[0].abs().max())
    print(
        f"\nlargest score difference between the solvers, relative to the largest score: {gap:.1e}"
    )
    for row, (_, fake) in ours.items():
        if fake is not None and hasattr(fake, "matrix"):
            same = (fake.matrix != baseline[row][1].matrix).nnz == 0
            print(f"{row}: the same fake users with both solvers: {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
