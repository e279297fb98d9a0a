"""Seconds and peak memory of one meta-gradient (one flip) against T and the data size.

Aravind's thesis §3.8.1: the exact meta-gradient costs time O(n m T) per flip and memory
O(n m T) (n training pairs, m parameters, T inner steps); Meta-Approx keeps one step's graph.
Each configuration runs in a fresh process on planted implicit data (as many sampled negatives
as interactions, so n = 2 x interactions), GMF surrogate (embedding 8), Adam inner training,
one torch thread. Reported: seconds for one flip (one probe step for the memory estimate plus
one meta-gradient), the attack's own peak-memory estimate, and the measured peak memory: the
growth of the process's peak resident memory (``ru_maxrss``) on the CPU, the peak of torch's
allocator on a GPU (the surrogate, and so the whole meta-gradient, on that device).

    .venv/bin/python benchmarks/meta_speed.py                 # ~3 min
    .venv/bin/python benchmarks/meta_speed.py --large         # adds a MovieLens-100K-sized problem
    python benchmarks/meta_speed.py --devices cpu,cuda --large   # the CPU beside the GPU, per row
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource

#: (users, items, interactions per user): small planted data up to MovieLens-100K's shape.
SIZES = [(150, 100, 15), (600, 400, 20), (943, 1682, 53)]
LARGE = (943, 1682, 106)  # about 100,000 interactions, as MovieLens-100K
STEPS = (10, 50, 100)


def measure(name: str, users: int, items: int, per_user: int, steps: int, device: str) -> dict:
    import torch

    from recpoison.attacks import make_attack
    from recpoison.data import planted
    from recpoison.victims import make_victim

    torch.set_num_threads(1)
    data = planted(users, items, ratings_per_user=per_user, rating_scale=None, random_state=0)
    surrogate = make_victim("gmf", random_state=0, device=device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attack = make_attack(name, steps=steps, max_memory_gb=20)
    result = attack.perturb(data, 1, surrogate=surrogate, random_state=0)
    if device == "cpu":
        measured = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20  # KiB
    else:
        measured = torch.cuda.max_memory_allocated() / 2**30
    return {
        "pairs": result.info["pairs"],
        "seconds": result.info["seconds"],
        "estimated_gb": result.info["estimated_peak_gb"],
        "measured_gb": measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="add a 100,000-interaction problem")
    parser.add_argument(
        "--devices", default="cpu", help="comma-separated torch devices, one column each"
    )
    args = parser.parse_args()
    sizes = [*SIZES, LARGE] if args.large else SIZES
    devices = args.devices.split(",")
    context = multiprocessing.get_context("spawn")
    columns = " | ".join(f"{d} s / flip | {d} GiB" for d in devices)
    print(f"| attack | users x items | pairs n | T | estimated GiB | {columns} |")
    print("|---|---|---:|---:|---:|" + "---:|---:|" * len(devices))
    for users, items, per_user in sizes:
        for name in ("meta", "meta-approx"):
            for steps in STEPS:
                rows = []
                for device in devices:
                    with context.Pool(1) as pool:
                        rows.append(
                            pool.apply(measure, (name, users, items, per_user, steps, device))
                        )
                figures = " | ".join(
                    f"{row['seconds']:.2f} | {row['measured_gb']:.3f}" for row in rows
                )
                print(
                    f"| {name} | {users} x {items} | {rows[0]['pairs']:,} | {steps} "
                    f"| {rows[0]['estimated_gb']:.3f} | {figures} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
