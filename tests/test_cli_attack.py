"""`recpoison attack`: end to end on a small CSV, output formats, target specs and errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recpoison.data import planted
from recpoison.data.export import fake_users_path, read_poisoned


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    """60 users x 40 items on a 1-5 scale, with original ids 100.. (users) and 1000.. (items)."""
    data = planted(60, 40, n_factors=3, ratings_per_user=8, random_state=0)
    users, items, ratings = data.triples()
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    pd.DataFrame(
        {
            "userId": users + 100,
            "movieId": items + 1000,
            "rating": ratings,
            "timestamp": data.timestamps,
        }
    ).to_csv(path, index=False)
    return path


def test_attack_writes_a_flagged_poisoned_csv(cli, ratings_csv, tmp_path):
    out = tmp_path / "poisoned.csv"
    code, stdout, err = cli(
        "attack",
        str(ratings_csv),
        "--attack",
        "random",
        "--size",
        "0.1",
        "--targets",
        "1003,1017",
        "--fillers",
        "5",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["fake_users"] == 6 and summary["real_users"] == 60
    assert summary["targets"] == [1003, 1017]
    assert summary["out"] == str(out)
    assert 1 <= summary["filler_popularity"] <= 60  # ratings per item among 60 real users

    back = read_poisoned(out)
    assert back.n_fake == 6 and back.n_real == 60
    assert back.rating_scale == (1.0, 5.0)
    np.testing.assert_array_equal(back.user_ids[back.is_fake], np.arange(160, 166))
    fake_rows = back.matrix[back.is_fake].toarray()
    targets = np.searchsorted(back.item_ids, [1003, 1017])
    np.testing.assert_array_equal(fake_rows[:, targets], 5.0)
    assert np.all((fake_rows > 0).sum(axis=1) == 7)
    assert fake_users_path(out).read_text().split() == [str(u) for u in range(160, 166)]


def test_attack_text_summary_and_recbole(cli, ratings_csv, tmp_path):
    out = tmp_path / "poisoned.inter"
    code, stdout, _ = cli(
        "attack",
        str(ratings_csv),
        "--attack",
        "bandwagon",
        "--size",
        "0.05",
        "--targets",
        "random:2",
        "--fillers",
        "4",
        "--binarize",
        "--format",
        "recbole",
        "--out",
        str(out),
    )
    assert code == 0
    assert "3 fake users" in stdout and "targets (original ids)" in stdout
    assert "wrote" in stdout and "poisoned.inter" in stdout
    header = out.read_text().splitlines()[0]
    assert header == "user_id:token\titem_id:token\ttimestamp:float"  # binarized: implicit


def test_poison_model_from_the_command_line(cli, ratings_csv, tmp_path):
    out = tmp_path / "pm.csv"
    code, stdout, err = cli(
        "attack",
        str(ratings_csv),
        "--attack",
        "poison-model",
        "--size",
        "0.05",
        "--targets",
        "unpopular:1",
        "--fillers",
        "5",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--param",
        "rounds=1",
        "--param",
        "fake_per_step=3",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert set(summary["surrogate_hr"]) == {"k", "before", "after"}
    assert read_poisoned(out).n_fake == 3


def test_random_targets_follow_the_seed(cli, ratings_csv, tmp_path):
    def targets(seed: str) -> list:
        code, stdout, _ = cli(
            "attack",
            str(ratings_csv),
            "--attack",
            "random",
            "--size",
            "0.05",
            "--targets",
            "random:3",
            "--fillers",
            "3",
            "--seed",
            seed,
            "--out",
            str(tmp_path / "r.csv"),
            "--json",
        )
        assert code == 0
        return json.loads(stdout)["targets"]

    assert targets("1") == targets("1")
    assert targets("1") != targets("2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "1003,99999"], "'99999' is not in"),
        (["--size", "0"], "--size is a fraction of the real users in (0, 1]"),
        (["--size", "-0.5"], "got -0.5"),
        (["--size", "5"], "(0.05 for 5 %), got 5"),
        (["--attack", "randon"], "did you mean 'random'"),
        (["--targets", "random:x"], "positive integer"),
        (["--targets", "unpopular:500"], "unpopular items"),
        (["--format", "xml"], "unknown --format"),
        (["--param", "delta=0.5"], "no parameter 'delta'"),
    ],
)
def test_user_errors_exit_2_with_one_line(cli, ratings_csv, tmp_path, args, message):
    base = {
        "--attack": "random",
        "--size": "0.1",
        "--targets": "1003",
        "--out": str(tmp_path / "x.csv"),
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [item for pair in base.items() for item in pair]
    code, _, err = cli("attack", str(ratings_csv), *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_gpu_is_a_device_error(cli, ratings_csv, tmp_path):
    code, _, err = cli(
        "attack",
        str(ratings_csv),
        "--attack",
        "poison-model",
        "--size",
        "0.1",
        "--targets",
        "1003",
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "x.csv"),
    )
    assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1
