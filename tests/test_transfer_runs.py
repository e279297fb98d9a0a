"""Attacks against the implicit victims: their effect, the runner and the CLI with several
victims facing the same fake users (a spec-level surrogate), and the transfer-zoo preset."""

import io

import numpy as np
import pandas as pd
import pytest
import yaml

from recpoison.attacks import make_attack
from recpoison.experiment import expand_cells, parse_spec
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.runner import run_experiment
from recpoison.metrics import target_hit_ratio
from recpoison.presets import load_preset
from recpoison.victims import make_victim

pytest.importorskip("implicit")

TINY_NEUMF = {
    "name": "neumf",
    "params": {"epochs": 2, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}


@pytest.mark.parametrize(
    ("victim", "params", "attack", "attack_params"),
    [
        ("implicit-als", {"factors": 16}, "random", {"n_fillers": 10}),
        ("implicit-lmf", {}, "random", {"n_fillers": 10}),
        # item-item neighbours ignore random fillers here; fillers shared by every fake user
        # (the control of the table1 run: bandwagon with only popular fillers) reach them
        (
            "implicit-bm25",
            {},
            "bandwagon",
            {"n_fillers": 5, "popular_share": 1.0, "popular_fraction": 0.03},
        ),
    ],
)
def test_fake_users_lift_the_target_of_implicit_victims(
    effect_setup, victim, params, attack, attack_params
):
    data, target, _, _ = effect_setup

    def hit_ratio(train):
        model = make_victim(victim, **params, n_replicas=3, random_state=1, device="cpu")
        return target_hit_ratio(model.fit(train), train, [target]).mean(10)

    fake = make_attack(attack, **attack_params).generate(data, [target], 12, random_state=0)
    clean, attacked = hit_ratio(data), hit_ratio(data.with_fake_users(fake))
    assert attacked > clean + 0.02


def zoo_spec(csv) -> dict:
    return {
        "name": "zoo-tiny",
        "datasets": [{"source": str(csv), "transforms": ["binarize"]}],
        "victims": [
            TINY_NEUMF,
            {"name": "implicit-als", "params": {"factors": 8}},
            {"name": "implicit-bm25"},
        ],
        "surrogate": {**TINY_NEUMF, "label": "neumf-surrogate"},
        "attacks": [
            {"name": "none"},
            {"name": "random", "params": {"n_fillers": 5}},
            {"name": "average", "params": {"n_fillers": 5}},
            {"name": "bandwagon", "params": {"n_fillers": 5}},
            {"name": "mf", "params": {"n_fillers": 5, "n_iter": 2, "fit_iterations": 5}},
            {
                "name": "poison-model",
                "params": {
                    "n_fillers": 5,
                    "rounds": 1,
                    "fake_per_step": 10,
                    "refit_after": False,
                    "step_epochs": 1,
                },
            },
        ],
        "sizes": [0.1],
        "targets": [{"type": "unpopular", "count": 2}],
        "retrains": 2,
        "victim_quality": False,
        "device": "cpu",
        "seed": 1,
    }


def test_the_runner_and_the_cli_attack_every_victim_with_the_same_fake_users(
    cli, planted_csv, tmp_path
):
    spec_path = tmp_path / "zoo.yaml"
    spec_path.write_text(yaml.safe_dump(zoo_spec(planted_csv(n_users=60, ratings_per_user=8))))
    code, out, err = cli("run", spec_path, "--store", tmp_path / "zoo.db", "--quiet")
    assert code == 0, err
    code, out, err = cli("report", "--store", tmp_path / "zoo.db", "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert set(table["victim"]) == {"neumf", "implicit-als", "implicit-bm25"}
    attacked = table[table["attack"] != "none"]
    assert set(attacked["attack"]) == {"random", "average", "bandwagon", "mf", "poison-model"}
    assert table["hr_mean"].between(0, 1).all()
    # the same fake users for every victim: identical filler popularity per attack
    per_attack = attacked.groupby("attack")["filler_popularity"].nunique()
    assert (per_attack == 1).all(), per_attack


def test_without_a_surrogate_fake_users_depend_on_the_victim(planted_csv):
    spec = zoo_spec(planted_csv(n_users=60, ratings_per_user=8))
    spec.pop("surrogate")
    spec["attacks"] = [{"name": "random", "params": {"n_fillers": 5}}]
    spec["victims"] = spec["victims"][1:]
    cells = [c for c in expand_cells(parse_spec(spec)) if c.labels["attack"] == "random"]
    popularity = [
        [a["filler_popularity"] for a in execute_cell(c.config, "cpu").info["attack"]]
        for c in cells
    ]
    assert len(cells) == 2 and not np.allclose(popularity[0], popularity[1])


def test_the_transfer_zoo_preset_is_valid():
    spec = parse_spec(load_preset("transfer-zoo"))
    victims = {v.name for v in spec.victims}
    assert {"neumf", "implicit-als", "implicit-bpr", "implicit-bm25"} <= victims
    assert spec.surrogate is not None and spec.surrogate.name == "neumf"
    assert {"random", "bandwagon", "poison-model", "mf"} <= {a.name for a in spec.attacks}


def test_implicit_victims_train_on_the_binarized_view_of_explicit_attacks(planted_csv, tmp_path):
    """victim_data: binarized: the attacks see explicit ratings, the implicit victim the 1s."""
    spec = zoo_spec(planted_csv(n_users=60, ratings_per_user=8))
    spec.pop("surrogate")
    spec.update(
        datasets=[{"source": str(planted_csv(n_users=60, ratings_per_user=8))}],
        victims=[{"name": "implicit-bpr", "params": {"factors": 8, "iterations": 10}}],
        attacks=[{"name": "none"}, {"name": "average", "params": {"n_fillers": 5}}],
        victim_data="binarized",
    )
    summary = run_experiment(spec, tmp_path / "binarized.db", progress=False)
    assert (summary.n_computed, summary.n_skipped) == (2, 0)


def test_fake_users_from_a_file_meet_an_implicit_victim(planted_csv, tmp_path):
    """The from-file attack (profiles made elsewhere) against an item-item victim."""
    csv = planted_csv(n_users=60, ratings_per_user=8)
    items = sorted(pd.read_csv(csv)["item"].unique())
    target, fillers = items[0], items[1:4]
    rows = [{"user": f"f{u}", "item": item} for u in range(6) for item in [target, *fillers]]
    profiles = tmp_path / "profiles.csv"
    pd.DataFrame(rows).to_csv(profiles, index=False)
    spec = zoo_spec(csv)
    spec.pop("surrogate")
    spec.update(
        victims=[{"name": "implicit-cosine"}],
        attacks=[{"name": "none"}, {"name": "from-file", "params": {"path": str(profiles)}}],
        targets=[{"type": "items", "items": [int(target)]}],
    )
    outcome = [execute_cell(cell.config, "cpu") for cell in expand_cells(parse_spec(spec))]
    hr = {o.info.get("n_fake", 0): np.mean([row["hr"] for row in o.results]) for o in outcome}
    assert set(hr) == {0, 6} and hr[6] > hr[0]
