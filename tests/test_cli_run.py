"""`recpoison run`, `report` and `presets`: output, overrides, exit codes and one-line errors."""

import io
import sys

import pandas as pd
import pytest
import yaml

SPEC = {
    "name": "cli-tiny",
    "datasets": [{"source": "PLACEHOLDER", "transforms": ["binarize"]}],
    "victims": [
        {
            "name": "neumf",
            "params": {
                "epochs": 5,
                "layers": [8, 4],
                "embedding_dim": 4,
                "batch_size": 256,
                "lr": 0.01,
            },
        }
    ],
    "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
    "sizes": [0.05, 0.1],
    "targets": [{"type": "random", "count": 4}],
    "retrains": 4,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory, planted_csv):
    folder = tmp_path_factory.mktemp("cli")
    data = planted_csv(n_users=60, ratings_per_user=8)
    spec = {**SPEC, "datasets": [{"source": str(data), "transforms": ["binarize"]}]}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_run_then_report_then_rerun(cli, spec_file, tmp_path):
    store = tmp_path / "r.db"
    run_args = ["run", spec_file, "--store", store, "--quiet"]
    for override in ("retrains=2", "targets.count=2", "sizes=[0.1]", "victims.params.epochs=2"):
        run_args += ["--set", override]
    code, out, err = cli(*run_args)
    assert code == 0, err
    assert "| attack | random 10% |" in out and "| none |" in out and "| random |" in out
    assert "wall time" in out and "3 cells computed" in out
    code, out, _ = cli("report", "--store", str(store), "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    assert set(table["size"]) == {0.1} and (table["n_retrains"] == 2).all()
    assert (table["n_targets"] == 2).all()
    columns = out.splitlines()[0].split(",")
    for column in (
        "dataset",
        "victim",
        "attack",
        "size",
        "target_type",
        "k",
        "hr_mean",
        "hr_se",
        "n_retrains",
        "n_targets",
    ):
        assert column in columns
    code, _, err = cli(
        "report",
        "--store",
        str(store),
        "--format",
        "json",
        "--out",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "plots"),
    )
    assert code == 0 and "wrote" in err
    assert (tmp_path / "r.json").read_text().lstrip().startswith("[")
    assert any(p.stat().st_size > 0 for p in (tmp_path / "plots").glob("hr_vs_size_*.png"))
    code, out, _ = cli(*run_args)
    assert code == 0 and "0 cells computed, 3 already in" in out
    code, out, _ = cli("report", "--store", str(store), "--run", "1", "--run", "2")
    assert code == 0 and "(runs 1, 2, recpoison" in out and "| random |" in out
    code, _, err = cli("report", "--store", str(store), "--run", "1", "--run", "5")
    assert code == 2 and "no run with id 5; its runs: 1, 2" in err


def test_dry_run_lists_the_cells_to_compute_and_writes_nothing(cli, spec_file, tmp_path):
    store = tmp_path / "plan.db"
    small = ["--set", "retrains=1", "--set", "targets.count=1", "--set", "victims.params.epochs=1"]
    code, out, err = cli("run", spec_file, "--store", store, "--dry-run", *small)
    assert code == 0, err
    # the clean victim's quality, none, and random at two sizes
    assert out.count("to compute  ") == 4 and "stored  " not in out
    assert "4 cells, 4 to compute, 0 already in" in out and not store.exists()
    assert (
        cli("run", spec_file, "--store", store, "--quiet", *small, "--set", "sizes=[0.1]")[0] == 0
    )
    before = store.read_bytes()
    code, out, _ = cli("run", spec_file, "--store", store, "--dry-run", *small)
    assert code == 0 and "4 cells, 1 to compute, 3 already in" in out
    assert "to compute  " in out and "random 5.00%" in out.split("stored")[0]
    assert out.count("stored      ") == 3 and store.read_bytes() == before
    code, _, err = cli("run", spec_file, "--store", store, "--dry-run", "--set", "sizes=[2]")
    assert code == 2 and err.count("\n") == 1


def test_presets_list_and_show(cli):
    code, out, _ = cli("presets", "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "quick" in lines and "huang2021-table1" in lines and "10-minute" in lines["quick"]
    code, out, _ = cli("presets", "show", "quick")
    assert code == 0 and yaml.safe_load(out)["name"] == "quick"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "no-such-preset"], "unknown preset or spec file 'no-such-preset'"),
        (["presets", "show", "quik"], "did you mean 'quick'"),
        (["run", "quick", "--set", "retrainz=3"], "unknown key 'retrainz'"),
        (["run", "quick", "--set", "retrains"], "KEY=VALUE"),
        (["run", "quick", "--backend", "ray"], "pip install recpoison[ray]"),
    ],
)
def test_user_errors_exit_2_with_one_line(cli, args, fragment, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    store = ["--store", str(tmp_path / "x.db")] if args[0] == "run" else []
    code, _, err = cli(*args, *store)
    assert code == 2
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_a_store_that_is_not_a_database(cli, tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n" * 100)
    code, _, err = cli("report", "--store", str(notes))
    assert code == 2 and "not a recpoison results store" in err
    assert len(err.strip().splitlines()) == 1
    assert notes.read_text().startswith("not a database")
