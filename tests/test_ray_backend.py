"""The Ray backend on a real local Ray instance (one per module): the same numbers as the local
backend, results streamed to the store and the progress bar as cells finish, a killed worker
retried, a failing cell recorded without losing the others, Ctrl-C cancelling what is pending,
resuming, and the resources each task asks for.

Faults are injected the way the local runner tests do it: ``backends.execute_cell`` is replaced
by a function of this module; the Ray backend looks it up when a run starts and ships it to the
workers (this module is registered with Ray's cloudpickle to travel by value).
"""

import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import recpoison
from recpoison.errors import ConfigError, DeviceError
from recpoison.experiment import backends, build_report, cells, expand_cells, parse_spec, runner
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.progress import progress_folder
from recpoison.experiment.runner import run_experiment

ray = pytest.importorskip("ray", reason="the Ray tests need `pip install recpoison[ray]`")

NEUMF = {
    "name": "neumf",
    "params": {"epochs": 2, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}
N_CELLS = 4  # quality, none, random at two sizes
WAIT = 60.0  # seconds a gated cell waits at most (a hang means the backend did not stream)


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with 2 CPUs and one logical GPU (Ray resources are bookkeeping:
    the GPU lets a test check what a CUDA task is given; no cell here uses CUDA)."""
    source = str(Path(recpoison.__file__).parents[1])
    with pytest.MonkeyPatch.context() as patch:
        # workers import this checkout's recpoison, and send nothing anywhere
        patch.setenv("PYTHONPATH", os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level=logging.WARNING)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield ray
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


@pytest.fixture(scope="module")
def spec(planted_csv) -> dict:
    return {
        "name": "ray-tiny",
        "datasets": [{"source": str(planted_csv(n_users=60)), "transforms": ["binarize"]}],
        "victims": [NEUMF],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.05, 0.1],
        "targets": [{"type": "random", "count": 2}],
        "retrains": 2,
        "ks": [5, 10],
        "device": "cpu",
        "seed": 4,
    }


@pytest.fixture(scope="module")
def keys(spec) -> list[str]:
    """The cell keys, in the order the runner submits them."""
    return [cell.key for cell in expand_cells(parse_spec(spec))]


@pytest.fixture(scope="module")
def local(spec, tmp_path_factory) -> Path:
    """The same spec on the local backend: the numbers every Ray run must reproduce."""
    store = tmp_path_factory.mktemp("local") / "local.db"
    run_experiment(spec, store, progress=False)
    return store


def stored(store: Path) -> dict[str, pd.DataFrame]:
    """Every stored number, in a canonical order (Ray stores cells in completion order)."""
    db = sqlite3.connect(store)
    tables = {
        name: pd.read_sql(f"SELECT * FROM {name} ORDER BY {order}", db)
        for name, order in (
            ("results", "cell_key, target_index, retrain, k"),
            ("quality", "cell_key, retrain"),
        )
    }
    tables["cells"] = pd.read_sql(
        "SELECT key, status, error FROM cells ORDER BY key", db
    ).reset_index(drop=True)
    db.close()
    return tables


def assert_same_numbers(store: Path, reference: Path) -> None:
    ours, theirs = stored(store), stored(reference)
    for name in ("results", "quality", "cells"):
        pd.testing.assert_frame_equal(ours[name], theirs[name])
    report = build_report(store).sort_values(["size", "k"], ignore_index=True)
    expected = build_report(reference).sort_values(["size", "k"], ignore_index=True)
    pd.testing.assert_frame_equal(report, expected)


def done_cells(store: Path) -> set[str]:
    db = sqlite3.connect(store)
    done = {row[0] for row in db.execute("SELECT key FROM cells WHERE status = 'done'")}
    db.close()
    return done


def wait_for(path: Path, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear within {seconds:.0f} s")
        time.sleep(0.05)


# -- substitutes for execute_cell; they run on the Ray workers ---------------------------------
def gated(first_key: str, gate: Path):
    """The cell ``first_key`` finishes only once ``gate`` exists."""

    def run(config, device, status=None, data=None):
        outcome = execute_cell(config, device, status, data)
        if outcome.key == first_key:
            wait_for(gate)
        return outcome

    return run


def killed_once(key: str, attempts: Path):
    """Cell ``key`` appends its worker's pid to ``attempts``; on its first attempt it then
    sleeps, waiting to be killed."""

    def run(config, device, status=None, data=None):
        outcome = execute_cell(config, device, status, data)
        if outcome.key == key:
            with attempts.open("a") as file:
                file.write(f"{os.getpid()}\n")
            if len(attempts.read_text().split()) == 1:
                time.sleep(WAIT)
        return outcome

    return run


def raising(key: str):
    def run(config, device, status=None, data=None):
        outcome = execute_cell(config, device, status, data)
        if outcome.key == key:
            raise RuntimeError("cell exploded")
        return outcome

    return run


def interruptible(first_key: str, marks: Path):
    """Cell ``first_key`` runs; every other cell marks that it started, then sleeps until Ray
    cancels it (which raises KeyboardInterrupt in the task) and marks that too."""

    def run(config, device, status=None, data=None):
        outcome = execute_cell(config, device, status, data)
        if outcome.key == first_key:
            return outcome
        (marks / f"started-{outcome.key}").touch()
        try:  # short steps, like training: Ray's interrupt arrives between Python calls
            for _ in range(int(WAIT / 0.05)):
                time.sleep(0.05)
        except KeyboardInterrupt:
            (marks / f"cancelled-{outcome.key}").touch()
            raise
        return outcome

    return run


def recording(log: Path):
    """Record what the task was given (GPU ids, torch threads, how its data came), then compute
    the cell on the CPU (the GPU of the test instance is only a Ray resource)."""

    def run(config, device, status=None, data=None):
        entry = {
            "device": device,
            "gpu_ids": [int(i) for i in ray.get_gpu_ids()],
            "threads": torch.get_num_threads(),
            "data": type(data).__name__,
            "loaded_here": cells._prepared.cache_info().currsize,
        }
        with log.open("a") as file:
            file.write(json.dumps(entry) + "\n")
        return execute_cell(config, "cpu", status, data)

    return run


# -- tests ---------------------------------------------------------------------------------------
def test_cli_run_on_ray_gives_the_numbers_of_the_local_backend(
    ray_instance, spec, local, cli, tmp_path
):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(spec))
    store = tmp_path / "ray.db"
    code, out, err = cli("run", spec_file, "--backend", "ray", "--store", store, "--quiet")
    assert code == 0, err
    assert f"{N_CELLS} cells computed, 0 already in" in out
    assert_same_numbers(store, local)
    code, out, _ = cli("run", spec_file, "--backend", "ray", "--store", store, "--quiet")
    assert code == 0 and f"0 cells computed, {N_CELLS} already in" in out


def test_results_reach_the_store_and_the_bar_as_cells_finish(
    ray_instance, spec, keys, local, tmp_path, monkeypatch
):
    """The first cell submitted cannot finish before the runner has stored and counted every
    other cell: with results collected at the end, the run would hang and the gate time out."""
    store, gate = tmp_path / "stream.db", tmp_path / "gate"
    seen = []
    real_done = runner._Reporter.done

    def done(self, cell, seconds):
        real_done(self, cell, seconds)
        seen.append((cell.key, cell.key in done_cells(store), self.bar.tasks[0].completed))
        if len(seen) == N_CELLS - 1:
            gate.touch()

    monkeypatch.setattr(runner._Reporter, "done", done)
    monkeypatch.setattr(backends, "execute_cell", gated(keys[0], gate))
    run_experiment(spec, store, backend="ray", progress=True)
    assert {key for key, _, _ in seen[:-1]} == set(keys[1:])
    assert seen[-1][0] == keys[0]
    assert [(in_store, completed) for _, in_store, completed in seen] == [
        (True, n) for n in range(1, N_CELLS + 1)
    ]
    assert_same_numbers(store, local)


def test_a_failing_cell_is_recorded_and_the_others_are_kept_then_resumed(
    ray_instance, spec, keys, local, tmp_path, monkeypatch
):
    store = tmp_path / "failing.db"
    monkeypatch.setattr(backends, "execute_cell", raising(keys[2]))
    with pytest.raises(RuntimeError, match="cell exploded"):
        run_experiment(spec, store, backend="ray", progress=False)
    db = sqlite3.connect(store)
    assert db.execute(
        "SELECT key, status, error FROM cells WHERE status = 'failed'"
    ).fetchall() == [(keys[2], "failed", "RuntimeError: cell exploded")]
    assert db.execute("SELECT count(*) FROM results WHERE cell_key = ?", (keys[2],)).fetchone() == (
        0,
    )
    db.close()
    assert done_cells(store) == set(keys) - {keys[2]}
    monkeypatch.undo()
    resumed = run_experiment(spec, store, backend="ray", progress=False)
    assert (resumed.n_computed, resumed.n_skipped) == (1, N_CELLS - 1)
    assert_same_numbers(store, local)


def test_ctrl_c_cancels_pending_tasks_and_the_run_resumes(
    ray_instance, spec, keys, local, tmp_path, monkeypatch
):
    """With 2 CPUs per task one cell runs at a time: the first finishes and is stored, the
    second is running and the others wait when Ctrl-C reaches the driver loop."""
    store, marks = tmp_path / "interrupted.db", tmp_path / "marks"
    marks.mkdir()

    def press_ctrl_c():
        wait_for(marks / f"started-{keys[1]}")
        deadline = time.monotonic() + WAIT
        while keys[0] not in done_cells(store) and time.monotonic() < deadline:
            time.sleep(0.05)  # the driver stores the first cell after the second started
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    monkeypatch.setattr(backends, "execute_cell", interruptible(keys[0], marks))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, store, backend="ray", progress=False, cpus_per_task=2)
    presser.join(timeout=5)
    wait_for(marks / f"cancelled-{keys[1]}", seconds=20)  # the running task was interrupted
    time.sleep(1.0)  # a task that escaped cancellation would start now
    assert sorted(p.name for p in marks.iterdir()) == [
        f"cancelled-{keys[1]}",
        f"started-{keys[1]}",
    ]
    assert done_cells(store) == {keys[0]}
    ours, theirs = stored(store), stored(local)
    for name in ("results", "quality"):
        expected = theirs[name][theirs[name]["cell_key"] == keys[0]]
        assert ours[name].to_dict("records") == expected.to_dict("records")
    monkeypatch.undo()
    resumed = run_experiment(spec, store, backend="ray", progress=False)
    assert (resumed.n_computed, resumed.n_skipped) == (N_CELLS - 1, 1)
    assert_same_numbers(store, local)


def test_a_killed_worker_is_retried_and_the_cell_finishes(
    ray_instance, spec, keys, local, tmp_path, monkeypatch
):
    store, attempts = tmp_path / "killed.db", tmp_path / "attempts"

    def kill_first_attempt():
        wait_for(attempts)
        os.kill(int(attempts.read_text().split()[0]), signal.SIGKILL)

    killer = threading.Thread(target=kill_first_attempt, daemon=True)
    killer.start()
    monkeypatch.setattr(backends, "execute_cell", killed_once(keys[1], attempts))
    summary = run_experiment(spec, store, backend="ray", progress=False)
    killer.join(timeout=5)
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # retried in a new worker process
    assert summary.n_computed == N_CELLS
    assert_same_numbers(store, local)


def test_cuda_asks_one_gpu_per_task_threads_follow_cpus_and_data_is_shared(
    ray_instance, spec, local, tmp_path, monkeypatch
):
    store, log = tmp_path / "resources.db", tmp_path / "log.jsonl"
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(value) or real_put(value, **kw))
    monkeypatch.setattr(backends, "execute_cell", recording(log))
    run_experiment(spec, store, backend="ray", device="cuda", progress=False, cpus_per_task=2)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == N_CELLS
    for entry in entries:
        assert entry == {
            "device": "cuda",
            "gpu_ids": [0],
            "threads": 2,
            "data": "Interactions",
            "loaded_here": 0,  # the worker never read the CSV: the data came from the store
        }
    assert len(puts) == 1 and type(puts[0]).__name__ == "Interactions"  # once for 4 cells
    assert_same_numbers(store, local)


def test_cuda_on_a_cluster_without_gpus_fails_before_the_store(
    ray_instance, spec, tmp_path, monkeypatch
):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(DeviceError, match="the Ray cluster has no GPU"):
        run_experiment(spec, tmp_path / "never.db", backend="ray", device="cuda", progress=False)
    assert not (tmp_path / "never.db").exists()
    assert backends.RayBackend(ray).prepare("auto") == "cpu"


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--address", "auto"], "--address only applies to --backend ray"),
        (["--cpus-per-task", "2"], "--cpus-per-task only applies to --backend ray"),
        (["--backend", "ray", "--cpus-per-task", "0"], "--cpus-per-task must be positive"),
    ],
)
def test_ray_options_misused_exit_2(cli, spec, tmp_path, options, fragment):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(spec))
    code, _, err = cli("run", spec_file, "--store", tmp_path / "x.db", *options)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_task_options_follow_the_device():
    backend = backends.RayBackend(ray, cpus_per_task=3)
    assert backend.task_options("cuda") == {
        "num_cpus": 3,
        "num_gpus": 1,
        "max_retries": backends.MAX_RETRIES,
        "retry_exceptions": False,
    }
    assert backend.task_options("cpu")["num_gpus"] == 0
    with pytest.raises(ConfigError, match="unknown backend"):
        backends.get_backend("spark")


def test_sizes_that_share_their_work_run_as_one_chain_and_resume(
    ray_instance, planted_csv, tmp_path
):
    """graph-attack's sizes share their work: on Ray its three cells go as one task, smallest
    size first (submitted largest first here), each going on from the one before, and store what
    the local backend stores; the other cells stay one task each. The task leaves its last
    state in the checkpoint folder beside the store."""
    spec = {
        "name": "ray-chain",
        "datasets": [{"source": str(planted_csv(n_users=60, ratings_per_user=8))}],
        "victims": [{"name": "random-walk"}],
        "attacks": [
            {"name": "none"},
            {"name": "graph-attack", "params": {"n_fillers": 5, "steps": 2}},
        ],
        "sizes": [0.1, 0.03, 0.05],
        "targets": [{"type": "random", "count": 2}],
        "retrains": 1,
        "ks": [10],
        "rmse_holdout": 0,
        "victim_quality": False,
        "device": "cpu",
        "seed": 0,
    }
    expanded = expand_cells(parse_spec(spec))
    groups = backends.chains(expanded)
    chained = [g for g in groups if len(g) > 1]
    assert len(groups) == len(expanded) - 2 and len(chained) == 1
    assert [cell.config["size"] for cell in chained[0]] == [0.03, 0.05, 0.1]
    local, store = tmp_path / "local.db", tmp_path / "ray.db"
    run_experiment(spec, local, progress=False)
    run_experiment(spec, store, backend="ray", progress=False)
    assert_same_numbers(store, local)
    db = sqlite3.connect(store)
    resumed = {
        json.loads(config)["size"]: [a["resumed_from"] for a in json.loads(info)["attack"]]
        for config, info in db.execute("SELECT config_json, info_json FROM cells")
        if json.loads(config).get("attack", {}).get("name") == "graph-attack"
    }
    assert resumed == {0.03: [0, 0], 0.05: [2, 2], 0.1: [3, 3]}
    (checkpoint,) = progress_folder(store).glob("*.pt")  # the worker's, beside the store
    states = torch.load(checkpoint, weights_only=False)["progress"]
    assert [state.n_fake for state in states] == [6, 6]  # one per target, after 10 %
