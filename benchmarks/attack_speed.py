"""Seconds per fake user of the poison-model attack, with the random attack as a plain baseline.

The poison-model attack (Huang et al., NDSS 2021, section IV) with a NeuMF surrogate at the
paper's settings on the bundled MovieLens data (ml-latest-small, every rating -> 1), promoting
one unpopular item. Its cost splits into a one-off pre-training of the surrogate, a per-step cost
(insert the step's fake users, ``rounds`` rounds of poison training, filler selection) and an
optional refit that measures the surrogate's HR_t after the attack; the per-fake-user figure is
the per-step cost divided by the fake users per step. The random attack runs in the same process
on the same data for comparison.

    .venv/bin/python benchmarks/attack_speed.py --device cpu --fake-users 3
    .venv/bin/python benchmarks/attack_speed.py --device cuda --fake-users 34 --refit
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from recpoison.attacks.heuristic import RandomAttack
from recpoison.attacks.poison_model import PoisonModelAttack
from recpoison.data.loaders import load_dataset
from recpoison.data.transforms import binarize, default_unpopular_threshold, unpopular_items
from recpoison.utils import resolve_device
from recpoison.victims.neural import NeuMF


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--fake-users",
        type=int,
        default=3,
        help="fake users to generate (5 %% of ml-latest-small is 34)",
    )
    parser.add_argument(
        "--fake-per-step",
        type=int,
        default=1,
        help="fake users generated together (the paper: 1, or 5 on ML-1M)",
    )
    parser.add_argument("--fillers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="poison-training rounds per step")
    parser.add_argument(
        "--epochs",
        type=int,
        default=20,
        help="pre-training epochs of the surrogate (NCF's 20 by default)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="surrogate batch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="surrogate learning rate")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="also retrain the surrogate on the poisoned data (HR_t after)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = binarize(load_dataset("ml-latest-small"))
    rng = np.random.default_rng(args.seed)
    target = int(rng.choice(unpopular_items(data, default_unpopular_threshold(data))))
    print(
        f"data: {data}; target item {data.item_ids[target]} "
        f"({int(data.matrix[:, target].nnz)} ratings); device {device}, "
        f"{torch.get_num_threads()} CPU threads"
    )

    started = time.perf_counter()
    RandomAttack(n_fillers=args.fillers).generate(
        data, [target], args.fake_users, random_state=args.seed
    )
    random_seconds = time.perf_counter() - started

    surrogate = NeuMF(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=str(device)
    )
    attack = PoisonModelAttack(
        n_fillers=args.fillers,
        rounds=args.rounds,
        fake_per_step=args.fake_per_step,
        refit_after=args.refit,
    )
    info = attack.generate(
        data, [target], args.fake_users, surrogate=surrogate, random_state=args.seed
    ).info
    per_user = info["seconds_per_fake_user"]
    print(
        f"random attack:  {args.fake_users} fake users in {random_seconds:.4f} s "
        f"({random_seconds / args.fake_users * 1e3:.3f} ms per fake user)"
    )
    print(
        f"poison-model:   {args.fake_users} fake users in {info['seconds']:.1f} s: "
        f"pre-training {info['seconds_pretrain']:.1f} s ({args.epochs} epochs, batch "
        f"{args.batch_size}), {per_user:.2f} s per fake user ({args.rounds} rounds, "
        f"{args.fake_per_step} per step), refit {info['seconds_refit']:.1f} s"
    )
    print(
        f"                {per_user / (random_seconds / args.fake_users):.0f}x the random "
        f"attack per fake user; 34 fake users (5 %) would take about "
        f"{info['seconds_pretrain'] + 34 * per_user:.0f} s without refit"
    )
    hr = info["surrogate_hr"]
    after = "not measured (--refit)" if hr["after"] is None else f"{hr['after']:.4f}"
    rounds = info["chosen_rounds"]
    print(
        f"surrogate HR_t@{hr['k']}: before {hr['before']:.4f}, after {after}; "
        f"rounds kept per step: {rounds}"
    )


if __name__ == "__main__":
    main()
