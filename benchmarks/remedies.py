"""Remedies after detection on the bundled data: full retrain against SISA unlearning.

The bundled MovieLens data (ml-latest-small, every rating -> 1), latest interaction of each user
held out. A random attack (``--size`` fake users per real user, 30 fillers) promotes each of
``--targets`` random items in turn; the flagged users are the fake users themselves (a perfect
detector), so the table isolates the remedy. For each target: NeuMF (the fast settings of the
reduced table1 run) fitted on the poisoned data, then retrained without the fake users; and a
SISA ensemble of the same NeuMF fitted on the poisoned data, then unlearning the fake users, with
random slices (Bourtoule's uniform split) and with slices in data order (fake users, appended
last, fall in the last slice). Printed per row, mean over targets and replicas: HR_t@10 of the
target over normal users, leave-one-out HR@10 / NDCG@10 (99 sampled negatives), and seconds.

    .venv/bin/python benchmarks/remedies.py --targets 3 --replicas 2
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from recpoison.attacks import make_attack
from recpoison.data import Interactions, load_dataset
from recpoison.data.transforms import binarize, leave_one_out
from recpoison.metrics import leave_one_out_hr_ndcg, target_hit_ratio
from recpoison.remedies import SISA, RemedyResult, retrain
from recpoison.victims import Recommender, make_victim

NEUMF = {"layers": [32, 16, 8], "epochs": 5, "batch_size": 4096, "lr": 0.01}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=3, help="random target items")
    parser.add_argument("--size", type=float, default=0.05, help="fake users / real users")
    parser.add_argument("--replicas", type=int, default=2, help="retrains per target")
    parser.add_argument("--shards", type=int, default=5)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def measure(
    model: Recommender, view: Interactions, target: int, test_items: np.ndarray, seed: int
) -> dict[str, float]:
    """HR_t@10 of ``target`` and leave-one-out HR@10 / NDCG@10 over the normal users of
    ``view`` (the data the model reflects, with removed users marked fake)."""
    quality = leave_one_out_hr_ndcg(model, view, test_items, 10, 99, random_state=seed)
    return {
        "hr_t": target_hit_ratio(model, view, [target]).mean(10),
        "hr": float(np.mean(quality["hr"])),
        "ndcg": float(np.mean(quality["ndcg"])),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train, test_items = leave_one_out(binarize(load_dataset("ml-latest-small")), random_state=0)
    n_fake = max(1, round(args.size * train.n_real))
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for target in rng.choice(train.n_items, size=args.targets, replace=False):
        target = int(target)
        fake = make_attack("random").generate(train, [target], n_fake, random_state=target)
        poisoned = train.with_fake_users(fake)
        exclude = np.concatenate([test_items, np.full(n_fake, -1)])
        victim = make_victim(
            "neumf", **NEUMF, n_replicas=args.replicas, random_state=target, device=args.device
        )
        started = time.perf_counter()
        victim.fit(poisoned, exclude_items=exclude)
        fit_seconds = time.perf_counter() - started
        rows["NeuMF, poisoned"].append(
            {**measure(victim, poisoned, target, test_items, target), "seconds": fit_seconds}
        )
        fixed: RemedyResult = retrain(victim, poisoned, poisoned.is_fake, exclude_items=exclude)
        rows["NeuMF, retrained without the fake users"].append(
            {**measure(fixed.model, poisoned, target, test_items, target), "seconds": fixed.seconds}
        )
        for slicing in ("random", "order"):
            sisa = SISA(
                victim_params=NEUMF,
                shards=args.shards,
                slices=args.slices,
                slicing=slicing,
                n_replicas=args.replicas,
                random_state=target,
                device=args.device,
            ).fit(poisoned, exclude_items=exclude)
            label = f"SISA {args.shards}x{args.slices}, {slicing} slices"
            rows[f"{label}, poisoned"].append(
                {
                    **measure(sisa, poisoned, target, test_items, target),
                    "seconds": sisa.fit_seconds_,
                }
            )
            result = sisa.unlearn(poisoned.is_fake)
            share = result.info["slice_steps_retrained"] / result.info["slice_steps_total"]
            rows[f"{label}, fake users unlearned"].append(
                {
                    **measure(sisa, poisoned, target, test_items, target),
                    "seconds": result.seconds,
                    "retrained": share,
                }
            )
    print(f"{args.targets} random targets, {n_fake} fake users each, {args.replicas} replicas")
    print("| model | HR_t@10 | HR@10 | NDCG@10 | seconds | slice steps retrained |")
    print("|---|---|---|---|---|---|")
    for label, values in rows.items():
        mean = {key: np.mean([v[key] for v in values]) for key in values[0]}
        share = f"{mean['retrained']:.0%}" if "retrained" in mean else ""
        print(
            f"| {label} | {mean['hr_t']:.4f} | {mean['hr']:.3f} | {mean['ndcg']:.3f} | "
            f"{mean['seconds']:.1f} | {share} |"
        )


if __name__ == "__main__":
    main()
