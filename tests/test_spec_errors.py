"""A spec with several problems names every one of them, each with its key path (issue 13 §4),
in one line (the CLI prints a ConfigError as one line)."""

import copy
import re

import pytest

from recpoison.errors import ConfigError
from recpoison.experiment.spec import TRANSFORMS, Spec, check_data_pairings, parse_spec

BASE = {
    "name": "t",
    "datasets": [{"source": "ml-latest-small", "transforms": ["binarize"]}],
    "victims": [{"name": "neumf", "params": {"epochs": 2}}],
    "attacks": [{"name": "none"}, {"name": "random"}],
    "sizes": [0.01, 0.03],
    "targets": [{"type": "random", "count": 2}],
}


def problems_of(raw: dict) -> list[str]:
    """The numbered problems of the error ``raw`` raises (one problem: the message itself)."""
    with pytest.raises(ConfigError) as info:
        parse_spec(raw)
    message = str(info.value)
    assert "\n" not in message
    counted = re.match(r"(\d+) problems in the spec: \(1\) ", message)
    if counted is None:
        return [message]
    problems = re.split(r"; \(\d+\) ", message[counted.end() :])
    assert len(problems) == int(counted.group(1))
    return problems


def test_a_spec_holding_only_an_unknown_key_names_that_key():
    problems = problems_of({"retrainz": 3})
    assert problems[0].startswith("unknown key 'retrainz' (allowed: name, description,")
    assert problems[1:] == [
        "required fields are missing: name, datasets, victims, attacks, sizes, targets"
    ]


def test_every_shape_and_value_problem_is_listed_with_its_path():
    raw = copy.deepcopy(BASE)
    raw.update(
        retrains=0,
        sizes=[0, 2],
        ks=[10, 10],
        colour="red",
        targets=[{"type": "rand", "count": 0}],
    )
    raw["datasets"][0].update(transforms=["binarise", {"k_core": 2, "b": 1}, 3], size=1)
    raw["victims"][0]["parms"] = {}
    del raw["name"]
    assert problems_of(raw) == [
        "unknown key 'size' in datasets.0 (allowed: source, format, columns, name, "
        "rating_scale, implicit, transforms)",
        "unknown key 'parms' in victims.0 (allowed: name, params, label)",
        "unknown key 'colour' (allowed: " + ", ".join(Spec.model_fields) + ")",
        "name: required field is missing",
        "datasets.0.transforms.0: unknown transform 'binarise'; choose one of: "
        + ", ".join(TRANSFORMS)
        + " (got 'binarise')",
        "datasets.0.transforms.1: a transform is one name or a one-key mapping, "
        "got {'k_core': 2, 'b': 1}",
        "datasets.0.transforms.2: Input should be a valid string or Input should be a valid "
        "dictionary (got 3)",
        "sizes.0: Input should be greater than 0 (got 0)",
        "sizes.1: Input should be less than or equal to 1 (got 2)",
        "targets.0.type: Input should be 'random', 'unpopular', 'items' or 'none' (got 'rand')",
        "targets.0.count: Input should be greater than or equal to 1 (got 0)",
        "retrains: Input should be greater than or equal to 1 (got 0)",
        "ks: values must be distinct, got [10, 10]",
    ]


def test_unknown_keys_in_one_place_are_named_together():
    raw = copy.deepcopy(BASE)
    raw["targets"][0].update(cuont=2, typ="random")
    assert problems_of(raw) == [
        "unknown keys 'cuont', 'typ' in targets.0 (allowed: type, count, threshold, items, label)"
    ]


def test_every_name_parameter_and_pairing_problem_is_listed():
    raw = copy.deepcopy(BASE)
    raw.update(
        victims=[
            {"name": "neumf", "params": {"epochz": 1, "n_replicas": 2}},
            {"name": "neumff"},
            {"name": "als-mf"},
        ],
        attacks=[{"name": "none", "params": {"n_fillers": 3}}, {"name": "randm"}],
        detector={"name": "svm-tiaa"},
    )
    problems = problems_of(raw)
    assert [problem.split(":")[0] for problem in problems] == [
        "victims.0.params.n_replicas",
        "victims.0.params.epochz",
        "victims.1.name",
        "detector.name",
        "attacks.0",
        "attacks.1.name",
        "victims.2",
    ]
    assert "did you mean 'neumf'" in problems[2] and "did you mean 'random'" in problems[5]
    assert "choose one of: none, random" in problems[5]  # the no-attack row is a choice
    assert problems[6].endswith(
        "needs explicit ratings but datasets.0 is binarized; remove `binarize`"
    )


def test_data_pairing_problems_are_all_listed(tiny_explicit):
    raw = copy.deepcopy(BASE)
    raw["datasets"] = [{"source": "a.csv"}, {"source": "b.csv", "name": "b"}]
    spec = parse_spec(raw)
    with pytest.raises(ConfigError) as info:
        check_data_pairings(spec, [tiny_explicit, tiny_explicit])
    message = str(info.value)
    assert message.startswith("2 problems in the spec: (1) victims.0: neumf trains on implicit")
    assert "transforms of datasets.0" in message and "transforms of datasets.1" in message


def test_one_problem_stays_a_plain_message():
    assert problems_of({**BASE, "retrains": 0}) == [
        "retrains: Input should be greater than or equal to 1 (got 0)"
    ]
