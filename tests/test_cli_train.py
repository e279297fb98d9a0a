"""`recpoison train`: JSON output on bundled and small data, and one-line errors."""

import json

import pytest
import torch

from recpoison.data import planted


def test_train_als_on_bundled_data_reports_quality_and_rmse(cli):
    code, out, _ = cli("train", "ml-latest-small", "--victim", "als-mf", "--json")
    result = json.loads(out)
    assert code == 0 and result["users_evaluated"] == 671
    assert 0.2 < result["hr_at_10"] <= 1 and 0.6 < result["rmse"] < 1.2
    assert {"ndcg_at_10", "replicas", "seconds"} <= set(result)


def test_train_neumf_replicas_on_a_csv(cli, tmp_path):
    path = tmp_path / "ratings.csv"
    planted(n_users=60, n_items=150, ratings_per_user=8, random_state=0).to_frame().drop(
        columns="is_fake"
    ).to_csv(path, index=False)
    code, out, _ = cli(
        "train",
        str(path),
        "--epochs",
        "2",
        "--replicas",
        "2",
        "--param",
        "batch_size=512",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["replicas"] == 2
    assert 0 <= result["hr_at_10"] <= 1 and result["hr_at_10_std"] >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_one_line_error(cli):
    code, _, err = cli("train", "ml-latest-small", "--device", "cuda", "--epochs", "1")
    assert code == 2 and "no CUDA GPU" in err and err.count("\n") == 1


def test_unknown_victim_is_a_one_line_error(cli):
    code, _, err = cli("train", "ml-latest-small", "--victim", "neumff")
    assert code == 2 and "did you mean 'neumf'" in err


def test_an_error_raised_while_training_is_one_line_with_no_bar_residue(cli):
    code, out, err = cli("train", "ml-latest-small", "--victim", "neumf", "--replicas", "0")
    assert code == 2 and out == "" and err == "error: n_replicas must be >= 1, got 0\n"
