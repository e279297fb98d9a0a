"""Experiment specs: strict validation, one-line errors, overrides, pairings and presets."""

import copy
from pathlib import Path

import pytest

from recpoison.errors import ConfigError
from recpoison.experiment.expansion import expand_cells
from recpoison.experiment.spec import (
    Spec,
    apply_overrides,
    check_data_pairings,
    load_spec,
    parse_spec,
)
from recpoison.presets import describe_presets, load_preset, preset_names, preset_text

BASE = {
    "name": "t",
    "datasets": [{"source": "ml-latest-small", "transforms": ["binarize"]}],
    "victims": [{"name": "neumf", "params": {"epochs": 2}}],
    "attacks": [{"name": "none"}, {"name": "random"}],
    "sizes": [0.01, 0.03],
    "targets": [{"type": "random", "count": 2}],
}


def spec_with(**changes) -> dict:
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_minimal_spec_gets_defaults():
    spec = parse_spec(BASE)
    assert isinstance(spec, Spec)
    assert spec.retrains == 3 and spec.ks == [10] and spec.seed == 0
    assert [k.kind for k in spec.knowledge] == ["full"]
    assert spec.surrogate_for(spec.victims[0]).name == "neumf"  # white-box by default
    assert spec.to_json()["sizes"] == [0.01, 0.03]


def test_unknown_top_level_key_is_named():
    message = error_of(spec_with(retrain=3))
    assert "unknown key 'retrain'" in message and "retrains" in message


def test_unknown_nested_key_is_named_with_its_path():
    message = error_of(spec_with(targets=[{"type": "random", "cuont": 2}]))
    assert "'cuont'" in message and "targets.0" in message and "count" in message


@pytest.mark.parametrize("sizes", [[0], [-0.01], [1.5]])
def test_bad_size(sizes):
    assert "sizes.0" in error_of(spec_with(sizes=sizes))


def test_missing_field_and_every_other_problem():
    raw = spec_with(sizes=[0], retrains=0)
    del raw["name"]
    message = error_of(raw)
    assert message.startswith("3 problems in the spec: (1) name: required field is missing; ")
    assert "(2) sizes.0: " in message and "(3) retrains: " in message


def test_unknown_attack_gets_a_suggestion():
    message = error_of(spec_with(attacks=[{"name": "randm"}]))
    assert "attacks.0.name" in message and "did you mean 'random'" in message


def test_unknown_victim_param_and_runner_params():
    assert "epochz" in error_of(spec_with(victims=[{"name": "neumf", "params": {"epochz": 1}}]))
    message = error_of(spec_with(victims=[{"name": "neumf", "params": {"n_replicas": 4}}]))
    assert "set by the runner" in message


def test_none_attack_takes_no_params():
    assert "takes no params" in error_of(
        spec_with(attacks=[{"name": "none", "params": {"n_fillers": 3}}])
    )


def test_poison_model_needs_a_differentiable_surrogate():
    message = error_of(spec_with(attacks=[{"name": "poison-model"}], surrogate={"name": "als-mf"}))
    assert "differentiable" in message


def test_explicit_only_victim_on_binarized_data():
    assert "binarized" in error_of(spec_with(victims=[{"name": "als-mf"}]))


def test_data_pairings_need_loaded_data(tiny_explicit, tiny_implicit):
    spec = parse_spec(spec_with(datasets=[{"source": "x.csv"}]))
    with pytest.raises(ConfigError, match="binarize"):
        check_data_pairings(spec, [tiny_explicit])
    check_data_pairings(spec, [tiny_implicit])


def test_target_and_knowledge_consistency():
    assert "threshold" in error_of(spec_with(targets=[{"type": "random", "threshold": 5}]))
    assert "items" in error_of(spec_with(targets=[{"type": "items"}]))
    assert "fraction 1" in error_of(spec_with(knowledge={"kind": "full", "fraction": 0.5}))
    spec = parse_spec(spec_with(knowledge={"kind": "users", "fraction": 0.3}))
    assert spec.knowledge[0].display == "users 30%"


def test_duplicate_labels_are_refused():
    victims = [{"name": "neumf"}, {"name": "neumf", "params": {"epochs": 3}}]
    assert "distinct `label:`" in error_of(spec_with(victims=victims))
    victims[1]["label"] = "neumf-3"
    assert len(parse_spec(spec_with(victims=victims)).victims) == 2


def test_unknown_transform():
    assert "unknown transform 'binarise'" in error_of(
        spec_with(datasets=[{"source": "x", "transforms": ["binarise"]}])
    )


def test_overrides_broadcast_index_and_parse_yaml():
    raw = spec_with(targets=[{"type": "random", "count": 2}, {"type": "unpopular", "count": 2}])
    out = apply_overrides(
        raw,
        [
            "retrains=5",
            "targets.count=7",
            "sizes=[0.05]",
            "victims.0.params.epochs=1",
            "surrogate.name=gmf",
        ],
    )
    assert out["retrains"] == 5 and out["sizes"] == [0.05]
    assert [t["count"] for t in out["targets"]] == [7, 7]
    assert out["victims"][0]["params"]["epochs"] == 1 and out["surrogate"] == {"name": "gmf"}
    assert "retrains" not in raw  # the input is unchanged
    assert parse_spec(out).surrogate.name == "gmf"


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("retrains", "KEY=VALUE"),
        ("name.x=1", "not a mapping"),
        ("victims.3.name=x", "out of range"),
    ],
)
def test_bad_overrides(assignment, fragment):
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides(BASE, [assignment])


def test_unknown_override_key_fails_validation():
    assert "unknown key 'retrainz'" in error_of(apply_overrides(BASE, ["retrainz=3"]))


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_expands(name):
    spec = parse_spec(load_preset(name))
    assert spec.name == name and spec.description
    assert preset_text(name).lstrip().startswith("#")  # documented in comments
    cells = expand_cells(spec)
    assert len({cell.key for cell in cells}) == len(cells) > 0


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_spec_in_experiments_validates_and_expands(path):
    spec = load_spec(path)
    assert spec.description and path.read_text().lstrip().startswith("#")
    cells = expand_cells(spec)
    assert len({cell.key for cell in cells}) == len(cells) > 0


def test_required_presets_exist():
    names = set(describe_presets())
    assert {
        "quick",
        "huang2021-table1",
        "huang2021-topk",
        "huang2021-fillers",
        "huang2021-knowledge",
        "huang2021-transfer",
    } <= names
    with pytest.raises(ConfigError, match="did you mean 'quick'"):
        preset_text("quik")
