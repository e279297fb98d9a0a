"""Reports from a store filled with known numbers: statistics, shapes, exports and plots."""

import json

import numpy as np
import pandas as pd
import pytest

from recpoison.errors import ConfigError, DataError
from recpoison.experiment import (
    Store,
    build_report,
    expand_cells,
    parse_spec,
    quality_report,
    to_markdown,
    write_plots,
    write_report,
)
from recpoison.experiment.expansion import CellOutcome
from recpoison.experiment.report import DIMENSIONS, run_title

SPEC = {
    "name": "fake",
    "datasets": [{"source": "ml-latest-small", "transforms": ["binarize"]}],
    "victims": [{"name": "neumf"}],
    "attacks": [{"name": "none"}, {"name": "random"}, {"name": "bandwagon"}],
    "sizes": [0.01, 0.03],
    "targets": [{"type": "random", "count": 2}, {"type": "unpopular", "count": 2}],
    "retrains": 3,
    "ks": [5, 10],
    "detector": {"name": "ttest"},
}
MULTIPLIER = {
    ("none", 0.0): 1,
    ("random", 0.01): 2,
    ("random", 0.03): 3,
    ("bandwagon", 0.01): 4,
    ("bandwagon", 0.03): 5,
}


def fabricate(cell) -> CellOutcome:
    """hits = (t + 1)(r + 1) m with m = (k / 5) x multiplier, 100 eligible users per target.

    Per target the retrain mean is 2 (t + 1) m / 100, so over targets t = 0, 1:
    mean = 3 m / 100 and SE = std([2m, 4m]) / sqrt(2) / 100 = m / 100.
    """
    if cell.kind == "quality":
        rows = [
            {"retrain": r, "k": 10, "hr": 0.5 + 0.1 * r, "ndcg": 0.3, "users": 60, "negatives": 99}
            for r in range(3)
        ]
        return CellOutcome(cell.key, quality=rows)
    attack, size = cell.labels["attack"], cell.labels["size"]
    results = []
    for t in range(2):
        for r in range(3):
            for k in (5, 10):
                m = k // 5 * MULTIPLIER[attack, size]
                row = {
                    "target_index": t,
                    "target_id": str(10 + t),
                    "target_type": cell.config["targets"]["type"],
                    "retrain": r,
                    "k": k,
                    "eligible": 100,
                    "hits": (t + 1) * (r + 1) * m,
                    "hr": (t + 1) * (r + 1) * m / 100,
                }
                if attack != "none":
                    row.update(
                        eligible_detected=90,
                        hits_detected=0,
                        hr_detected=0.0,
                        fpr=0.1 * (t + 1),
                        fnr=0.2,
                    )
                results.append(row)
    info = {"n_fake": 0 if attack == "none" else round(size * 600)}
    if attack == "bandwagon":
        trace = [  # two steps; the kept round of the last one reached 0.4 and 0.2
            {"hr": [0.0, 0.1], "chosen_round": 1},
            {"hr": [0.0, 0.4, 0.3], "chosen_round": 1},
        ]
        info["attack"] = [
            {"surrogate_hr": {"k": 10, "before": 0.01, "after": 0.05}, "trace": trace},
            {
                "surrogate_hr": {"k": 10, "before": 0.01, "after": 0.07},
                "trace": [{"hr": [0.0, 0.1, 0.2], "chosen_round": 2}],
            },
        ]
    return CellOutcome(cell.key, results=results, info=info, seconds=1.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_of_runs):
    return store_of_runs(tmp_path_factory.mktemp("report") / "fake.db", [SPEC], fabricate)


@pytest.fixture(scope="module")
def report(store) -> pd.DataFrame:
    return build_report(store)


def test_report_shape_and_columns(report):
    assert len(report) == 3 * 2 * 2 * 2  # attacks x target types x sizes x ks
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
        "surrogate_hr",
        "detector",
        "fpr",
        "fnr",
        "hr_mean_detected",
    ):
        assert column in report.columns
    assert list(report["attack"].unique()) == ["none", "random", "bandwagon"]
    assert (report["n_retrains"] == 3).all() and (report["n_targets"] == 2).all()


def test_mean_and_standard_error_over_targets(report):
    for row in report.itertuples():
        m = row.k // 5 * MULTIPLIER[row.attack, 0.0 if row.attack == "none" else row.size]
        assert row.hr_mean == pytest.approx(3 * m / 100)
        assert row.hr_se == pytest.approx(m / 100)


def test_baseline_is_repeated_in_every_size_column(report):
    none = report[report["attack"] == "none"]
    assert sorted(none["size"].unique()) == [0.01, 0.03]
    by_size = none.pivot_table(index=["target_type", "k"], columns="size", values="hr_mean")
    assert (by_size[0.01] == by_size[0.03]).all()
    assert none["fnr"].isna().all()


def test_detection_and_surrogate_columns(report):
    attacked = report[report["attack"] != "none"]
    assert attacked["fpr"].to_numpy() == pytest.approx(0.15)
    assert attacked["fnr"].to_numpy() == pytest.approx(0.2)
    assert (attacked["hr_mean_detected"] == 0).all() and (attacked["detector"] == "ttest").all()
    surrogate = report.set_index("attack")["surrogate_hr"]
    assert surrogate["bandwagon"].to_numpy() == pytest.approx(0.06)
    assert surrogate[["none", "random"]].isna().all()
    poisoned = report.set_index("attack")["surrogate_hr_poisoned"]
    assert poisoned["bandwagon"].to_numpy() == pytest.approx(0.3)
    assert poisoned[["none", "random"]].isna().all()
    text = to_markdown(report)
    assert "poison-trained surrogate reached" in text and "| bandwagon | 0.3000 |" in text


def test_csv_and_json_exports(report, tmp_path):
    write_report(report, "csv", tmp_path / "r.csv")
    back = pd.read_csv(tmp_path / "r.csv")
    assert list(back.columns) == list(report.columns) and len(back) == len(report)
    records = json.loads(write_report(report, "json", tmp_path / "r.json"))
    assert isinstance(records, list) and len(records) == len(report)
    assert records[0]["attack"] == "none" and "hr_se" in records[0]


def test_markdown_is_shaped_like_the_paper(report, store):
    text = to_markdown(report, quality_report(store), "fake")
    assert "| attack | random 1% | random 3% | unpopular 1% | unpopular 3% |" in text
    assert "HR_t@10" in text and "HR_t@5" in text and "FNR of ttest" in text
    none_line = next(line for line in text.splitlines() if line.startswith("| none |"))
    assert none_line.count("±") == 4
    assert "| ml-latest-small | neumf | 0.6000 ± 0.0577 | 0.3000" in text


def test_markdown_columns_follow_the_sizes_whatever_the_row_order(report):
    shuffled = report.iloc[::-1].reset_index(drop=True)
    text = to_markdown(shuffled)
    assert "| attack | unpopular 1% | unpopular 3% | random 1% | random 3% |" in text


def test_quality_report(store):
    quality = quality_report(store)
    assert len(quality) == 1
    assert quality.loc[0, "hr"] == pytest.approx(0.6)
    assert quality.loc[0, "hr_se"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1) / np.sqrt(3))


def test_plots_are_written(report, tmp_path):
    files = write_plots(report, tmp_path / "plots")
    names = {f.name.split("_ml")[0] for f in files}
    assert names == {"hr_vs_size", "hr_vs_k", "fnr_by_attack"}
    for file in files:
        assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and file.stat().st_size > 1000


def test_unfinished_run_and_empty_store(tmp_path):
    spec = parse_spec(SPEC)
    cells = expand_cells(spec)
    with Store.open(tmp_path / "partial.db") as db:
        run = db.start_run(spec.name, spec.to_json(), cells)
        for cell in cells[:2]:  # quality + the first baseline
            db.write_cell(cell, fabricate(cell), run)
    partial = build_report(tmp_path / "partial.db")
    assert set(partial["attack"]) == {"none"} and len(partial) == 2
    Store.open(tmp_path / "empty.db").close()
    with pytest.raises(DataError, match="holds no run"):
        build_report(tmp_path / "empty.db")


# -- several runs of one experiment -----------------------------------------------------------
def test_runs_filling_one_grid_piece_by_piece_report_as_the_whole_grid(
    report, tmp_path, store_of_runs
):
    """The README's way of running a grid in pieces (one process per target type, one per
    attack) on one store: reported together they give exactly the one-run report."""
    random_half = {**SPEC, "targets": [SPEC["targets"][0]]}
    unpopular_half = {**SPEC, "targets": [SPEC["targets"][1]], "attacks": SPEC["attacks"][:2]}
    bandwagon_only = {**unpopular_half, "attacks": [{"name": "bandwagon"}]}
    path = store_of_runs(
        tmp_path / "pieces.db", [random_half, unpopular_half, bandwagon_only], fabricate
    )
    assert set(build_report(path)["attack"]) == {"none", "bandwagon"}  # the latest run alone
    merged = build_report(path, [1, 2, 3])
    pd.testing.assert_frame_equal(
        merged.sort_values(list(DIMENSIONS)).reset_index(drop=True),
        report.sort_values(list(DIMENSIONS)).reset_index(drop=True),
    )
    assert len(quality_report(path, [1, 2, 3])) == 1  # the shared clean-victim cell once
    assert run_title(path, [1, 3]) == "fake (runs 1, 3, recpoison 0.1.0)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "other"}, r"runs 1 and 2 are of different experiments \(fake, other\)"),
        ({"retrains": 5}, "runs 1 and 2 differ in retrains: their cells are not comparable"),
        (
            {"attacks": [{"name": "random", "params": {"n_fillers": 5}}]},
            "runs 1 and 2 both have attacks entry 'random' with different settings",
        ),
    ],
)
def test_runs_of_different_experiments_are_not_reported_together(
    tmp_path, store_of_runs, change, message
):
    path = store_of_runs(tmp_path / "mixed.db", [SPEC, {**SPEC, **change}], fabricate)
    with pytest.raises(ConfigError, match=message):
        build_report(path, [1, 2])
    assert len(build_report(path, [1])) == len(build_report(path, 1))  # each alone still works
    with pytest.raises(DataError, match="no run with id 7; its runs: 1, 2"):
        build_report(path, [1, 7])
