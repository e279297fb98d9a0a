"""`recpoison datasets list|info`: output, JSON, exit codes and one-line errors."""

import json
import os
import subprocess
import sys

import pytest
import torch

from recpoison.cli import threads
from recpoison.data import FORMATS

# The declared entry point (pyproject: recpoison = "recpoison.cli:main"), run as a real process.
ENTRY = [sys.executable, "-c", "from recpoison.cli import main; main()"]

CSV = "uid;iid;stars;when\n1;10;4;100\n1;11;2;101\n2;10;5;102\n"


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    return path


def test_list_shows_bundled_datasets_and_formats(cli):
    code, out, _ = cli("datasets", "list")
    assert code == 0
    for name in ["ml-latest-small", *FORMATS]:
        assert name in out
    assert "recpoison[parquet]" in out  # not eaten as rich markup


def test_info_json_of_bundled_dataset(cli):
    code, out, _ = cli("datasets", "info", "ml-latest-small", "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["users"], info["items"], info["ratings"]) == (671, 9066, 100004)
    assert info["rating_scale"] == [0.5, 5.0] and info["implicit"] is False
    assert info["density"] == pytest.approx(100004 / (671 * 9066))
    assert info["timestamps"] is True
    assert info["unpopular_items"] > 0


def test_info_table_and_implicit_lastfm(cli, tmp_path):
    path = tmp_path / "user_artists.dat"
    path.write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t212\n")
    code, out, _ = cli("datasets", "info", str(path))
    assert code == 0 and "lastfm" in out and "implicit" in out
    code, out, _ = cli("datasets", "info", str(path), "--json")
    info = json.loads(out)
    assert info["rating_scale"] is None and info["implicit"] is True
    assert (info["users"], info["items"], info["ratings"]) == (2, 2, 3)


def test_info_with_columns_and_format(cli, csv_file):
    renamed = csv_file.rename(csv_file.with_suffix(".txt"))
    code, out, _ = cli(
        "datasets",
        "info",
        str(renamed),
        "--format",
        "csv",
        "--columns",
        "user=uid,item=iid,rating=stars,timestamp=when",
        "--json",
    )
    assert code == 0
    info = json.loads(out)
    assert (info["users"], info["items"], info["ratings"]) == (2, 2, 3)
    assert info["rating_scale"] == [2.0, 5.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ml-latest"], "did you mean 'ml-latest-small'"),
        (["{csv}"], "no user column found"),
        (["{csv}", "--columns", "user"], "bad --columns entry"),
        (["{csv}", "--columns", "user=nope"], "column 'nope' (given for user) not found"),
        (["{csv}", "--format", "xlsx"], "unknown format 'xlsx'"),
    ],
)
def test_info_errors_are_one_line_with_exit_code_2(cli, csv_file, args, message):
    args = [a.replace("{csv}", str(csv_file)) for a in args]
    code, out, err = cli("datasets", "info", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert out == ""


def test_entry_point_in_real_processes(csv_file, tmp_path):
    """Stdout holds exactly one JSON object; a bad file exits 2 with one line on stderr."""
    bad = tmp_path / "u.data"
    bad.write_text("196\t242\t3\t881250949\n186\t302\tthree\t891717742\n")
    good_args = ["datasets", "info", str(csv_file), "--json", "--columns", "user=uid,item=iid"]
    processes = [  # started together: most of each run is interpreter and import start-up
        subprocess.Popen([*ENTRY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in (good_args, ["datasets", "info", str(bad)])
    ]
    (good_out, good_err), (bad_out, bad_err) = (p.communicate(timeout=120) for p in processes)
    assert processes[0].returncode == 0, good_err
    info = json.loads(good_out)
    assert {"users", "items", "ratings", "density", "rating_scale", "implicit"} <= set(info)
    assert info["implicit"] is True and info["timestamps"] is False
    assert processes[1].returncode == 2
    assert bad_err.count("\n") == 1 and "Traceback" not in bad_err
    assert "u.data, line 2: rating is 'three'; expected a number" in bad_err
    assert bad_out == ""


def test_threads_option_sets_torch_threads(cli, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored after the test
    try:
        code, out, _ = cli("--threads", "3", "datasets", "list")
        assert code == 0 and "ml-latest-small" in out
        assert torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
    finally:
        torch.set_num_threads(1)
    code, _, err = cli("--threads", "0", "datasets", "list")
    assert code == 2 and "--threads" in err


@pytest.mark.parametrize(("load", "expected"), [(0.2, 2), (0.6, 1), (1.2, 1), (7.0, 1)])
def test_without_threads_the_cli_trains_on_the_cores_the_load_leaves_idle(
    cli, monkeypatch, load, expected
):
    """2 cores, torch's default 2 threads: a load of 1 (another job) leaves one thread."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_NUM_THREADS")  # restored to "1" after the test
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    torch.set_num_threads(2)
    try:
        code, out, err = cli("datasets", "list")
        assert code == 0 and "ml-latest-small" in out and err == ""  # no note off a terminal
        assert torch.get_num_threads() == expected
        assert os.environ.get("OMP_NUM_THREADS") == (None if expected == 2 else str(expected))
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the environment's choice is kept
        monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 7.0, 7.0))
        assert cli("datasets", "list")[0] == 0 and torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(1)


def test_idle_cores_leave_at_least_one_thread():
    assert [threads.idle_cores(2, load) for load in (0.0, 0.4, 0.5, 1.2, 9.0)] == [2, 2, 2, 1, 1]
    assert threads.idle_cores(8, 2.6) == 5
