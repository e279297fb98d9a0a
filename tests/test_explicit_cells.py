"""Explicit victims in the runner (Li et al. 2016): RMSE / integrity shifts, t-test, no targets."""

import numpy as np
import pytest

from recpoison.errors import ConfigError
from recpoison.experiment import build_report, expand_cells, parse_spec
from recpoison.experiment.plots import write_plots
from recpoison.experiment.report import to_markdown, write_report
from recpoison.experiment.runner import run_experiment

ALS = {"name": "als-mf", "params": {"rank": 3, "iterations": 5}}
FAST = {"n_iter": 2, "fit_iterations": 5, "n_fillers": 5}
EXPLICIT_COLUMNS = [
    "rmse_clean",
    "rmse_poisoned",
    "rmse_shift",
    "prediction_shift",
    "integrity_shift",
    "ttest_p",
]


@pytest.fixture(scope="module")
def csv_path(planted_csv):
    return planted_csv(n_users=60, ratings_per_user=10)


def explicit_spec(csv_path, **changes) -> dict:
    spec = {
        "name": "li-tiny",
        "datasets": [{"source": str(csv_path)}],
        "victims": [ALS],
        "attacks": [
            {"name": "none"},
            {"name": "pga", "label": "pga-av", "params": {"goal": "availability", **FAST}},
            {"name": "sgld", "label": "sgld-in", "params": {"goal": "integrity", **FAST}},
        ],
        "sizes": [0.05, 0.1],
        "targets": [{"type": "random", "count": 2}],
        "retrains": 2,
        "victim_quality": False,
        "device": "cpu",
        "seed": 1,
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def report(csv_path, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "li.db"
    run_experiment(explicit_spec(csv_path), store, progress=False)
    return store, build_report(store)


def test_explicit_columns_are_reported(report):
    _, frame = report
    assert set(EXPLICIT_COLUMNS) <= set(frame.columns)
    baseline = frame[frame["attack"] == "none"]
    assert np.allclose(baseline["rmse_shift"], 0.0)
    assert np.allclose(baseline["integrity_shift"], 0.0)
    assert np.allclose(baseline["prediction_shift"], 0.0)
    assert baseline["ttest_p"].isna().all()
    attacked = frame[frame["attack"] != "none"]
    assert attacked[["rmse_clean", "rmse_poisoned", "integrity_shift"]].notna().all().all()
    assert (attacked["prediction_shift"] > 0).all()  # fake users move unrated predictions
    assert np.allclose(
        attacked["rmse_shift"], attacked["rmse_poisoned"] - attacked["rmse_clean"], atol=1e-9
    )
    # the clean victim of an attack cell is the none cell's victim (same seeds, same data)
    assert np.allclose(attacked["rmse_clean"], baseline["rmse_clean"].iloc[0])
    assert ((attacked["ttest_p"] >= 0) & (attacked["ttest_p"] <= 1)).all()
    assert attacked["hr_mean"].notna().all()


def test_report_renders_explicit_tables_and_plots(report, tmp_path):
    _, frame = report
    text = to_markdown(frame)
    assert "RMSE shift" in text and "Integrity shift" in text and "t-test" in text
    for fmt in ("csv", "json"):
        assert "rmse_shift" in write_report(frame, fmt)
    names = {p.name.split("_vs_")[0] for p in write_plots(frame, tmp_path)}
    assert {"rmse_shift", "integrity_shift", "hr"} <= names


def test_availability_attack_runs_without_targets(csv_path, tmp_path):
    spec = explicit_spec(
        csv_path,
        attacks=[{"name": "none"}, {"name": "pga", "params": FAST}],  # default goal
        sizes=[0.1],
        targets=[{"type": "none"}],
        retrains=1,
    )
    assert len(expand_cells(parse_spec(spec))) == 2
    run_experiment(spec, tmp_path / "s.db", progress=False)
    frame = build_report(tmp_path / "s.db")
    assert frame["hr_mean"].isna().all()
    attacked = frame[frame["attack"] == "pga"].iloc[0]
    assert np.isfinite(attacked["rmse_shift"]) and np.isfinite(attacked["ttest_p"])
    assert np.isnan(attacked["integrity_shift"]) and attacked["prediction_shift"] > 0
    assert "RMSE shift" in to_markdown(frame) and "Availability: RMS change" in to_markdown(frame)


@pytest.mark.parametrize(
    "attack",
    [
        {"name": "pga", "params": {"goal": "integrity"}},
        {"name": "sgld", "params": {"goal": "hybrid"}},
        {"name": "random"},
    ],
)
def test_targetless_set_needs_availability_attacks(csv_path, attack):
    spec = explicit_spec(csv_path, attacks=[{"name": "none"}, attack], targets=[{"type": "none"}])
    with pytest.raises(ConfigError, match=r"needs target items.*type 'none'"):
        parse_spec(spec)
