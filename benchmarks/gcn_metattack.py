"""GCN node-classification accuracy under Metattack and under random flips (thesis Table 4.1).

Aravind's thesis (§4.1) re-implements Metattack (Zügner and Günnemann, ICLR 2019) on Cora as a
sanity check before attacking recommenders. Cora cannot be downloaded here, so the same check
runs on Zachary's karate club (networkx) and on a synthetic contextual stochastic block model
(``recpoison.graphs.contextual_sbm`` defaults: 200 nodes, 3 classes); the budgets are 0, 2.5,
5 and 10 % of the clean graph's edges. Each cell is the mean accuracy on the unlabeled nodes of
``--runs`` victim GCNs (ReLU, dropout 0.5, Adam, 200 epochs) with its standard error; Table 4.1's
Cora figures are printed beside.

    .venv/bin/python benchmarks/gcn_metattack.py            # ~2 min on one CPU thread
    .venv/bin/python benchmarks/gcn_metattack.py --steps 100 --runs 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recpoison.graphs import contextual_sbm, evaluate_gcn, karate_club, metattack, random_flips

FRACTIONS = (0.0, 0.025, 0.05, 0.10)
#: Table 4.1: Zügner and Günnemann's Cora accuracy and the thesis's reproduction.
CORA_PAPER = {0.0: 0.834, 0.025: None, 0.05: 0.788, 0.10: 0.719}
CORA_THESIS = {0.0: 0.845, 0.025: 0.829, 0.05: 0.814, 0.10: 0.792}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="inner training steps T")
    parser.add_argument("--runs", type=int, default=5, help="victim retrains per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def cell(accuracies: np.ndarray) -> str:
    se = accuracies.std(ddof=1) / np.sqrt(len(accuracies)) if len(accuracies) > 1 else 0.0
    return f"{accuracies.mean():.3f} ± {se:.3f}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    graphs = [
        karate_club(random_state=args.seed),
        contextual_sbm(random_state=args.seed),
    ]
    print(f"T = {args.steps}, {args.runs} victim retrains per cell, accuracy on unlabeled nodes")
    print()
    header = "| graph | perturbed edges | flips | Metattack | random | seconds (Metattack) |"
    header += " Cora paper | Cora thesis |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for graph in graphs:
        for fraction in FRACTIONS:
            budget = round(fraction * graph.n_edges)
            started = time.perf_counter()
            attacked, _ = metattack(graph, budget, steps=args.steps, random_state=args.seed)
            seconds = time.perf_counter() - started
            randomized, _ = random_flips(graph, budget, random_state=args.seed)
            meta = evaluate_gcn(attacked, args.runs, random_state=args.seed + 1)
            rand = evaluate_gcn(randomized, args.runs, random_state=args.seed + 1)
            paper = CORA_PAPER[fraction]
            print(
                f"| {graph.name} ({graph.n_nodes} nodes, {graph.n_edges} edges) "
                f"| {fraction:.1%} | {budget} | {cell(meta)} | {cell(rand)} | {seconds:.1f} "
                f"| {'-' if paper is None else paper} | {CORA_THESIS[fraction]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
