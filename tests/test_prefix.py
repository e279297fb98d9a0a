"""Sizes that share their work: the one-fake-user-at-a-time attacks (S-attacks, graph attacks,
poison-model's authors' schedule) resumed from a smaller size give exactly what they give at
once."""

import numpy as np
import pytest

from recpoison.attacks import make_attack
from recpoison.data import planted
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.expansion import expand_cells
from recpoison.experiment.progress import ATTACK_PROGRESS
from recpoison.experiment.spec import parse_spec

SEQUENTIAL = [
    ("u-tna", {"rank": 3, "n_iter": 2, "fit_iterations": 5}),
    ("s-tna-rand", {"rank": 3, "n_iter": 2, "fit_iterations": 5, "n_influential": 20}),
    ("s-tna-inf", {"rank": 3, "n_iter": 2, "fit_iterations": 5, "n_influential": 20}),
    ("weighting", {"rank": 3, "n_iter": 2, "fit_iterations": 5}),
    ("graph-attack", {"steps": 2}),
    ("s-graph", {"steps": 2, "delta": 20}),
]


@pytest.fixture(scope="module")
def data():
    return planted(n_users=60, n_items=30, n_factors=3, ratings_per_user=8, random_state=2)


def make(name, params):
    return make_attack(name, n_fillers=4, **params)


@pytest.mark.parametrize("name, params", SEQUENTIAL)
def test_a_larger_size_goes_on_from_a_smaller_one(data, name, params):
    """2 fake users, then 5 from their state == 5 at once (same seed): the first 2 are the same,
    the resumed call makes 3, and the state it went on from is left as it was."""
    target = np.array([7])
    direct = make(name, params).generate(data, target, 5, random_state=11)
    small_attack = make(name, params)
    small = small_attack.generate(data, target, 2, random_state=11)
    progress = small_attack.progress_
    resumed = make(name, params).generate(data, target, 5, random_state=11, resume_from=progress)
    np.testing.assert_array_equal(small.matrix.toarray(), direct.matrix.toarray()[:2])
    np.testing.assert_array_equal(resumed.matrix.toarray(), direct.matrix.toarray())
    assert (direct.info["resumed_from"], resumed.info["resumed_from"]) == (0, 2)
    assert progress.n_fake == 2  # resuming copies the state
    again = make(name, params).generate(data, target, 5, random_state=11, resume_from=progress)
    np.testing.assert_array_equal(again.matrix.toarray(), direct.matrix.toarray())


@pytest.mark.parametrize("name, params", [SEQUENTIAL[1], SEQUENTIAL[4]])
def test_a_state_from_other_inputs_is_not_resumed(data, name, params):
    """Another seed, target, parameter or dataset, or a state past the size asked for: the attack
    starts over and gives what it gives alone."""
    attack = make(name, params)
    attack.generate(data, np.array([7]), 3, random_state=11)
    progress = attack.progress_
    other_data = planted(n_users=60, n_items=30, n_factors=3, ratings_per_user=8, random_state=3)
    cases = [
        (data, np.array([7]), 4, 12, params),
        (data, np.array([8]), 4, 11, params),
        (data, np.array([7]), 4, 11, {**params, "eta": 0.02}),
        (other_data, np.array([7]), 4, 11, params),
        (data, np.array([7]), 2, 11, params),
        (data, np.array([7]), 4, None, params),  # an unseeded run never resumes
    ]
    for train, target, n_fake, seed, changed in cases:
        fake = make(name, changed).generate(
            train, target, n_fake, random_state=seed, resume_from=progress
        )
        assert fake.info["resumed_from"] == 0
        if seed is not None:
            alone = make(name, changed).generate(train, target, n_fake, random_state=seed)
            np.testing.assert_array_equal(fake.matrix.toarray(), alone.matrix.toarray())


NEUMF = {
    "name": "neumf",
    "params": {"epochs": 2, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}


@pytest.mark.parametrize(
    "attack, victim, transforms",
    [
        (
            {"name": "s-tna-inf", "params": {"n_fillers": 4, "rank": 3, "n_iter": 1}},
            {"name": "als-mf", "params": {"rank": 3, "iterations": 5}},
            [],
        ),
        (
            {"name": "graph-attack", "params": {"n_fillers": 4, "steps": 1}},
            {"name": "random-walk"},
            [],
        ),
        (  # all targets' poison models at once (generate_many), the authors' schedule
            {"name": "poison-model", "params": {"n_fillers": 4, "rounds": 1, "refit_after": False}},
            NEUMF,
            ["binarize"],
        ),
    ],
)
def test_runner_cells_of_a_larger_size_go_on_from_the_smaller(
    planted_csv, attack, victim, transforms
):
    """The runner seeds these attacks without their size: the 10 % cell goes on from the 5 %
    cell run before it in the process, and stores the rows it stores alone."""
    path = planted_csv(n_users=60, ratings_per_user=8, seed=1)
    spec = parse_spec(
        {
            "name": "prefix",
            "datasets": [{"source": str(path), "transforms": transforms}],
            "victims": [victim],
            "attacks": [{"name": "none"}, attack],
            "sizes": [0.05, 0.1],
            "targets": [{"type": "random", "count": 2}],
            "retrains": 1,
            "device": "cpu",
            "victim_quality": False,
            "rmse_holdout": 0,
        }
    )
    small, large = [c for c in expand_cells(spec) if c.labels.get("attack") == attack["name"]]
    ATTACK_PROGRESS.clear_memory()  # as in a fresh process
    first = execute_cell(small.config, "cpu")
    after_small = execute_cell(large.config, "cpu")
    n_small = first.info["n_fake"]
    assert [a["resumed_from"] for a in after_small.info["attack"]] == [n_small, n_small]
    ATTACK_PROGRESS.clear_memory()
    alone = execute_cell(large.config, "cpu")
    assert [a["resumed_from"] for a in alone.info["attack"]] == [0, 0]
    assert alone.results == after_small.results
    for shared, fresh in zip(after_small.info["attack"], alone.info["attack"], strict=True):
        assert shared["filler_popularity"] == fresh["filler_popularity"]
        assert shared.get("chosen_rounds") == fresh.get("chosen_rounds")
