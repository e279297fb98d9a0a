"""``recpoison detect`` end to end on a small poisoned CSV."""

import json

import numpy as np
import pandas as pd
import pytest

from recpoison.attacks import make_attack
from recpoison.data import planted


@pytest.fixture(scope="module")
def poisoned_csv(tmp_path_factory):
    """200 planted users (15 ratings each) + 10 random-attack users (14 fillers + the target),
    written as user,item,rating,timestamp,is_fake."""
    clean = planted(n_users=200, n_items=120, ratings_per_user=15, random_state=4)
    profiles = make_attack("random", n_fillers=14).generate(
        clean, np.array([7]), 10, random_state=2
    )
    path = tmp_path_factory.mktemp("detect") / "poisoned.csv"
    clean.with_fake_users(profiles).to_frame().to_csv(path, index=False)
    return path


def test_detect_json_reports_rates_and_writes_cleaned_data(cli, poisoned_csv, tmp_path):
    out = tmp_path / "cleaned.csv"
    code, printed, _ = cli(
        "detect",
        poisoned_csv,
        "--detector",
        "svm-tia",
        "--train-fake",
        60,
        "--param",
        "tau=5",
        "--seed",
        0,
        "--out",
        out,
        "--json",
    )
    assert code == 0
    summary = json.loads(printed)
    assert summary["users"] == 210 and summary["fake"] == 10
    assert summary["train_fillers"] == 14  # median profile length 15, minus the target
    # the rates account for every flagged user: FPR * 200 normal + (1 - FNR) * 10 fake
    caught = round((1 - summary["fnr"]) * 10)
    assert round(summary["fpr"] * 200) + caught == summary["flagged"]
    assert caught >= 7  # detection quality itself is tested in test_detectors.py
    cleaned = pd.read_csv(out)
    assert cleaned["user"].nunique() == 210 - summary["flagged"]
    assert cleaned.groupby("user")["is_fake"].first().sum() == 10 - caught


def test_detect_without_fake_column_reports_no_rates(cli, poisoned_csv, tmp_path):
    unlabeled = tmp_path / "unlabeled.csv"
    pd.read_csv(poisoned_csv).drop(columns="is_fake").to_csv(unlabeled, index=False)
    code, printed, _ = cli("detect", unlabeled, "--detector", "ttest", "--json")
    assert code == 0
    summary = json.loads(printed)
    assert summary["fake"] is None and summary["fpr"] is None and summary["fnr"] is None
    assert 0 < summary["flagged"] < summary["users"] == 210


def test_detect_prints_a_human_summary(cli, poisoned_csv):
    code, text, _ = cli("detect", poisoned_csv, "--detector", "ttest")
    assert code == 0
    assert "210 users (10 marked fake); ttest flagged" in text and "FNR" in text


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("a,b\n", "no ratings"),
        (
            "user,item,rating,is_fake\n1,1,5,False\n1,2,3,True\n2,1,4,False\n",
            "is_fake true and false",
        ),
        ("user,item,rating,is_fake\n1,1,5,maybe\n", "is_fake must be"),
    ],
)
def test_bad_file_exits_with_code_2(cli, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    code, _, err = cli("detect", path, "--json")
    assert code == 2
    assert message in err and err.count("\n") == 1
