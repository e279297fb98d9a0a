"""Scoring every item for every user with stacked NeuMF replicas: the chunk sizes on a CPU.

``NeuMF.score_replicas`` scores users in chunks whose intermediates hold at most
``SCORE_CHUNK_ELEMENTS[device]`` floats. The plain baseline in the same run is one large chunk
(2^25 floats, 128 MiB: the budget every device used before), against the CPU budget and smaller
ones; page faults and system time show why large chunks are slow on a CPU (glibc maps any
allocation over 32 MiB afresh and returns it on free, so every chunk faults its pages in again).

What depends on the items alone (``StackedNCF.item_side``: the GMF item embeddings transposed,
the item half of the MLP's first layer) is computed once for all chunks of users. The second
table compares that with recomputing it for every chunk of users (the code before: the
baseline), for every user and for one user at a time (what poison-model's per-user steps score,
where the parameters change between users, so there is nothing to share).

    .venv/bin/python benchmarks/score_speed.py
    .venv/bin/python benchmarks/score_speed.py --replicas 10 --layers 64,32,16,8
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
    parser.add_argument("--single-users", type=int, default=50, help="users scored one by one")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="runs per variant (first table: the fastest; second: the median)",
    )
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
    user_chunks(model, users, args)
    item_side(model, users, args)


def fastest(function, repeats: int) -> tuple[float, float, int, torch.Tensor]:
    """Seconds, system seconds and minor page faults of the fastest of ``repeats`` calls (after
    a warm-up), and the last result."""
    function()
    best = None
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        run = (seconds, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt)
        best = run if best is None or run[0] < best[0] else best
    return (*best, result)


def user_chunks(model: neural.NeuMF, users: np.ndarray, args: argparse.Namespace) -> None:
    print("| user-chunk budget | seconds | system seconds | minor page faults | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    budgets = dict(neural.SCORE_CHUNK_ELEMENTS)
    reference = None
    try:
        for exponent in (int(x) for x in args.exponents.split(",")):
            neural.SCORE_CHUNK_ELEMENTS["cpu"] = 2**exponent
            seconds, system, faults, logits = fastest(
                lambda: model.score_replicas(users), args.repeats
            )
            reference = logits if reference is None else reference
            diff = float((logits - reference).abs().max())
            label = f"2^{exponent}" + (" (baseline)" if reference is logits else "")
            print(f"| {label} | {seconds:.3f} | {system:.3f} | {faults:,} | {diff:.1e} |")
    finally:
        neural.SCORE_CHUNK_ELEMENTS.update(budgets)


def item_side(model: neural.NeuMF, users: np.ndarray, args: argparse.Namespace) -> None:
    """The item side shared across the chunks of users against recomputed for each (the code
    before), interleaved ``--repeats`` times; medians."""
    module = model.module_
    per_user = model.n_replicas * module.n_items * module.pair_width()
    chunk = max(1, neural.SCORE_CHUNK_ELEMENTS["cpu"] // per_user)
    index = torch.as_tensor(users)
    single = index[: args.single_users]

    def every_user(share: bool) -> torch.Tensor:
        with torch.no_grad():
            side = module.item_side() if share else None
            parts = [
                module.full_logits(index[s : s + chunk], side) for s in range(0, len(index), chunk)
            ]
            return torch.cat(parts, dim=1)

    def one_at_a_time() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([module.full_logits(u[None]) for u in single], dim=1)

    variants = {"item side per chunk of users (baseline)": False, "item side shared": True}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for _ in range(args.repeats):
        for name, share in variants.items():
            start = time.perf_counter()
            every = every_user(share)
            middle = time.perf_counter()
            rows = one_at_a_time()
            times[name].append((middle - start, (time.perf_counter() - middle) / len(single)))
            results[name] = (every, rows)
    print(
        f"\n| scoring, {chunk} user(s) a chunk ({args.repeats} interleaved runs, medians) | "
        f"all users: seconds | {len(single)} users one at a time: ms per user | max abs diff |"
    )
    print("|---|---:|---:|---:|")
    reference = results[next(iter(variants))]
    for name in variants:
        every, each = np.median(np.array(times[name]), axis=0)
        pairs = zip(results[name], reference, strict=True)
        diff = max(float((a - b).abs().max()) for a, b in pairs)
        print(f"| {name} | {every:.3f} | {1000 * each:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
