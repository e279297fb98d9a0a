"""Edge flips and the random-edges baseline (Aravind's thesis, Algorithm 2)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recpoison.attacks import make_attack
from recpoison.attacks.edges import append_empty_users, apply_flips
from recpoison.data import Interactions
from recpoison.errors import ConfigError


def small() -> Interactions:
    """3 users x 4 items with timestamps."""
    return Interactions.from_triples(
        [0, 0, 1, 2, 2], [0, 2, 1, 0, 3], None, timestamps=[5, 7, 1, 2, 9]
    )


def test_apply_flips_inserts_and_removes_with_aligned_timestamps():
    data = small()
    flipped = apply_flips(data, np.array([[0, 1, 1], [2, 0, 0], [1, 3, 1]]))
    assert flipped.matrix.toarray().tolist() == [[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 0, 1]]
    stamps = dict(zip(zip(*flipped.triples()[:2], strict=True), flipped.timestamps, strict=True))
    assert stamps[(0, 0)] == 5 and stamps[(0, 2)] == 7 and stamps[(2, 3)] == 9
    assert stamps[(0, 1)] == 9 and stamps[(1, 3)] == 9  # inserted: the latest timestamp
    assert data.matrix.nnz == 5  # the input is unchanged


@pytest.mark.parametrize(
    ("flips", "message"),
    [
        ([[0, 0, 1]], "already there"),
        ([[1, 0, 0]], "not there"),
        ([[3, 0, 1]], "outside"),
        ([[0, 1, 2]], "0 \\(remove\\) or 1"),
        ([[0, 1, 1], [0, 1, 1]], "twice"),
    ],
)
def test_apply_flips_refuses_impossible_flips(flips, message):
    with pytest.raises(ConfigError, match=message):
        apply_flips(small(), np.array(flips))


def test_append_empty_users_marks_them_fake():
    data = append_empty_users(small(), 2)
    assert data.n_users == 5 and data.matrix[3:].nnz == 0
    assert data.is_fake.tolist() == [False, False, False, True, True]


def test_random_edges_inserts_the_budget_of_distinct_non_edges(tiny_implicit):
    attack = make_attack("random-edges")
    result = attack.perturb(tiny_implicit, 50, random_state=0)
    users, items, values = result.flips.T
    assert result.n_flips == 50 and (values == 1).all()
    assert len(np.unique(users * tiny_implicit.n_items + items)) == 50
    assert (np.asarray(tiny_implicit.matrix[users, items]).ravel() == 0).all()
    assert result.data.n_ratings == tiny_implicit.n_ratings + 50
    assert (np.asarray(result.data.matrix[users, items]).ravel() == 1).all()
    again = attack.perturb(tiny_implicit, 50, random_state=0)
    assert np.array_equal(again.flips, result.flips)
    other = attack.perturb(tiny_implicit, 50, random_state=1)
    assert not np.array_equal(other.flips, result.flips)


def test_random_edges_is_uniform_over_non_edges():
    """Two users, one with 1 free entry and one with 3: insertions land 1:3 on average."""
    data = Interactions(sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float32)))
    counts = np.zeros(2)
    for seed in range(400):
        flips = make_attack("random-edges").perturb(data, 1, random_state=seed).flips
        counts[flips[0, 0]] += 1
    assert 0.19 < counts[0] / 400 < 0.31  # expected 0.25


def test_random_edges_new_users_only_touch_the_new_rows(tiny_implicit):
    result = make_attack("random-edges", new_users=3).perturb(tiny_implicit, 40, random_state=0)
    assert result.data.n_users == tiny_implicit.n_users + 3
    assert (result.flips[:, 0] >= tiny_implicit.n_users).all()
    assert result.data.n_fake == 3 and result.data.matrix[tiny_implicit.n_users :].nnz == 40
    assert (result.data.matrix[: tiny_implicit.n_users] != tiny_implicit.matrix).nnz == 0


def test_random_edges_errors(tiny_explicit, tiny_implicit):
    with pytest.raises(ConfigError, match="binarize"):
        make_attack("random-edges").perturb(tiny_explicit, 5, random_state=0)
    with pytest.raises(ConfigError, match="exceeds"):
        make_attack("random-edges", new_users=1).perturb(tiny_implicit, 41, random_state=0)
    with pytest.raises(ConfigError, match=">= 1 flip"):
        make_attack("random-edges").perturb(tiny_implicit, 0, random_state=0)


def test_the_attack_command_runs_edge_attacks_without_targets(cli, tmp_path, tiny_implicit):
    source = tmp_path / "tiny.csv"
    tiny_implicit.to_frame().to_csv(source, index=False)
    out = tmp_path / "x.csv"
    code, _, err = cli(
        "attack", source, "--attack", "random-edges", "--size", "0.1",
        "--targets", "random:1", "--out", out,
    )  # fmt: skip
    assert code == 2 and "drop --targets" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("attack", source, "--attack", "random-edges", "--budget", 5, "--out", out)
    assert code == 0, err
    assert len(pd.read_csv(out)) == tiny_implicit.n_ratings + 5
