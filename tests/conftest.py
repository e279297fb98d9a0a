"""Shared fixtures: tiny planted datasets (Interactions is immutable, so session scope is safe),
the CLI, and attack checkpoints after every step."""

import os
import sys

import numpy as np
import pytest
import torch

from recpoison.cli import main
from recpoison.data import Interactions, planted
from recpoison.data.transforms import item_popularity
from recpoison.experiment import Store, expand_cells, parse_spec, progress
from recpoison.experiment.progress import ATTACK_PROGRESS
from recpoison.metrics import target_hit_ratio
from recpoison.victims.neural import NeuMF

# Commands the tests start (in this process or as subprocesses) train on one thread, whatever
# the load average says (recpoison.cli.threads), as this process does (``one_torch_thread``).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_explicit() -> Interactions:
    """60 users x 40 items, 8 ratings each on the 1-5 scale, with timestamps."""
    return planted(n_users=60, n_items=40, n_factors=3, ratings_per_user=8, random_state=0)


@pytest.fixture(scope="session")
def tiny_implicit() -> Interactions:
    """The same shape as ``tiny_explicit``, implicit (every interaction is 1)."""
    return planted(
        n_users=60, n_items=40, n_factors=3, ratings_per_user=8, rating_scale=None, random_state=0
    )


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models and small linear algebra run faster on one torch thread, and are immune to
    other processes' load on a shared 2-core machine (2 threads were up to 40x slower there)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def planted_csv(tmp_path_factory):
    """A factory: ``planted_csv(n_users, ratings_per_user, seed)`` writes that explicit planted
    dataset (40 items, 3 factors) to a CSV once per session and returns its path."""
    written = {}

    def write(n_users: int = 60, ratings_per_user: int = 8, seed: int = 0):
        key = (n_users, ratings_per_user, seed)
        if key not in written:
            path = tmp_path_factory.mktemp("data") / "planted_{}_{}_{}.csv".format(*key)
            data = planted(
                n_users=n_users,
                n_items=40,
                n_factors=3,
                ratings_per_user=ratings_per_user,
                random_state=seed,
            )
            data.to_frame().to_csv(path, index=False)
            written[key] = path
        return written[key]

    return write


@pytest.fixture
def checkpoint_every_step(monkeypatch):
    """Attack checkpoints after every step, and an empty memory of attack states before and
    after the test (as in a fresh process)."""
    monkeypatch.setattr(progress, "CHECKPOINT_SECONDS", 0.0)
    ATTACK_PROGRESS.clear_memory()
    yield
    ATTACK_PROGRESS.clear_memory()


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(*args)`` runs ``recpoison ARGS`` in this process: (exit code, stdout, stderr)."""

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["recpoison", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def effect_victim():
    """The small 4-replica NeuMF the attack-effect tests retrain (fixed seed)."""
    return NeuMF(
        embedding_dim=8,
        layers=(32, 16, 8),
        epochs=10,
        batch_size=512,
        lr=5e-3,
        n_replicas=4,
        random_state=1,
        device="cpu",
    )


@pytest.fixture(scope="session")
def effect_setup():
    """For attack-effect tests: planted implicit data (250 users, 180 items), its 6th least
    popular item as the target, the target's HR_t@10 per replica of :func:`effect_victim`
    trained without attack, and that victim's factory."""
    data = planted(250, 180, ratings_per_user=20, rating_scale=None, random_state=0)
    target = int(np.argsort(item_popularity(data), kind="stable")[5])
    clean = target_hit_ratio(effect_victim().fit(data), data, [target]).ratio()[:, 0, 0]
    return data, target, clean, effect_victim


@pytest.fixture(scope="session")
def store_of_runs():
    """``store_of_runs(path, specs, fabricate)``: a results store with one finished run per spec,
    every cell of each written with ``fabricate(cell)`` (a cell shared by runs once)."""

    def write(path, specs: list[dict], fabricate):
        with Store.open(path) as db:
            for raw in specs:
                spec = parse_spec(raw)
                cells = expand_cells(spec)
                run = db.start_run(spec.name, spec.to_json(), cells)
                for cell in cells:
                    if not db.is_done(cell.key):
                        db.write_cell(cell, fabricate(cell), run)
                db.finish_run(run)
        return path

    return write
