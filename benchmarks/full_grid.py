"""What Table I of Huang et al. costs at the paper's settings, from measured per-cell costs.

The grid (``huang2021-table1`` at the paper's settings, bundled data): NeuMF GMF 8 + MLP
64-32-16-8, 20 epochs; sizes 0.5/1/3/5 % (3, 7, 20 and 34 fake users on 671 users); 10 random +
10 unpopular targets; none / random / bandwagon / MF / poison-model (authors' schedule, one fake
user per step, 5 rounds); R retrains per target. This script measures the pieces on a slice and
extrapolates, printing each piece next to the plain alternative measured in the same run:

* victim training, seconds per replica-epoch: the targets' R retrains stacked as the runner
  stacks them (``cells.replicas_per_fit``) vs a plain one-model loop (``--victim-batch``;
  ``--optimizer lazy-adam`` for lazy Adam), and each replica's scoring of every user against
  every item (its HR_t);
* poison-model, seconds per fake user per target: the pre-training epochs, the poison rounds
  and the measurements of the poison model (before the first round and after each) of one
  step for 10 target sets stacked, vs one target alone (the authors' code: 247 s per fake
  user on one idle core, 5.4-9.2 s per epoch); the grid's cost with the sizes sharing their
  steps (the runner's default: 34 steps per target type) and with each size from scratch (64);
* the MF attack (heuristics cost nothing): one generation, per target and size.

    .venv/bin/python benchmarks/full_grid.py --threads 1            # ~10 min on an idle CPU
    .venv/bin/python benchmarks/full_grid.py --device cuda          # on a GPU
    .venv/bin/python benchmarks/full_grid.py --processes 2 --threads 1   # as Ray runs cells
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.pga_sgld import MFAttack
from recpoison.attacks.poison_authors import StackedTargets
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.loaders import load_dataset
from recpoison.data.transforms import binarize, default_unpopular_threshold, unpopular_items
from recpoison.experiment.cells import replicas_per_fit
from recpoison.utils import resolve_device
from recpoison.victims.neural import NeuMF

SIZES = (0.005, 0.01, 0.03, 0.05)
TARGETS_PER_TYPE = 10
TARGET_TYPES = 2
PROFILE_ATTACKS = 4  # random, bandwagon, MF, poison-model (plus one `none` cell per type)
EPOCHS = 20
ROUNDS = 5
AUTHORS_SECONDS_PER_FAKE_USER = 247.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--retrains", type=int, default=10, help="R per target (paper: 30)")
    parser.add_argument("--victim-batch", type=int, default=256)
    parser.add_argument("--victim-lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adam", choices=["adam", "lazy-adam"])
    parser.add_argument("--mf-iterations", type=int, default=3, help="timed, of the default 30")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="measure in this many processes at once (as `--backend ray` runs cells) and "
        "divide the grid's time by it; use with --threads 1",
    )
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_seconds(
    data: Interactions,
    n_replicas: int,
    device: torch.device,
    batch: int,
    lr: float,
    optimizer: str = "adam",
    epochs: int = 1,
) -> tuple[float, NeuMF]:
    """Seconds of an ``epochs``-epoch fit of an ``n_replicas``-replica NeuMF (and the model)."""
    model = NeuMF(
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        n_replicas=n_replicas,
        random_state=0,
        device=str(device),
        optimizer=optimizer,
    )
    sync(device)
    start = time.perf_counter()
    model.fit(data)
    sync(device)
    return time.perf_counter() - start, model


def fit_cost(
    data: Interactions, n_replicas: int, device: torch.device, batch: int, lr: float, **kw: str
) -> tuple[float, float, NeuMF]:
    """``(setup, epoch)`` seconds of a fit, from fits of 1 and 3 epochs (a fit costs
    ``setup + epochs * epoch``: the setup, per fit, builds the replicas and their data), and
    the 1-epoch model. A warm-up fit runs first."""
    fit_seconds(data, n_replicas, device, batch, lr, **kw)
    one, model = fit_seconds(data, n_replicas, device, batch, lr, **kw)
    three, _ = fit_seconds(data, n_replicas, device, batch, lr, epochs=3, **kw)
    epoch = (three - one) / 2
    return max(0.0, one - epoch), epoch, model


def round_seconds(
    model: NeuMF, data: Interactions, targets: np.ndarray, device: torch.device
) -> tuple[float, float]:
    """Seconds of the per-user steps and the norm step of one poison round (authors), and of
    one measurement of the poison model (objective and HR_t over every normal user, taken
    after each round and before the first)."""
    fake = data.n_users - 1
    objective = StackedTargets(data, targets, np.array([fake]), 10, 1.0, 100.0, 0.01, device)
    rngs = [np.random.default_rng(r) for r in range(len(targets))]
    sync(device)
    start = time.perf_counter()
    objective.poison_round(model, rngs)
    sync(device)
    middle = time.perf_counter()
    objective.values(model)
    sync(device)
    return middle - start, time.perf_counter() - middle


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Every per-unit cost the grid is extrapolated from, measured in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = binarize(load_dataset("ml-latest-small"))
    batch, lr = args.victim_batch, args.victim_lr
    # victims, stacked as the runner stacks a cell's targets (cells.replicas_per_fit)
    cap = replicas_per_fit({"name": "neumf", "params": {"batch_size": batch}}, str(device))
    replicas = args.retrains * min(TARGETS_PER_TYPE, max(1, cap // args.retrains))
    setup, epoch, victim = fit_cost(data, replicas, device, batch, lr, optimizer=args.optimizer)
    setup_1, epoch_1, _ = fit_cost(data, 1, device, batch, lr)
    sync(device)
    start = time.perf_counter()
    victim.score_replicas(np.arange(data.n_users))  # HR_t: every user against every item
    sync(device)
    costs = {
        "replicas": replicas,
        "victim_setup": setup,
        "victim_epoch": epoch / replicas,
        "victim": (setup + EPOCHS * epoch) / (EPOCHS * replicas),  # a fit of EPOCHS epochs
        "plain": (setup_1 + EPOCHS * epoch_1) / EPOCHS,
        "victim_scoring": (time.perf_counter() - start) / replicas,
    }
    # poison-model: one step (a fresh poison model, then the rounds) alone and for 10 targets
    threshold = default_unpopular_threshold(data)
    rng = np.random.default_rng(0)
    targets = rng.choice(unpopular_items(data, threshold), TARGETS_PER_TYPE, replace=False)
    poisoned = data.with_fake_users(_one_fake_user(data))
    for n_sets in (1, TARGETS_PER_TYPE):
        setup, epoch, model = fit_cost(poisoned, n_sets, device, 256, 1e-3)
        rounds, values = round_seconds(model, poisoned, targets[:n_sets, None], device)
        costs[f"epoch_{n_sets}"], costs[f"round_{n_sets}"] = epoch, rounds
        costs[f"values_{n_sets}"] = values
        costs[f"step_{n_sets}"] = (
            setup + EPOCHS * epoch + ROUNDS * (rounds + epoch) + (ROUNDS + 1) * values
        )
        costs[f"fit_{n_sets}"] = setup + EPOCHS * epoch  # one poison-model training
    # the MF attack (heuristics cost nothing): one generation, per target at 5 %
    start = time.perf_counter()
    n_fake = max(1, round(SIZES[-1] * data.n_users))
    MFAttack(n_iter=args.mf_iterations).generate(data, targets[:1], n_fake, random_state=0)
    costs["mf"] = (time.perf_counter() - start) / args.mf_iterations * 30  # default 30
    return costs


def main() -> None:
    args = parse_args()
    data = binarize(load_dataset("ml-latest-small"))
    n_fake = [max(1, round(s * data.n_users)) for s in SIZES]
    print(f"data: {data}; fake users per size {n_fake}; load average {os.getloadavg()[0]:.1f}")
    if args.processes > 1:
        # as the Ray backend runs cells: that many processes at once, each on its own share
        with ProcessPoolExecutor(args.processes, mp_context=get_context("spawn")) as pool:
            measured = list(pool.map(measure, [args] * args.processes))
        costs = {key: float(np.mean([m[key] for m in measured])) for key in measured[0]}
    else:
        costs = measure(args)
    parallel = args.processes  # units of work done at once: the grid takes cost / parallel
    threads = args.threads or torch.get_num_threads()
    print(
        f"device {resolve_device(args.device)}, {args.processes} process(es) at once with "
        f"{threads} CPU thread(s) each, victim {args.optimizer}"
    )
    report(costs, args, n_fake, parallel)
    print(f"load average {os.getloadavg()[0]:.1f}")


def report(
    costs: dict[str, float], args: argparse.Namespace, n_fake: list[int], parallel: int
) -> None:
    """Print the measured costs and the grid they extrapolate to (``parallel`` units at once)."""
    per_replica, plain = costs["victim"], costs["plain"]
    print(
        f"\nvictim, batch {args.victim_batch}: {per_replica:.3f} s per replica-epoch with "
        f"{costs['replicas']:.0f} stacked replicas in a {EPOCHS}-epoch fit "
        f"({costs['victim_setup']:.1f} s setup + {costs['victim_epoch']:.3f} s per "
        f"replica-epoch), {plain:.3f} s one model alone with plain Adam "
        f"({plain / per_replica:.1f}x); the authors' code 5.4-9.2 s"
    )
    cells = TARGET_TYPES * (len(SIZES) * PROFILE_ATTACKS + 1)
    replica_epochs = cells * TARGETS_PER_TYPE * args.retrains * EPOCHS
    scoring_hours = (
        cells * TARGETS_PER_TYPE * args.retrains * costs["victim_scoring"] / 3600 / parallel
    )
    victim_hours = replica_epochs * per_replica / 3600 / parallel + scoring_hours
    print(
        f"  {replica_epochs:,} replica-epochs in the grid, and each replica's HR_t "
        f"({costs['victim_scoring']:.2f} s of scoring per replica): {victim_hours:.1f} h, "
        f"of which scoring {scoring_hours:.1f} h"
    )
    for n_sets in (1, TARGETS_PER_TYPE):
        step = costs[f"step_{n_sets}"]
        print(
            f"\npoison-model, {n_sets} target set(s) stacked: epoch {costs[f'epoch_{n_sets}']:.2f}"
            f" s, poison round {costs[f'round_{n_sets}']:.2f} s, measuring the poison model "
            f"{costs[f'values_{n_sets}']:.2f} s -> one step {step:.0f} s = "
            f"{step / n_sets:.1f} s per fake user per target"
        )
    per_fake = costs[f"step_{TARGETS_PER_TYPE}"] / TARGETS_PER_TYPE
    print(
        f"  stacking saves {costs['step_1'] / per_fake:.1f}x; the authors' code "
        f"{AUTHORS_SECONDS_PER_FAKE_USER:.0f} s per fake user "
        f"({AUTHORS_SECONDS_PER_FAKE_USER / per_fake:.1f}x slower)"
    )
    # per target type: the steps, plus one base fit per chain of steps and one refit per size
    step_hours = costs[f"step_{TARGETS_PER_TYPE}"] / 3600 / parallel
    fit_hours = costs[f"fit_{TARGETS_PER_TYPE}"] / 3600 / parallel
    separate = TARGET_TYPES * (sum(n_fake) * step_hours + 2 * len(SIZES) * fit_hours)
    poison_hours = TARGET_TYPES * (max(n_fake) * step_hours + (1 + len(SIZES)) * fit_hours)
    print(
        f"  the sizes share their steps (each cell goes on from the previous size): "
        f"{TARGET_TYPES * max(n_fake)} steps of 10 stacked targets in the grid, "
        f"{poison_hours:.1f} h; each size from scratch: {TARGET_TYPES * sum(n_fake)} steps, "
        f"{separate:.1f} h"
    )
    mf_hours = costs["mf"] * TARGET_TYPES * TARGETS_PER_TYPE * len(SIZES) / 3600 / parallel
    print(f"\nMF attack: ~{costs['mf']:.0f} s per target at 5 % (30 iterations): {mf_hours:.1f} h")
    total = victim_hours + poison_hours + mf_hours
    print(
        f"\nTable I grid at the paper's settings with {args.retrains} retrains: "
        f"~{total:.1f} h on this machine (victims {victim_hours:.1f} h, poison-model "
        f"{poison_hours:.1f} h, MF {mf_hours:.1f} h)"
    )


def _one_fake_user(data: Interactions) -> FakeProfiles:
    """A fake user rating one item, so the poison round has a fake user to score."""
    row = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, data.n_items), dtype=np.float32)
    return FakeProfiles(row, np.array([0]))


if __name__ == "__main__":
    main()
