"""Random-walk recommender and graph attacks: scoring speed and seconds per fake user.

On the bundled MovieLens ratings (ml-latest-small, 671 users x 9,066 items, explicit ratings as
edge weights): (1) seconds to score users with the batched power iteration (one sparse product
per step for a whole batch of walks) against a loop that solves one walk at a time (the usual
per-user implementation, same solver with batch 1); (2) seconds per fake user of graph-attack
(S = all normal users) and s-graph (S = Δ influential users), and the seconds of the influence
computation (Eqs. 24-29) alone.

    .venv/bin/python benchmarks/graph_speed.py --device cpu
    .venv/bin/python benchmarks/graph_speed.py --device cuda --loop-users 671 --fake-users 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recpoison.attacks.graph_attack import GraphAttack, SGraphAttack
from recpoison.attacks.graph_influence import user_influence
from recpoison.data.loaders import load_dataset
from recpoison.utils import resolve_device
from recpoison.victims.random_walk import BipartiteWalk, RandomWalk


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--loop-users", type=int, default=50, help="users scored by the loop")
    parser.add_argument("--fake-users", type=int, default=2, help="fake users per attack")
    parser.add_argument("--steps", type=int, default=10, help="subgradient steps per fake user")
    return parser.parse_args()


def seconds(function, device: torch.device) -> float:
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("ml-latest-small")
    users = np.arange(data.n_users)
    batched = RandomWalk(device=str(device)).fit(data)
    loop = RandomWalk(batch_size=1, device=str(device)).fit(data)
    all_users = seconds(lambda: batched.score_replicas(users), device)
    few = users[: args.loop_users]
    per_user_loop = seconds(lambda: loop.score_replicas(few), device) / len(few)
    print(f"{data!r} on {device}")
    print("| scoring | seconds for all users | seconds per user |")
    print("|---|---:|---:|")
    print(f"| batched (1024 walks) | {all_users:.2f} | {all_users / len(users):.4f} |")
    print(
        f"| loop (1 walk at a time, {len(few)} users) | {per_user_loop * len(users):.2f} "
        f"(extrapolated) | {per_user_loop:.4f} |"
    )
    print(f"speed-up: {per_user_loop * len(users) / all_users:.1f}x")

    target = np.array([int(np.argsort(np.diff(data.matrix.tocsc().indptr))[-200])])
    walk = BipartiteWalk.from_interactions(data, torch.float32, device)
    influence = seconds(lambda: user_influence(walk, target, ~data.is_fake, batched.alpha), device)
    print(f"\ninfluence pi(k, t) of all {data.n_users} users (Eqs. 24-29): {influence:.2f} s")
    print("| attack | S | seconds per fake user |")
    print("|---|---:|---:|")
    for attack in (
        GraphAttack(steps=args.steps, device=str(device)),
        SGraphAttack(steps=args.steps, device=str(device)),
    ):
        fake = None

        def run(attack=attack) -> None:
            nonlocal fake
            fake = attack.generate(data, target, args.fake_users, random_state=0)

        total = seconds(run, device)
        print(f"| {attack.name} | {fake.info['n_influential']} | {total / args.fake_users:.2f} |")


if __name__ == "__main__":
    main()
