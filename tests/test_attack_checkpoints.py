"""Attack checkpoints (recpoison.experiment.progress): a size-sharing attack interrupted mid-cell
goes on from its last step when the cell is computed again, a larger size goes on from a smaller
one computed by another process, and what cannot be read or written costs the checkpoint, never
the cell or its numbers."""

import json
import logging
import sqlite3

import pytest
import torch

from recpoison.experiment import progress
from recpoison.experiment.cells import execute_cell
from recpoison.experiment.expansion import expand_cells
from recpoison.experiment.progress import ATTACK_PROGRESS, checkpoints_in, progress_folder
from recpoison.experiment.runner import run_experiment
from recpoison.experiment.spec import parse_spec

NEUMF = {
    "name": "neumf",
    "params": {"epochs": 2, "layers": [8, 4], "embedding_dim": 4, "batch_size": 256, "lr": 0.01},
}
S_ATTACK = (  # one target after the other (generate), one state per target in a checkpoint
    {"name": "s-tna-inf", "params": {"n_fillers": 4, "rank": 3, "n_iter": 1}},
    {"name": "als-mf", "params": {"rank": 3, "iterations": 5}},
    [],
)
GRAPH_ATTACK = (
    {"name": "graph-attack", "params": {"n_fillers": 4, "steps": 1}},
    {"name": "random-walk"},
    [],
)
POISON_MODEL = (  # every target's poison model at once (generate_many)
    {"name": "poison-model", "params": {"n_fillers": 4, "rounds": 1, "refit_after": False}},
    NEUMF,
    ["binarize"],
)


def spec_of(path, attack, victim, transforms, sizes):
    return {
        "name": "checkpoints",
        "datasets": [{"source": str(path), "transforms": transforms}],
        "victims": [victim],
        "attacks": [attack],
        "sizes": sizes,
        "targets": [{"type": "random", "count": 2}],
        "retrains": 1,
        "device": "cpu",
        "victim_quality": False,
        "rmse_holdout": 0,
    }


def attack_cells(spec):
    """The cells of the spec's attack (the runner adds a no-attack cell of its own)."""
    name = spec["attacks"][0]["name"]
    return [c for c in expand_cells(parse_spec(spec)) if c.labels.get("attack") == name]


def interrupt_after(monkeypatch, steps):
    """Ctrl-C right after the attack's ``steps``-th step has been checkpointed."""
    real = ATTACK_PROGRESS.checkpoint
    done = []

    def checkpoint(key, label, whole=None):
        hook = real(key, label, whole)

        def on_step(state):
            hook(state)
            done.append(1)
            if len(done) == steps:
                raise KeyboardInterrupt

        return on_step

    monkeypatch.setattr(ATTACK_PROGRESS, "checkpoint", checkpoint)


@pytest.mark.parametrize(
    "setup", [S_ATTACK, GRAPH_ATTACK, POISON_MODEL], ids=lambda s: s[0]["name"]
)
def test_an_interrupted_cell_goes_on_from_its_last_checkpoint(
    planted_csv, tmp_path, monkeypatch, checkpoint_every_step, setup
):
    """Stopped after 3 fake users, then computed again by a fresh process with the same folder:
    it goes on from there (the first target's 3 fake users one at a time; 3 of every target's
    at once) and stores exactly the rows of an uninterrupted cell. Each step is announced."""
    (cell,) = attack_cells(spec_of(planted_csv(n_users=60, seed=1), *setup, sizes=[0.1]))
    folder = tmp_path / "progress"
    interrupt_after(monkeypatch, 3)
    with ATTACK_PROGRESS.persisted_in(folder), pytest.raises(KeyboardInterrupt):
        execute_cell(cell.config, "cpu")
    monkeypatch.undo()
    monkeypatch.setattr(progress, "CHECKPOINT_SECONDS", 0.0)
    assert len(list(folder.glob("*.pt"))) == 1
    ATTACK_PROGRESS.clear_memory()
    with ATTACK_PROGRESS.persisted_in(folder):
        resumed = execute_cell(cell.config, "cpu")
    ATTACK_PROGRESS.clear_memory()
    messages = []
    fresh = execute_cell(cell.config, "cpu", status=messages.append)  # no folder: from scratch
    counts = [m.rsplit(": ", 1)[1] for m in messages if m.endswith(" fake users")]
    steps = [f"{n}/6 fake users" for n in range(1, 7)]  # 10 % of 60 users, step by step
    assert counts == (steps if setup is POISON_MODEL else steps + steps)  # all targets, or each
    expected = [3, 3] if setup is POISON_MODEL else [3, 0]
    assert [a["resumed_from"] for a in resumed.info["attack"]] == expected
    assert [a["resumed_from"] for a in fresh.info["attack"]] == [0, 0]
    assert resumed.results == fresh.results
    for ours, theirs in zip(resumed.info["attack"], fresh.info["attack"], strict=True):
        assert ours["filler_popularity"] == theirs["filler_popularity"]


def test_a_larger_size_goes_on_from_a_smaller_one_another_run_computed(
    planted_csv, tmp_path, checkpoint_every_step
):
    """Run 1 computes 5 %; run 2, in a fresh process (empty memory), adds 10 % and goes on from
    run 1's fake users through the folder beside the store, with the numbers of 10 % alone."""
    path = planted_csv(n_users=60, seed=1)
    store = tmp_path / "grid.db"
    run_experiment(spec_of(path, *GRAPH_ATTACK, sizes=[0.05]), store, progress=False)
    assert list(progress_folder(store).glob("*.pt"))
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec_of(path, *GRAPH_ATTACK, sizes=[0.05, 0.1]), store, progress=False)
    ATTACK_PROGRESS.clear_memory()
    large = attack_cells(spec_of(path, *GRAPH_ATTACK, sizes=[0.1]))[0]
    alone = execute_cell(large.config, "cpu")
    with sqlite3.connect(store) as db:
        (info,) = db.execute("SELECT info_json FROM cells WHERE key = ?", (large.key,)).fetchone()
        stored_hits = db.execute(
            "SELECT hits FROM results WHERE cell_key = ? ORDER BY target_index, retrain, k",
            (large.key,),
        ).fetchall()
    assert [a["resumed_from"] for a in json.loads(info)["attack"]] == [3, 3]
    assert [hits for (hits,) in stored_hits] == [row["hits"] for row in alone.results]


def corrupt(path):
    path.write_bytes(b"not a checkpoint")


def other_version(path):
    payload = torch.load(path, weights_only=False)
    torch.save({**payload, "recpoison": "0.0.0"}, path)


@pytest.mark.parametrize("spoil", [corrupt, other_version])
def test_an_unreadable_checkpoint_is_ignored_with_a_warning(
    planted_csv, tmp_path, checkpoint_every_step, caplog, spoil
):
    path = planted_csv(n_users=60, seed=1)
    small, large = attack_cells(spec_of(path, *GRAPH_ATTACK, sizes=[0.05, 0.1]))
    folder = tmp_path / "progress"
    with ATTACK_PROGRESS.persisted_in(folder):
        execute_cell(small.config, "cpu")
    (checkpoint,) = folder.glob("*.pt")
    spoil(checkpoint)
    assert checkpoints_in(folder) == []  # `recpoison runs` lists what a run would use
    ATTACK_PROGRESS.clear_memory()
    with caplog.at_level(logging.WARNING), ATTACK_PROGRESS.persisted_in(folder):
        again = execute_cell(large.config, "cpu")
    assert "ignoring the attack checkpoint" in caplog.text and checkpoint.name in caplog.text
    assert [a["resumed_from"] for a in again.info["attack"]] == [0, 0]
    ATTACK_PROGRESS.clear_memory()
    assert again.results == execute_cell(large.config, "cpu").results


def test_an_unwritable_folder_costs_the_checkpoint_not_the_cell(
    planted_csv, tmp_path, checkpoint_every_step, caplog
):
    (cell,) = attack_cells(spec_of(planted_csv(n_users=60, seed=1), *GRAPH_ATTACK, sizes=[0.1]))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING), ATTACK_PROGRESS.persisted_in(blocked / "progress"):
        outcome = execute_cell(cell.config, "cpu")
    assert caplog.text.count("cannot write attack checkpoints") == 1  # said once, not per step
    ATTACK_PROGRESS.clear_memory()
    assert outcome.results == execute_cell(cell.config, "cpu").results
    assert list(tmp_path.iterdir()) == [blocked]


def test_recpoison_runs_says_how_far_each_checkpointed_attack_got(
    planted_csv, tmp_path, monkeypatch, checkpoint_every_step, cli
):
    """Ctrl-C after 3 of the first target's 6 fake users: `recpoison runs` lists the run as
    unfinished and the checkpoint with its counts; after the run is repeated, all 6 of each."""
    spec = spec_of(planted_csv(n_users=60, seed=1), *S_ATTACK, sizes=[0.1])
    store = tmp_path / "grid.db"
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, store, progress=False)
    monkeypatch.undo()
    code, out, _ = cli("runs", "--store", store)
    assert code == 0 and "(unfinished)" in out
    assert f"attack checkpoints in {progress_folder(store)}" in out
    assert "s-tna-inf, 2 target set(s): fake users per target set 3, -, written " in out
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec, store, progress=False)
    _, out, _ = cli("runs", "--store", store)
    assert "s-tna-inf, 2 target set(s): 6 fake users per target set, written " in out
