"""Adam step time on NeuMF's stacked parameters: fused kernel vs torch's default (foreach).

recpoison trains R replicas as one model whose parameters are stacked ``[R, ...]`` tensors
(:mod:`recpoison.victims.neural_modules`), and Adam updates every entry of them each step (as
NCF's training does). This measures one Adam step over parameters of the shape NeuMF has on the
bundled data (671 users, 9066 items, GMF 8 + MLP 64-32-16-8) for R replicas, with
``fused=True`` (what :class:`~recpoison.victims.neural.NCFRecommender` uses), the default
``foreach`` implementation, and the plain per-tensor loop, on the same random gradients.

    .venv/bin/python benchmarks/optimizer_speed.py --replicas 10 50 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

USERS, ITEMS = 671, 9066
#: (rows, columns) of each stacked parameter: GMF and MLP embeddings, MLP weights and biases,
#: prediction unit.
SHAPES = [
    (USERS, 8),
    (ITEMS, 8),
    (USERS, 32),
    (ITEMS, 32),
    (64, 32),
    (1, 32),
    (32, 16),
    (1, 16),
    (16, 8),
    (1, 8),
    (16, 1),
    (1, 1),
]
VARIANTS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--steps", type=int, default=30, help="Adam steps timed per variant")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def seconds_per_step(replicas: int, options: dict, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(replicas, rows, cols, generator=generator))
        for rows, cols in SHAPES
    ]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    optimizer = torch.optim.Adam(params, lr=1e-3, **options)
    optimizer.step()  # allocate the moments outside the timing
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps per variant")
    print("| replicas | parameters | fused s/step | foreach s/step | loop s/step | foreach/fused |")
    print("|---:|---:|---:|---:|---:|---:|")
    for replicas in args.replicas:
        times = {name: seconds_per_step(replicas, kw, args.steps) for name, kw in VARIANTS.items()}
        n_params = replicas * sum(rows * cols for rows, cols in SHAPES)
        print(
            f"| {replicas} | {n_params:,} | {times['fused']:.4f} | {times['foreach']:.4f} | "
            f"{times['loop']:.4f} | {times['foreach'] / times['fused']:.1f}x |"
        )


if __name__ == "__main__":
    main()
