"""How many CPU threads training uses: ``--threads``, else ``OMP_NUM_THREADS``, else the idle cores.

torch's CPU build runs its parallel regions on OpenMP threads that spin at every barrier. When
another process keeps one of the cores busy, a spinning thread waits for one that has been
descheduled, and every small operation costs a scheduler time slice: on a 2-core machine with
one other single-threaded job, NeuMF training on torch's default two threads was over 40x slower
than on one (benchmarks/README.md, "Threads on a shared machine"). So when neither the user nor
the environment chose, the command line takes the cores the 1-minute load average leaves free.
A job started *after* the command cannot be seen; ``--threads 1`` is the safe choice there.
"""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_cores(cores: int, load: float) -> int:
    """``cores`` less those a load average of ``load`` keeps busy (rounded), at least 1."""
    return max(1, min(cores, cores - round(load)))


def use_threads(threads: int) -> None:
    """Train on ``threads`` threads here and in worker processes started later."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch  # only here: commands that do not train start without it

    torch.set_num_threads(threads)


def choose_threads(requested: int | None) -> None:
    """Apply ``--threads``; without it and without ``OMP_NUM_THREADS``, the idle cores when other
    processes keep some busy (a one-line note on a terminal says so)."""
    if requested is not None:
        use_threads(requested)
        return
    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return
    load = os.getloadavg()[0]
    if round(load) == 0:
        return  # nothing else running: torch's own default
    import torch

    default = torch.get_num_threads()  # one per physical core
    threads = min(default, idle_cores(available_cores(), load))
    if threads == default:
        return
    use_threads(threads)
    if sys.stderr.isatty():
        print(
            f"note: load average {load:.1f}: training on {threads} of {default} thread(s) "
            "(--threads N to choose)",
            file=sys.stderr,
        )
