"""The untargeted (edge-flip) protocol of Aravind's thesis in the runner: split, budget,
accuracy / AUROC / BCE, drops from the clean victim, reports, and the spec checks."""

import json
import sqlite3

import numpy as np
import pytest

from recpoison.data import planted
from recpoison.errors import ConfigError
from recpoison.experiment import build_report, expand_cells, parse_spec, run_experiment
from recpoison.experiment.measures.untargeted import edge_metrics, edge_split
from recpoison.experiment.plots import write_plots
from recpoison.experiment.report import to_markdown, write_report
from recpoison.experiment.report_measures import crossed_standard_error, standard_error
from recpoison.presets import load_preset

GMF = {"name": "gmf", "params": {"epochs": 20, "embedding_dim": 8, "batch_size": 256, "lr": 0.01}}


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    """A relative path (the source is part of every seed), valid while the module runs."""
    folder = tmp_path_factory.mktemp("edges")
    data = planted(120, 60, n_factors=3, ratings_per_user=12, rating_scale=None, random_state=0)
    data.to_frame().to_csv(folder / "edges.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield "edges.csv"


def edge_spec(csv_path, **changes) -> dict:
    spec = {
        "name": "edges",
        "datasets": [{"source": str(csv_path), "transforms": ["binarize"]}],
        "victims": [GMF],
        "attacks": [{"name": "none"}, {"name": "random-edges"}],
        "sizes": [1.0],
        "targets": [{"type": "none"}],
        "retrains": 3,
        "victim_quality": False,
        "device": "cpu",
        "seed": 0,
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def stored(csv_path, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "edges.db"
    run_experiment(edge_spec(csv_path), store, progress=False)
    return store, build_report(store)


def test_random_edges_lower_accuracy_and_auroc_against_no_attack(stored):
    _, report = stored
    attacked = report[report["attack"] == "random-edges"].iloc[0]
    for metric in ("train_accuracy", "train_auroc"):
        drop, se = attacked[f"{metric}_drop"], attacked[f"{metric}_drop_se"]
        assert drop > 3 * se and drop > 0.01, metric
    assert attacked["unseen_auroc_drop"] > 0
    assert attacked["train_loss_drop"] < 0  # the training loss rises
    assert np.isclose(
        attacked["train_accuracy_drop"],
        report.loc[report["attack"] == "none", "train_accuracy"].iloc[0]
        - attacked["train_accuracy"],
    )
    clean = report[report["attack"] == "none"].iloc[0]
    assert clean["train_accuracy_drop"] == 0 and clean["n_fake"] == 0


def test_cells_store_the_budget_and_per_retrain_metrics(stored):
    store, _ = stored
    rows = sqlite3.connect(store).execute(
        "SELECT config_json, info_json FROM cells WHERE kind = 'attack'"
    )
    infos = {json.loads(c)["attack"]["name"]: json.loads(i) for c, i in rows}
    attacked, clean = infos["random-edges"], infos["none"]
    negatives = attacked["untargeted"]["n_negatives"]
    assert attacked["n_fake"] == negatives  # size 1.0 of the sampled negatives
    assert len(attacked["untargeted"]["train_accuracy"]) == 3
    assert clean["untargeted"]["n_train_edges"] == 2 * negatives  # as many negatives as positives
    assert attacked["untargeted"]["n_train_edges"] < clean["untargeted"]["n_train_edges"]


def test_report_renders_thesis_shaped_tables_csv_and_plot(stored, tmp_path):
    _, report = stored
    text = to_markdown(report)
    assert "Accuracy (%) on training edges" in text and "Loss (BCE)" in text
    assert "| N_p | N_p (% of sampled negatives) | random-edges |" in text
    assert "| 0 | 0% |" in text and "HR_t" not in text
    assert "train_accuracy_drop" in write_report(report, "csv")
    assert [p.name for p in write_plots(report, tmp_path)] == [
        "accuracy_vs_perturbations_edges.csv_gmf.png"
    ]


def test_edge_split_is_leak_free(tiny_implicit):
    split = edge_split(tiny_implicit, 1.0, seed=0)
    n = tiny_implicit.n_items
    full = set((tiny_implicit.matrix.nonzero()[0] * n + tiny_implicit.matrix.nonzero()[1]).tolist())
    train, unseen = split.train_edges, split.unseen_edges
    train_keys = train.users * n + train.items
    unseen_keys = unseen.users * n + unseen.items
    assert not set(train_keys[train.labels == 0]) & full
    assert not set(unseen_keys[unseen.labels == 0]) & full
    assert not set(train_keys) & set(unseen_keys)
    assert (train.labels == 1).sum() == (train.labels == 0).sum() == split.train.n_ratings
    assert (unseen.labels == 1).sum() == (split.test_items >= 0).sum()
    assert split.n_negatives == split.train.n_ratings
    again = edge_split(tiny_implicit, 1.0, seed=0)
    assert np.array_equal(again.train_edges.items, train.items)


def test_edge_metrics_by_hand():
    logits = np.array([[2.0, -1.0, 0.5, -3.0], [-2.0, 1.0, 0.5, 3.0]])
    labels = np.array([1, 0, 0, 0], dtype=np.int8)
    out = edge_metrics(logits, labels)
    assert out["accuracy"].tolist() == [0.75, 0.0]
    assert out["auroc"].tolist() == [1.0, 0.0]
    y = labels[None].astype(float)
    p = 1 / (1 + np.exp(-logits))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    assert np.allclose(out["loss"], bce)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"targets": [{"type": "random", "count": 2}]}, r"targets.0: edge attacks are untargeted"),
        ({"detector": {"name": "ttest"}}, r"detector: edge attacks add no fake profiles"),
        ({"knowledge": [{"kind": "users", "fraction": 0.5}]}, r"knowledge.0: the edge attacker"),
        ({"n_fillers": [5]}, "n_fillers: edge attacks have no filler items"),
        (
            {"attacks": [{"name": "none"}, {"name": "random-edges"}, {"name": "random"}]},
            r"attacks.2: random needs target items",
        ),
        (
            {
                "attacks": [{"name": "random-edges"}, {"name": "pga"}],
                "datasets": [{"source": "x.csv"}],
            },
            r"attacks.1: pga crafts fake profiles.*separate spec",
        ),
        ({"victims": [{"name": "als-mf"}]}, r"victims.0: the untargeted protocol reads scores"),
        ({"attacks": [{"name": "random-edges", "params": {"n_fillers": 3}}]}, "no parameter"),
    ],
)
def test_spec_refuses_what_edge_attacks_cannot_measure(csv_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(edge_spec(csv_path, **changes))


def test_only_untargeted_specs_change_cell_configs(csv_path):
    cells = expand_cells(parse_spec(edge_spec(csv_path)))
    assert {c.config["protocol"] for c in cells} == {"untargeted"}
    assert {c.config["negative_ratio"] for c in cells} == {1.0}


def test_aravind_thesis_preset_validates_with_the_meta_attacks():
    spec = parse_spec(load_preset("aravind-thesis"))
    assert spec.sizes == [0.02, 0.04, 0.06, 0.08, 0.1]
    assert [v.name for v in spec.victims] == ["gmf"] and spec.targets[0].type == "none"
    assert {a.display for a in spec.attacks} == {
        "none",
        "random-edges",
        "random-edges-new-users",
        "meta",
        "meta-approx",
        "meta-new-users",
        "meta-similar-users",
    }
    assert {c.config["protocol"] for c in expand_cells(spec) if c.kind == "attack"} == {
        "untargeted"
    }


# -- attack_draws: an edge cell draws its attack several times, retrains each draw with the clean
# victim's seeds, and the report's standard errors cover the attack's randomness (draws x seeds)
@pytest.fixture(scope="module")
def drawn(csv_path, stored, tmp_path_factory):
    """The stores of the same spec with one attack draw and with three."""
    three = tmp_path_factory.mktemp("draws") / "three.db"
    run_experiment(edge_spec(csv_path, attack_draws=3), three, progress=False)
    return stored[0], three


def infos(store):
    rows = sqlite3.connect(store).execute("SELECT config_json, info_json FROM cells")
    return {json.loads(c)["attack"]["name"]: json.loads(i) for c, i in rows}


def test_draw_zero_is_the_single_draw_cell_and_the_other_draws_differ(drawn):
    one, three = drawn
    single, drawn = infos(one)["random-edges"]["untargeted"], infos(three)["random-edges"]
    assert drawn["untargeted"]["draws"] == 3
    accuracy = np.asarray(drawn["untargeted"]["train_accuracy"]).reshape(3, 3)
    np.testing.assert_allclose(accuracy[0], single["train_accuracy"])  # batched with the others
    assert not np.allclose(accuracy[1], accuracy[0]) and not np.allclose(accuracy[2], accuracy[0])
    assert len(drawn["attack"]) == 3 and len(drawn["untargeted"]["n_train_edges"]) == 3
    assert infos(three)["none"] == infos(one)["none"]  # the clean victim is not drawn


def test_the_clean_cell_keeps_its_key_and_only_attack_cells_hold_the_draws(csv_path):
    plain, drawn = (
        {c.labels["attack"]: c.key for c in expand_cells(parse_spec(edge_spec(csv_path, **draws)))}
        for draws in ({}, {"attack_draws": 3})
    )
    assert plain["none"] == drawn["none"] and plain["random-edges"] != drawn["random-edges"]


def test_the_report_averages_every_draw_and_its_error_covers_them(drawn):
    one, three = drawn
    single = build_report(one).set_index("attack").loc["random-edges"]
    drawn = build_report(three).set_index("attack").loc["random-edges"]
    assert single["attack_draws"] == 1 and drawn["attack_draws"] == 3
    values = np.asarray(infos(three)["random-edges"]["untargeted"]["train_accuracy"])
    assert drawn["train_accuracy"] == pytest.approx(values.mean())
    assert drawn["train_accuracy_se"] == pytest.approx(crossed_standard_error(values.reshape(3, 3)))
    clean = np.asarray(infos(three)["none"]["untargeted"]["train_accuracy"])
    drops = clean[None, :] - values.reshape(3, 3)
    assert drawn["train_accuracy_drop"] == pytest.approx(drops.mean())
    assert drawn["train_accuracy_drop_se"] == pytest.approx(crossed_standard_error(drops))
    assert drawn["train_accuracy_drop_se"] > 0
    one_draw = infos(one)["random-edges"]["untargeted"]["train_accuracy"]
    assert single["train_accuracy_se"] == pytest.approx(standard_error(np.asarray(one_draw)))
    assert "Each attack drawn 3 times" in to_markdown(build_report(three))
    assert "Each attack drawn" not in to_markdown(build_report(one))


def test_crossed_standard_error_matches_the_spread_of_the_mean_across_experiments():
    rng = np.random.default_rng(0)
    n_draws, n_seeds, trials = 4, 5, 4000
    draw, seed, noise = 1.0, 0.5, 0.3  # the standard deviations of a_d, b_r, e_dr
    x = (
        rng.normal(0, draw, (trials, n_draws, 1))
        + rng.normal(0, seed, (trials, 1, n_seeds))
        + rng.normal(0, noise, (trials, n_draws, n_seeds))
    )
    truth = np.sqrt(draw**2 / n_draws + seed**2 / n_seeds + noise**2 / (n_draws * n_seeds))
    assert x.mean(axis=(1, 2)).std() == pytest.approx(truth, rel=0.05)
    estimated = np.sqrt(np.mean([crossed_standard_error(t) ** 2 for t in x]))
    assert estimated == pytest.approx(truth, rel=0.05)
    naive = np.sqrt(np.mean([standard_error(t.ravel()) ** 2 for t in x]))
    assert naive < 0.6 * truth  # treating the 20 values as independent understates it


def test_crossed_standard_error_edge_cases():
    column = np.array([[0.1], [0.4], [0.2]])
    assert crossed_standard_error(column) == pytest.approx(standard_error(column[:, 0]))
    with_nan = np.array([[0.1, 0.2], [np.nan, 0.3], [0.3, 0.5]])
    assert crossed_standard_error(with_nan) == pytest.approx(
        crossed_standard_error(with_nan[[0, 2]])
    )
    assert np.isnan(crossed_standard_error(np.array([[0.1, 0.2]])))
    constant = np.full((3, 4), 0.5)
    assert crossed_standard_error(constant) == 0


def test_attack_draws_is_refused_for_targeted_attacks(planted_csv):
    spec = {
        "name": "targeted",
        "datasets": [{"source": str(planted_csv())}],
        "victims": [{"name": "als-mf"}],
        "attacks": [{"name": "random"}],
        "sizes": [0.05],
        "targets": [{"type": "random", "count": 2}],
        "attack_draws": 2,
    }
    with pytest.raises(ConfigError, match="attack_draws: only edge attacks"):
        parse_spec(spec)
