"""Meta-Attack vs Meta-Approx vs random insertions on planted data (thesis Tables 4.2 and 4.6).

Planted implicit data (150 users x 100 items, 15 interactions each), 20 % of the interactions
held out as unseen positives (scored against as many sampled non-edges); the budget is 2, 5
and 10 % of the sampled negatives (as many as the training interactions, Table 4.19); the
victim is a 4-replica GMF (20 epochs, lr 0.01) retrained on the perturbed data; each cell is
the mean over replicas of the unseen AUROC and accuracy (logit > 0). The attacks use a GMF
surrogate, T = 100 Adam steps and ``--flips-per-step`` flips per meta-gradient.

    .venv/bin/python benchmarks/meta_effect.py            # ~3 min on one CPU thread
    .venv/bin/python benchmarks/meta_effect.py --source ml-latest-small --user-fraction 0.25 \
        --k-core 10 --fractions 0.1 --meta-gradients 10 --attacks meta
        # the bundled MovieLens data binarized, a quarter of its users, 10-core (~4 min)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from recpoison.attacks import make_attack
from recpoison.attacks.edges import apply_flips
from recpoison.attacks.meta import sample_non_edges
from recpoison.data import binarize, k_core, load_dataset, planted
from recpoison.data.transforms import holdout_split, subsample_users
from recpoison.victims import make_victim

FRACTIONS = (0.02, 0.05, 0.10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="planted", help="planted or a dataset name / path")
    parser.add_argument("--user-fraction", type=float, default=1.0, help="users kept (source)")
    parser.add_argument("--k-core", type=int, default=0, help="k-core filter after subsampling")
    parser.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS)
    parser.add_argument("--attacks", nargs="+", default=["meta", "meta-approx"])
    parser.add_argument("--flips-per-step", type=int, default=6)
    parser.add_argument(
        "--meta-gradients", type=int, default=0, help="if > 0: flips per step = budget / this"
    )
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.source == "planted":
        data = planted(150, 100, ratings_per_user=15, rating_scale=None, random_state=0)
    else:
        data = binarize(load_dataset(args.source))
        if args.user_fraction < 1:
            data = subsample_users(data, args.user_fraction, random_state=0)
        if args.k_core:
            data = k_core(data, args.k_core)
    print(f"{data!r}")
    train, test = holdout_split(data, 0.2, random_state=0)
    rng = np.random.default_rng(1)
    pos_u, pos_i, _ = test.triples()
    neg_u, neg_i = sample_non_edges(data, np.arange(data.n_users), len(pos_u), rng)
    users, items = np.r_[pos_u, neg_u], np.r_[pos_i, neg_i]
    truth = np.r_[np.ones(len(pos_u)), np.zeros(len(neg_u))]

    def quality(poisoned) -> str:
        victim = make_victim("gmf", n_replicas=4, epochs=20, lr=0.01, random_state=3, device="cpu")
        scores = victim.fit(poisoned).score_replicas(np.arange(data.n_users)).numpy()
        scores = scores[:, users, items]
        auc = np.mean([roc_auc_score(truth, s) for s in scores])
        return f"{auc:.4f} | {np.mean((scores > 0) == truth):.4f}"

    print("| budget | flips | attack | unseen AUROC | unseen accuracy | seconds |")
    print("|---:|---:|---|---:|---:|---:|")
    print(f"| 0 % | 0 | none | {quality(train)} | 0 |", flush=True)
    for fraction in args.fractions:
        budget = round(fraction * train.n_ratings)
        per_step = args.flips_per_step
        if args.meta_gradients > 0:
            per_step = -(-budget // args.meta_gradients)
        ru, ri = sample_non_edges(train, np.arange(data.n_users), budget, rng)
        randomized = apply_flips(train, np.column_stack([ru, ri, np.ones_like(ru)]))
        print(f"| {fraction:.0%} | {budget} | random | {quality(randomized)} | 0 |")
        for name in args.attacks:
            started = time.perf_counter()
            result = make_attack(name, steps=args.steps, flips_per_step=per_step)
            result = result.perturb(
                train, budget, surrogate=make_victim("gmf", random_state=3), random_state=0
            )
            seconds = time.perf_counter() - started
            print(
                f"| {fraction:.0%} | {budget} | {name} | {quality(result.data)} | {seconds:.0f} |"
            )


if __name__ == "__main__":
    main()
