"""Detection presets and `victim_data: binarized` (detector on ratings, NeuMF on binarized)."""

import numpy as np
import pytest

from recpoison.errors import ConfigError
from recpoison.experiment import build_report, expand_cells, parse_spec
from recpoison.experiment.report import to_markdown
from recpoison.experiment.runner import run_experiment
from recpoison.presets import load_preset, preset_text

NEUMF = {
    "name": "neumf",
    "params": {"epochs": 1, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}


@pytest.mark.parametrize("name", ["huang2021-detection", "fang2020-detection"])
def test_detection_presets_validate(name):
    spec = parse_spec(load_preset(name))
    assert spec.detector is not None
    assert not any(d.binarized for d in spec.datasets)  # the detector needs the ratings
    assert expand_cells(spec)


def test_huang_detection_binarizes_for_the_victim_only():
    spec = parse_spec(load_preset("huang2021-detection"))
    assert spec.victim_data == "binarized" and spec.detector.name == "svm-tia"
    assert {a.name for a in spec.attacks} == {"none", "random", "bandwagon", "mf", "poison-model"}
    assert spec.sizes == [0.005, 0.01, 0.03, 0.05]
    assert all(c.config["victim_data"] == "binarized" for c in expand_cells(spec))
    assert "S-attack" in preset_text("fang2020-detection")


def test_default_victim_data_keeps_cell_configs():
    spec = parse_spec(load_preset("quick"))
    assert all("victim_data" not in c.config for c in expand_cells(spec))


@pytest.fixture(scope="module")
def csv_path(planted_csv):
    return planted_csv(n_users=80, ratings_per_user=10)


def tiny_spec(csv_path, **changes) -> dict:
    spec = {
        "name": "detect-tiny",
        "datasets": [{"source": str(csv_path)}],
        "victim_data": "binarized",
        "victims": [NEUMF],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.1],
        "targets": [{"type": "random", "count": 1}],
        "detector": {"name": "svm-tia", "params": {"tau": 2, "cv": 2}},
        "retrains": 1,
        "victim_quality": False,
        "device": "cpu",
        "seed": 0,
    }
    spec.update(changes)
    return spec


def test_binarized_victim_with_explicit_detector_runs(csv_path, tmp_path):
    run_experiment(tiny_spec(csv_path), tmp_path / "d.db", progress=False)
    frame = build_report(tmp_path / "d.db")
    attacked = frame[frame["attack"] == "random"].iloc[0]
    assert 0 <= attacked["fpr"] <= 1 and 0 <= attacked["fnr"] <= 1
    assert np.isfinite(attacked["hr_mean"]) and np.isfinite(attacked["hr_mean_detected"])
    assert "rmse" not in frame.columns  # the victim is implicit: no RMSE
    text = to_markdown(frame)
    assert "FPR of svm-tia" in text and "FNR of svm-tia" in text
    assert "FPR / FNR of svm-tia" in text  # Huang Table VIII: FPR and FNR side by side


def test_victim_data_binarized_errors(csv_path):
    with pytest.raises(ConfigError, match="victim_data is 'binarized'"):
        parse_spec(tiny_spec(csv_path, victims=[{"name": "als-mf"}]))
    binarized = [{"source": str(csv_path), "transforms": ["binarize"]}]
    with pytest.raises(ConfigError, match="remove `binarize`"):
        parse_spec(tiny_spec(csv_path, datasets=binarized))
