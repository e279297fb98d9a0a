"""The runner on tiny planted data: cells, storage, resume after a crash, determinism."""

import sqlite3
import sys

import numpy as np
import pandas as pd
import pytest

from recpoison.errors import ConfigError
from recpoison.experiment import backends, build_report, cells, expand_cells, parse_spec
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.expansion import stable_seed
from recpoison.experiment.report import to_markdown
from recpoison.experiment.runner import run_experiment

NEUMF = {
    "name": "neumf",
    "params": {"epochs": 2, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}
N_CELLS = 7  # 1 quality + 2 target sets x (1 none + 2 sizes)
N_RESULT_ROWS = 6 * 2 * 2 * 2  # attack-kind cells x targets x retrains x ks


@pytest.fixture(scope="module")
def csv_path(planted_csv):
    return planted_csv(n_users=60, ratings_per_user=8)


def tiny_spec(csv_path, **changes) -> dict:
    spec = {
        "name": "tiny",
        "datasets": [{"source": str(csv_path), "transforms": ["binarize"]}],
        "victims": [NEUMF],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.05, 0.1],
        "targets": [{"type": "random", "count": 2}, {"type": "unpopular", "count": 2}],
        "retrains": 2,
        "ks": [5, 10],
        "device": "cpu",
        "seed": 3,
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def reference(csv_path, tmp_path_factory):
    """An uninterrupted run: (store path, summary, report)."""
    store = tmp_path_factory.mktemp("ref") / "ref.db"
    summary = run_experiment(tiny_spec(csv_path), store, progress=False)
    return store, summary, build_report(store)


def row_counts(store) -> dict[str, int]:
    db = sqlite3.connect(store)
    counts = dict(db.execute("SELECT cell_key, count(*) FROM results GROUP BY cell_key"))
    counts.update(db.execute("SELECT cell_key, count(*) FROM quality GROUP BY cell_key"))
    return counts


def test_a_run_computes_and_stores_every_cell_once(reference):
    store, summary, report = reference
    assert (summary.n_cells, summary.n_computed, summary.n_skipped) == (N_CELLS, N_CELLS, 0)
    counts = row_counts(store)
    assert len(counts) == N_CELLS
    assert sum(counts.values()) == N_RESULT_ROWS + 2  # + 2 quality retrains
    assert set(report["attack"]) == {"none", "random"}
    attacked = report[report["attack"] == "random"]
    assert (attacked["n_fake"] == np.where(attacked["size"] == 0.05, 3, 6)).all()
    assert report["hr_mean"].between(0, 1).all()
    assert attacked["filler_popularity"].between(1, 60).all()  # 60 users rate each item at most
    assert report.loc[report["attack"] == "none", "filler_popularity"].isna().all()
    assert "Mean popularity (ratings in the attacker's view) of the fillers" in to_markdown(report)


def test_rerunning_skips_finished_cells(reference, csv_path):
    store, _, report = reference
    again = run_experiment(tiny_spec(csv_path), store, progress=False)
    assert (again.n_computed, again.n_skipped) == (0, N_CELLS)
    assert sum(row_counts(store).values()) == N_RESULT_ROWS + 2
    pd.testing.assert_frame_equal(build_report(store), report)


def test_same_spec_and_seed_give_identical_numbers(reference, csv_path, tmp_path):
    _, _, report = reference
    run_experiment(tiny_spec(csv_path), tmp_path / "again.db", progress=False)
    pd.testing.assert_frame_equal(build_report(tmp_path / "again.db"), report)


def test_resume_after_ctrl_c(reference, csv_path, tmp_path, monkeypatch):
    ref_store, _, report = reference
    store = tmp_path / "crash.db"
    calls = []

    def interrupted(config, device, status=None):
        calls.append(config["kind"])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return execute_cell(config, device, status)

    monkeypatch.setattr(backends, "execute_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_spec(csv_path), store, progress=False)
    partial = row_counts(store)
    assert len(partial) == 3  # the finished cells, whole
    reference_counts = row_counts(ref_store)
    assert all(partial[key] == reference_counts[key] for key in partial)
    monkeypatch.undo()
    resumed = run_experiment(tiny_spec(csv_path), store, progress=False)
    assert (resumed.n_computed, resumed.n_skipped) == (N_CELLS - 3, 3)
    assert row_counts(store) == reference_counts  # exactly one row set per cell
    pd.testing.assert_frame_equal(build_report(store), report)


def test_runs_sharing_a_store_store_each_cell_once(reference, csv_path, tmp_path, monkeypatch):
    """While the outer run computes its first cell, a second run on the same store finishes
    every cell: the outer run's own result for that cell is dropped, the rest are skipped."""
    store = tmp_path / "shared.db"
    real = backends.execute_cell
    calls = []

    def concurrent(config, device, status=None):
        calls.append(config["kind"])
        if len(calls) == 1:
            run_experiment(tiny_spec(csv_path), store, progress=False)
        return real(config, device, status)

    monkeypatch.setattr(backends, "execute_cell", concurrent)
    summary = run_experiment(tiny_spec(csv_path), store, progress=False)
    assert len(calls) == N_CELLS + 1  # the second run's cells + the outer run's first one
    assert row_counts(store) == row_counts(reference[0])
    assert summary.n_computed == N_CELLS  # pending when the outer run began
    assert build_report(store).equals(reference[2])


def test_a_failing_attack_is_recorded_and_the_run_resumes(
    reference, csv_path, tmp_path, monkeypatch
):
    _, _, report = reference
    store = tmp_path / "fail.db"
    real_make_attack = cells.make_attack
    generated = []

    def exploding(name, **params):
        attack = real_make_attack(name, **params)
        generate = attack.generate

        def flaky(*args, **kwargs):
            generated.append(1)
            if len(generated) == 3:  # first target of the 2nd cell
                raise RuntimeError("attack exploded")
            return generate(*args, **kwargs)

        attack.generate = flaky
        return attack

    monkeypatch.setattr(cells, "make_attack", exploding)
    with pytest.raises(RuntimeError, match="attack exploded"):
        run_experiment(tiny_spec(csv_path), store, progress=False)
    db = sqlite3.connect(store)
    failed = db.execute("SELECT error FROM cells WHERE status = 'failed'").fetchall()
    assert failed == [("RuntimeError: attack exploded",)]
    done = db.execute("SELECT count(*) FROM cells WHERE status = 'done'").fetchone()[0]
    monkeypatch.undo()
    resumed = run_experiment(tiny_spec(csv_path), store, progress=False)
    assert resumed.n_skipped == done and resumed.n_computed == N_CELLS - done
    pd.testing.assert_frame_equal(build_report(store), report)


def test_impossible_pairing_fails_before_any_work(csv_path, tmp_path):
    spec = tiny_spec(csv_path, datasets=[{"source": str(csv_path)}])  # explicit, no binarize
    with pytest.raises(ConfigError, match="binarize"):
        run_experiment(spec, tmp_path / "never.db", progress=False)
    assert not (tmp_path / "never.db").exists()


def test_ray_backend_needs_the_extra(csv_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"needs `pip install recpoison\[ray\]`"):
        run_experiment(tiny_spec(csv_path), tmp_path / "r.db", backend="ray", progress=False)
    with pytest.raises(ConfigError, match="unknown backend"):
        run_experiment(tiny_spec(csv_path), tmp_path / "r.db", backend="spark", progress=False)


def test_cells_share_the_baseline_and_have_stable_keys(csv_path):
    spec = parse_spec(tiny_spec(csv_path, n_fillers=[3, 5]))
    expanded = expand_cells(spec)
    kinds = [c.kind for c in expanded]
    assert kinds[0] == "quality" and kinds.count("quality") == 1
    assert sum(c.labels.get("attack") == "none" for c in expanded) == 2  # one per target set
    assert len(expanded) == 1 + 2 * (1 + 2 * 2)  # fillers x sizes
    assert [c.key for c in expand_cells(spec)] == [c.key for c in expanded]
    assert stable_seed("targets", 1, {"a": [1, 2]}) == 338528848023074863  # same everywhere


def test_per_target_fits_when_batching_is_capped(csv_path, monkeypatch):
    """With at most one target per fit, each target gets its own fit of R replicas, with the
    same seeds as in one batched fit (those of the clean victim), so the results are equal."""
    spec = parse_spec(tiny_spec(csv_path, sizes=[0.1]))
    cell = next(c for c in expand_cells(spec) if c.labels.get("attack") == "random")
    fits = []
    real = cells._new_victim

    def recorded(victim, n, seeds, device):
        fits.append((n, list(seeds)))
        return real(victim, n, seeds, device)

    monkeypatch.setattr(cells, "_new_victim", recorded)
    batched = execute_cell(cell.config, "cpu")
    monkeypatch.setattr(cells, "MAX_REPLICAS_PER_FIT", 1)
    capped = execute_cell(cell.config, "cpu")
    (n, seeds), *per_target = fits
    assert n == 4 and seeds[:2] == seeds[2:]  # 2 targets x 2 retrains, seeds repeated
    assert per_target == [(2, seeds[:2])] * 2  # 2 targets x (one fit of 2 retrains)
    assert len(capped.results) == 2 * 2 * 2
    assert {row["target_index"] for row in capped.results} == {0, 1}
    assert [row["hr"] for row in capped.results] == [row["hr"] for row in batched.results]


def test_explicit_victim_with_detector_knowledge_and_rmse(planted_csv, tmp_path):
    path = planted_csv(n_users=60, ratings_per_user=8, seed=1)
    spec = {
        "name": "explicit",
        "datasets": [{"source": str(path)}],
        "victims": [{"name": "als-mf", "params": {"rank": 4, "iterations": 5}}],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "random", "count": 2}],
        "knowledge": [{"kind": "full"}, {"kind": "users", "fraction": 0.5}],
        "detector": {"name": "ttest", "params": {"alpha": 0.05}},
        "retrains": 2,
        "device": "cpu",
        "victim_quality": False,
    }
    run_experiment(spec, tmp_path / "e.db", progress=False)
    report = build_report(tmp_path / "e.db")
    assert set(report["knowledge"]) == {"full", "users 50%"}
    assert {"detector", "fpr", "fnr", "hr_mean_detected"} <= set(report.columns)
    attacked = report[report["attack"] == "random"]
    assert attacked["fpr"].between(0, 1).all() and attacked["fnr"].between(0, 1).all()
    assert (attacked["detector"] == "ttest").all()
    assert report.loc[report["attack"] == "none", "fnr"].isna().all()
    assert (report["rmse"] > 0).all()  # on the hold-out split, clean (none) and poisoned


def test_detector_train_fake_sizes_the_detectors_training_set(planted_csv):
    """``detector_train_fake`` reaches the detection protocol (and the cell key only when set);
    without a detector it is a one-line spec problem."""
    path = planted_csv(n_users=60, ratings_per_user=8, seed=1)
    spec = {
        "name": "detector-training",
        "datasets": [{"source": str(path)}],
        "victims": [{"name": "als-mf", "params": {"rank": 4, "iterations": 5}}],
        "attacks": [{"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "random", "count": 1}],
        "detector": {"name": "ttest"},
        "retrains": 1,
        "device": "cpu",
        "victim_quality": False,
    }
    default = next(c for c in expand_cells(parse_spec(spec)) if c.labels["attack"] == "random")
    assert "detector_train_fake" not in default.config
    cell = next(
        c
        for c in expand_cells(parse_spec({**spec, "detector_train_fake": 12}))
        if c.labels["attack"] == "random"
    )
    assert cell.key != default.key
    outcome = execute_cell(cell.config, "cpu")
    assert [d["n_train_fake"] for d in outcome.info["detector"]] == [12]
    assert execute_cell(default.config, "cpu").info["detector"][0]["n_train_fake"] == 60
    without = {k: v for k, v in spec.items() if k != "detector"}
    with pytest.raises(ConfigError, match=r"detector_train_fake: .* add a `detector:`"):
        parse_spec({**without, "detector_train_fake": 12})


def test_cpu_fits_stack_at_most_a_fixed_number_of_instances_per_step():
    """On a CPU the replicas of one batched fit times the batch size stay within
    CPU_INSTANCES_PER_STEP (the class default batch size when the spec sets none)."""
    neumf = {"name": "neumf", "params": {"batch_size": 2048}}
    assert cells.replicas_per_fit(neumf, "cpu") == cells.CPU_INSTANCES_PER_STEP // 2048 == 32
    assert cells.replicas_per_fit({"name": "neumf", "params": {}}, "cpu") == 64  # batch 256
    assert cells.replicas_per_fit({"name": "gmf", "params": {"batch_size": 2**20}}, "cpu") == 1
    assert cells.replicas_per_fit({"name": "als-mf", "params": {}}, "cpu") == 64  # no batches
