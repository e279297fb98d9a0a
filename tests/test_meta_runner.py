"""Meta-gradient attacks in the runner's untargeted protocol (spec -> cells -> store -> report)."""

import numpy as np
import pytest

from recpoison.data import planted
from recpoison.experiment import build_report, run_experiment


@pytest.fixture
def csv_path(tmp_path, monkeypatch):
    data = planted(60, 40, n_factors=3, ratings_per_user=8, rating_scale=None, random_state=0)
    data.to_frame().to_csv(tmp_path / "tiny.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return "tiny.csv"


def test_meta_attacks_run_as_untargeted_cells(csv_path, tmp_path):
    fast = {"steps": 5, "flips_per_step": 20}
    spec = {
        "name": "meta-cells",
        "datasets": [{"source": csv_path, "transforms": ["binarize"]}],
        "victims": [{"name": "gmf", "params": {"epochs": 5, "lr": 0.01}}],
        "attacks": [
            {"name": "none"},
            {"name": "meta", "params": fast},
            {"name": "meta-new-users", "params": {**fast, "new_users": 3}},
        ],
        "sizes": [0.1],
        "targets": [{"type": "none"}],
        "retrains": 2,
        "victim_quality": False,
        "device": "cpu",
        "seed": 0,
    }
    run_experiment(spec, tmp_path / "store.db", progress=False)
    report = build_report(tmp_path / "store.db")
    for name in ("meta", "meta-new-users"):
        row = report[report["attack"] == name].iloc[0]
        for metric in ("train_accuracy", "train_auroc", "unseen_accuracy", "unseen_auroc"):
            assert np.isfinite(row[f"{metric}_drop"]), (name, metric)
