"""`recpoison attack` with an edge attack writes the data with the flipped edges."""

import json

import pandas as pd


def test_cli_meta_attack_writes_the_perturbed_data(cli, planted_csv, tmp_path):
    source = planted_csv(40, 6)
    out = tmp_path / "perturbed.csv"
    code, stdout, stderr = cli(
        "--threads", 1, "attack", source, "--attack", "meta", "--budget", 4,
        "--param", "steps=5", "--param", "flips_per_step=2", "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout)
    original = pd.read_csv(source)
    written = pd.read_csv(out)
    assert summary["flips"] == 4 and summary["appended_users"] == 0
    assert len(written) == len(original) + 4
    assert not written["is_fake"].any()
    pairs = set(zip(original["user"], original["item"], strict=True))
    assert len(pairs & set(zip(written["user"], written["item"], strict=True))) == len(original)


def test_cli_meta_new_users_by_size(cli, planted_csv, tmp_path):
    out = tmp_path / "new.csv"
    code, stdout, stderr = cli(
        "attack", planted_csv(40, 6), "--attack", "meta-new-users", "--size", 0.02,
        "--param", "new_users=2", "--param", "steps=3", "--param", "flips_per_step=5",
        "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["budget"] == round(0.02 * 240) and summary["appended_users"] == 2
    assert (tmp_path / "new.csv.fake_users.txt").read_text().count("\n") == 2


def test_cli_edge_attack_errors_are_one_line(cli, planted_csv, tmp_path):
    source, out = planted_csv(40, 6), tmp_path / "x.csv"
    for args in (
        ("--attack", "meta"),  # neither --budget nor --size
        ("--attack", "meta", "--budget", 3, "--surrogate", "als-mf"),
        ("--attack", "random", "--size", 0.1),  # a profile attack needs --targets
        ("--attack", "meta", "--size", 2),  # a fraction above 1
    ):
        code, _, stderr = cli("attack", source, *args, "--out", out)
        assert code == 2 and stderr.count("\n") == 1, stderr
