"""Training speed of NeuMF: R replicas one after another vs. together (stacked), and batch sizes.

NeuMF (Huang et al. 2021, V-A settings) on the bundled MovieLens data (ml-latest-small, every
rating -> 1). Trains R single-replica models in a plain loop and one R-replica model, for a few
epochs, and prints seconds per replica-epoch for both and their ratio; totals for the full run
(R replicas x --epochs epochs) are extrapolated from those per-replica-epoch times.

    .venv/bin/python benchmarks/train_speed.py --device cpu --replicas 30 --measure-epochs 2
    .venv/bin/python benchmarks/train_speed.py --quick
    .venv/bin/python benchmarks/train_speed.py --replicas 8 --large-batch 0 \
        --optimizers adam,lazy-adam --quality          # lazy Adam at the paper's batch 256
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from recpoison.data.interactions import Interactions
from recpoison.data.loaders import load_dataset
from recpoison.data.transforms import binarize, leave_one_out
from recpoison.metrics import leave_one_out_hr_ndcg
from recpoison.utils import resolve_device
from recpoison.victims.base import replica_seeds
from recpoison.victims.neural import NeuMF


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--replicas", type=int, default=30, help="R (the papers retrain 30x)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=20,
        help="epochs of the full run whose total time is extrapolated",
    )
    parser.add_argument(
        "--measure-epochs", type=int, default=2, help="epochs actually trained per measurement"
    )
    parser.add_argument(
        "--sequential-replicas",
        type=int,
        default=3,
        help="how many of the R one-after-another models to time (the loop's "
        "time per replica-epoch does not depend on R)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--large-batch", type=int, default=2048, help="also time this batch size (0 = skip)"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--optimizers",
        default="adam",
        help="comma-separated NCF optimizers timed together (adam, lazy-adam); the "
        "one-after-another baseline always uses adam",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="also train 2 replicas per batch size for --epochs epochs on a "
        "leave-one-out split and print HR@10 / NDCG@10 (NCF protocol)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short run: 4 replicas, 1 epoch, 1 sequential replica"
    )
    args = parser.parse_args()
    if args.quick:
        args.replicas, args.measure_epochs, args.sequential_replicas = 4, 1, 1
    if min(args.replicas, args.measure_epochs, args.sequential_replicas) < 1:
        parser.error("--replicas, --measure-epochs and --sequential-replicas must be >= 1")
    args.sequential_replicas = min(args.sequential_replicas, args.replicas)
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sequential(
    data: Interactions, args: argparse.Namespace, batch: int, lr: float, device: torch.device
) -> float:
    """Seconds per replica-epoch of single-replica models trained one after another."""
    seeds = replica_seeds(0, args.sequential_replicas)
    sync(device)
    start = time.perf_counter()
    for seed in seeds:
        NeuMF(
            epochs=args.measure_epochs, batch_size=batch, lr=lr, seeds=[seed], device=str(device)
        ).fit(data)
    sync(device)
    return (time.perf_counter() - start) / (len(seeds) * args.measure_epochs)


def time_together(
    data: Interactions,
    args: argparse.Namespace,
    batch: int,
    lr: float,
    device: torch.device,
    optimizer: str,
) -> float:
    """Seconds per replica-epoch of one model training all R replicas together."""
    sync(device)
    start = time.perf_counter()
    NeuMF(
        epochs=args.measure_epochs,
        batch_size=batch,
        lr=lr,
        n_replicas=args.replicas,
        random_state=0,
        device=str(device),
        optimizer=optimizer,
    ).fit(data)
    sync(device)
    return (time.perf_counter() - start) / (args.replicas * args.measure_epochs)


def quality(
    data: Interactions,
    args: argparse.Namespace,
    batch: int,
    lr: float,
    device: torch.device,
    optimizer: str,
) -> str:
    """HR@10 / NDCG@10 (leave-one-out, 99 sampled negatives) of 2 replicas after --epochs."""
    train, test_items = leave_one_out(data, random_state=0)
    model = NeuMF(
        epochs=args.epochs,
        batch_size=batch,
        lr=lr,
        n_replicas=2,
        random_state=0,
        device=str(device),
        optimizer=optimizer,
    ).fit(train, exclude_items=test_items)
    result = leave_one_out_hr_ndcg(model, train, test_items, k=10, random_state=0)
    return (
        f"  batch {batch:>5}, lr {lr:.2g}, {optimizer}, {args.epochs} epochs: HR@10 "
        f"{' '.join(f'{v:.3f}' for v in result['hr'])}, NDCG@10 "
        f"{' '.join(f'{v:.3f}' for v in result['ndcg'])} (2 replicas)"
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = binarize(load_dataset("ml-latest-small"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"data: {data}")
    print(
        f"device: {name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"load average before {os.getloadavg()[0]:.1f}"
    )
    print(
        f"NeuMF GMF 8 + MLP 64-32-16-8, 4 negatives, Adam; R = {args.replicas}; each timing "
        f"trains {args.measure_epochs} epoch(s); one-after-another timed on "
        f"{args.sequential_replicas} of the R replicas"
    )
    batches = [(args.batch_size, args.lr)]
    if args.large_batch and args.large_batch != args.batch_size:
        # Adam: square-root learning-rate scaling with the batch size
        batches.append((args.large_batch, args.lr * math.sqrt(args.large_batch / args.batch_size)))

    optimizers = args.optimizers.split(",")
    header = f"{'batch':>6} {'lr':>8} {'optimizer':>10} {'one after another':>18} " + (
        f"{'together':>10} {'speed-up':>9}"
    )
    print("\nseconds per replica-epoch (measured; one after another: plain adam)")
    print(header)
    results = []
    for batch, lr in batches:
        sequential = time_sequential(data, args, batch, lr, device)
        for optimizer in optimizers:
            together = time_together(data, args, batch, lr, device, optimizer)
            results.append((batch, lr, optimizer, sequential, together))
            print(
                f"{batch:>6} {lr:>8.2g} {optimizer:>10} {sequential:>18.3f} {together:>10.3f} "
                f"{sequential / together:>8.1f}x",
                flush=True,
            )

    baseline = results[0][3]
    full = args.replicas * args.epochs
    print(
        f"\nextrapolated totals for {args.replicas} replicas x {args.epochs} epochs "
        f"(from the per-replica-epoch times above, not measured end to end)"
    )
    for batch, _, optimizer, sequential, together in results:
        print(
            f"  batch {batch:>5}, {optimizer}: one after another {sequential * full / 60:7.1f} "
            f"min, together {together * full / 60:7.1f} min "
            f"({baseline / together:.1f}x faster than one after another at batch "
            f"{results[0][0]})"
        )
    if args.quality:
        print("\nleave-one-out quality (latest interaction held out, 99 sampled negatives)")
        for batch, lr, optimizer, _, _ in results:
            print(quality(data, args, batch, lr, device, optimizer), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
