"""Scoring every item for every user with stacked NeuMF replicas: the chunk size on a CPU.

``NeuMF.score_replicas`` scores users in chunks whose intermediates hold at most
``SCORE_CHUNK_ELEMENTS[device]`` floats. The plain baseline in the same run is one large chunk
(2^25 floats, 128 MiB: the budget every device used before), against the CPU budget and smaller
ones; page faults and system time show why large chunks are slow on a CPU (glibc maps any
allocation over 32 MiB afresh and returns it on free, so every chunk faults its pages in again).

    .venv/bin/python benchmarks/score_speed.py
    .venv/bin/python benchmarks/score_speed.py --replicas 8 --layers 64,32,16,8
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

import recpoison.victims.neural as neural
from recpoison.data.loaders import load_dataset
from recpoison.data.transforms import binarize


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--layers", default="32,16,8", help="MLP tower (the quick preset's)")
    parser.add_argument("--exponents", default="25,23,22,21,20", help="chunk budgets 2^e")
    parser.add_argument("--repeats", type=int, default=3, help="the fastest of these is shown")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = binarize(load_dataset("ml-latest-small"))
    layers = tuple(int(x) for x in args.layers.split(","))
    model = neural.NeuMF(
        layers=layers, epochs=1, batch_size=4096, lr=0.01, n_replicas=args.replicas, random_state=0
    ).fit(data)
    users = np.arange(data.n_users)
    print(
        f"NeuMF MLP {layers}, {args.replicas} replicas: logits of {data.n_users} users x "
        f"{data.n_items} items, {args.threads} thread(s); CPU budget now "
        f"2^{int(np.log2(neural.SCORE_CHUNK_ELEMENTS['cpu']))}\n"
    )
    print("| chunk budget | seconds | system seconds | minor page faults | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    budgets = dict(neural.SCORE_CHUNK_ELEMENTS)
    reference = None
    try:
        for exponent in (int(x) for x in args.exponents.split(",")):
            neural.SCORE_CHUNK_ELEMENTS["cpu"] = 2**exponent
            model.score_replicas(users)  # warm-up
            best = None
            for _ in range(args.repeats):
                before = resource.getrusage(resource.RUSAGE_SELF)
                start = time.perf_counter()
                logits = model.score_replicas(users)
                seconds = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_SELF)
                faults = after.ru_minflt - before.ru_minflt
                run = (seconds, after.ru_stime - before.ru_stime, faults)
                best = run if best is None or run[0] < best[0] else best
            reference = logits if reference is None else reference
            diff = float((logits - reference).abs().max())
            label = f"2^{exponent}" + (" (baseline)" if reference is logits else "")
            print(f"| {label} | {best[0]:.3f} | {best[1]:.3f} | {best[2]:,} | {diff:.1e} |")
    finally:
        neural.SCORE_CHUNK_ELEMENTS.update(budgets)


if __name__ == "__main__":
    main()
