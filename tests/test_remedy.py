"""Remedies after detection: `remedy: {name: retrain}` in the spec."""

import json
import sqlite3

import pytest

from recpoison.errors import ConfigError
from recpoison.experiment import build_report, parse_spec, run_experiment
from recpoison.experiment.report import to_markdown

GMF = {"name": "gmf", "params": {"epochs": 2, "embedding_dim": 4}}


@pytest.fixture(scope="module")
def csv_path(planted_csv):
    return planted_csv(n_users=60, ratings_per_user=8)


def detection_spec(csv_path, **changes) -> dict:
    spec = {
        "name": "remedy",
        "datasets": [{"source": str(csv_path)}],
        "victim_data": "binarized",
        "victims": [GMF],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "random", "count": 2}],
        "detector": {"name": "ttest", "params": {"alpha": 0.05}},
        "retrains": 2,
        "victim_quality": False,
        "device": "cpu",
        "seed": 3,
    }
    spec.update(changes)
    return spec


def test_retrain_remedy_records_cost_and_quality_and_keeps_hr(csv_path, tmp_path):
    run_experiment(detection_spec(csv_path), tmp_path / "a.db", progress=False)
    spec = detection_spec(csv_path, remedy={"name": "retrain"})
    run_experiment(spec, tmp_path / "b.db", progress=False)
    implicit, explicit = build_report(tmp_path / "a.db"), build_report(tmp_path / "b.db")
    assert implicit["hr_mean_detected"].equals(explicit["hr_mean_detected"])  # same retrain
    assert "remedy_seconds" not in implicit.columns
    attacked = explicit[explicit["attack"] == "random"].iloc[0]
    assert attacked["remedy"] == "retrain" and attacked["remedy_seconds"] > 0
    assert 0 < attacked["remedy_hr"] <= 1 and 0 < attacked["remedy_ndcg"] <= attacked["remedy_hr"]
    (info,) = sqlite3.connect(tmp_path / "b.db").execute(
        "SELECT info_json FROM cells WHERE config_json LIKE '%\"remedy\"%'"
    )
    remedy = json.loads(info[0])["remedy"]
    assert len(remedy["quality"]) == 2  # one per poisoned dataset (target)
    assert [row["retrain"] for row in remedy["quality"][0]] == [0, 1]
    assert "after detection: remedy" in to_markdown(explicit)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"remedy": {"name": "retrain"}, "detector": None}, "add a `detector:`"),
        ({"remedy": {"name": "retrian"}}, "did you mean 'retrain'"),
        ({"remedy": {"name": "retrain", "params": {"shards": 4}}}, "no parameter 'shards'"),
    ],
)
def test_remedy_spec_errors(csv_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(detection_spec(csv_path, **changes))
