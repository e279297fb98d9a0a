"""Meta-gradient edge attacks share their budgets: a budget's flips are the first flips of every
larger budget with the same random state, a larger budget goes on from a smaller one's state,
an interrupted edge cell from its last meta-gradient; and the runner hands them their surrogate."""

import json
import sqlite3

import numpy as np
import pytest

from recpoison.attacks import make_attack
from recpoison.data import planted
from recpoison.data.transforms import binarize
from recpoison.experiment.cells import _attack_and_surrogate, execute_cell
from recpoison.experiment.expansion import expand_cells
from recpoison.experiment.progress import ATTACK_PROGRESS, checkpoints_in
from recpoison.experiment.runner import run_experiment
from recpoison.experiment.spec import parse_spec
from recpoison.victims.neural import MLP

FAST = {"steps": 4, "flips_per_step": 3}
GMF = {"name": "gmf", "params": {"epochs": 3, "lr": 0.01}}


@pytest.fixture
def data():
    return binarize(planted(40, 30, n_factors=3, ratings_per_user=6, random_state=0))


@pytest.fixture
def csv_path(planted_csv):
    return str(planted_csv())


@pytest.mark.parametrize("name", ["meta", "meta-approx", "meta-new-users"])
def test_a_larger_budget_begins_with_a_smaller_ones_flips_and_goes_on_from_its_state(data, name):
    params = {**FAST, "new_users": 3} if name == "meta-new-users" else FAST
    small_attack = make_attack(name, **params)
    small = small_attack.perturb(data, 7, random_state=5)
    large = make_attack(name, **params).perturb(data, 12, random_state=5)
    np.testing.assert_array_equal(small.flips, large.flips[:7])
    state = small_attack.progress_
    assert state.size == 6  # two whole meta-gradients; the partial third is not shared
    resumed = make_attack(name, **params).perturb(data, 12, random_state=5, resume_from=state)
    np.testing.assert_array_equal(resumed.flips, large.flips)
    assert resumed.info["resumed_from"] == 6 and large.info["resumed_from"] == 0
    assert resumed.info["surrogate_loss"] == pytest.approx(large.info["surrogate_loss"])
    assert state.size == 6  # the caller's state is left as it was
    other_seed = make_attack(name, **params).perturb(data, 12, random_state=6, resume_from=state)
    assert other_seed.info["resumed_from"] == 0  # another random state: a stale state, ignored


def spec_of(csv_path, sizes, **extra):
    return {
        "name": "edge-budgets",
        "datasets": [{"source": csv_path, "transforms": ["binarize"]}],
        "victims": [GMF],
        "attacks": [{"name": "meta", "params": FAST}],
        "sizes": sizes,
        "targets": [{"type": "none"}],
        "retrains": 1,
        "victim_quality": False,
        "device": "cpu",
        "seed": 0,
        **extra,
    }


def meta_cells(spec):
    return [c for c in expand_cells(parse_spec(spec)) if c.labels.get("attack") == "meta"]


def test_an_interrupted_edge_cell_goes_on_from_its_last_meta_gradient(
    csv_path, tmp_path, monkeypatch, checkpoint_every_step
):
    (cell,) = meta_cells(spec_of(csv_path, [0.048]))  # 4.8 % of 420 negatives: 20 flips
    folder = tmp_path / "progress"
    real, done = ATTACK_PROGRESS.checkpoint, []

    def interrupting(key, label, whole=None):
        hook = real(key, label, whole)

        def on_step(state):
            hook(state)
            done.append(state.size)
            if len(done) == 2:
                raise KeyboardInterrupt

        return on_step

    monkeypatch.setattr(ATTACK_PROGRESS, "checkpoint", interrupting)
    with ATTACK_PROGRESS.persisted_in(folder), pytest.raises(KeyboardInterrupt):
        execute_cell(cell.config, "cpu")
    monkeypatch.setattr(ATTACK_PROGRESS, "checkpoint", real)
    (saved,) = checkpoints_in(folder)
    assert (saved.attack, saved.done, saved.unit) == ("meta", [6], "flips")
    ATTACK_PROGRESS.clear_memory()
    with ATTACK_PROGRESS.persisted_in(folder):
        resumed = execute_cell(cell.config, "cpu")
    ATTACK_PROGRESS.clear_memory()
    messages = []
    fresh = execute_cell(cell.config, "cpu", status=messages.append)
    flips = [m.rsplit(": ", 1)[1] for m in messages if m.endswith(" flips") and "/" in m]
    assert flips == [f"{n}/20 flips" for n in (3, 6, 9, 12, 15, 18)]  # whole meta-gradients
    assert resumed.info["attack"][0]["resumed_from"] == 6
    assert fresh.info["attack"][0]["resumed_from"] == 0
    assert resumed.results == fresh.results
    assert resumed.info["untargeted"] == fresh.info["untargeted"]


def test_a_spec_s_budgets_share_one_flip_sequence(csv_path, tmp_path, checkpoint_every_step):
    """Budgets of 20 and 42 flips in one run: the larger goes on from the smaller's 18 flips (six
    whole meta-gradients) and stores what a run of the larger budget alone stores."""
    run_experiment(spec_of(csv_path, [0.048, 0.1]), tmp_path / "both.db", progress=False)
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec_of(csv_path, [0.1]), tmp_path / "alone.db", progress=False)

    def larger_cell(store):
        with sqlite3.connect(store) as db:
            query = "SELECT key, info_json FROM cells WHERE config_json LIKE '%\"size\": 0.1,%'"
            ((key, info),) = db.execute(query).fetchall()
        return key, json.loads(info)

    (key, shared), (alone_key, single) = (
        larger_cell(tmp_path / "both.db"),
        larger_cell(tmp_path / "alone.db"),
    )
    assert key == alone_key  # the same cell
    assert shared["attack"][0]["resumed_from"] == 18
    assert single["attack"][0]["resumed_from"] == 0
    assert shared["untargeted"] == single["untargeted"]
    assert shared["attack"][0]["surrogate_loss"] == single["attack"][0]["surrogate_loss"]


def test_meta_cells_train_the_spec_s_surrogate_or_the_victim(csv_path):
    (white_box,) = meta_cells(spec_of(csv_path, [0.05]))
    assert white_box.config["surrogate"] == {"name": "gmf", "params": GMF["params"]}
    mlp = {"name": "mlp", "params": {"layers": [8, 4]}}
    (transfer,) = meta_cells(spec_of(csv_path, [0.05], surrogate=mlp))
    assert transfer.config["surrogate"] == mlp
    _, surrogate = _attack_and_surrogate(transfer.config, "cpu", 0)
    assert isinstance(surrogate, MLP) and surrogate.get_params()["layers"] == [8, 4]


def test_a_smaller_budget_goes_on_from_a_larger_one_s_first_steps_and_keeps_it(
    csv_path, tmp_path, checkpoint_every_step
):
    """Run 1 computes 42 flips; run 2, in a fresh process, 20 flips: it takes the first six
    meta-gradients of run 1's checkpoint, stores the rows of 20 flips alone, and leaves the
    checkpoint of 42 flips in place for larger budgets."""
    store = tmp_path / "grid.db"
    run_experiment(spec_of(csv_path, [0.1]), store, progress=False)
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec_of(csv_path, [0.048]), store, progress=False)
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec_of(csv_path, [0.048]), tmp_path / "alone.db", progress=False)

    def smaller_cell(path):
        with sqlite3.connect(path) as db:
            query = "SELECT info_json FROM cells WHERE config_json LIKE '%\"size\": 0.048,%'"
            ((info,),) = db.execute(query).fetchall()
        return json.loads(info)

    shared, single = smaller_cell(store), smaller_cell(tmp_path / "alone.db")
    assert shared["attack"][0]["resumed_from"] == 18
    assert single["attack"][0]["resumed_from"] == 0
    assert shared["untargeted"] == single["untargeted"]
    (kept,) = checkpoints_in(tmp_path / "grid.db.progress")
    assert kept.done == [42]


def test_each_attack_draw_has_its_own_checkpoint_and_draw_zero_is_the_single_draw(
    csv_path, tmp_path, checkpoint_every_step
):
    """attack_draws: 2 in a store that ran one draw: draw 0 goes on from the one-draw cell's
    checkpoint (the same flips), draw 1 starts its own, listed as "meta (draw 2)"."""
    store = tmp_path / "draws.db"
    run_experiment(spec_of(csv_path, [0.1]), store, progress=False)
    ATTACK_PROGRESS.clear_memory()
    run_experiment(spec_of(csv_path, [0.1], attack_draws=2), store, progress=False)
    with sqlite3.connect(store) as db:
        infos = {
            json.loads(config).get("attack_draws", 1): json.loads(info)
            for config, info in db.execute("SELECT config_json, info_json FROM cells")
        }
    one, two = infos[1]["attack"], infos[2]["attack"]
    assert len(one) == 1 and len(two) == 2
    assert two[0]["resumed_from"] == 42 and two[1]["resumed_from"] == 0  # 14 whole steps of 3
    assert two[0]["surrogate_loss"] == one[0]["surrogate_loss"]
    assert two[1]["surrogate_loss"] != one[0]["surrogate_loss"]
    labels = sorted(c.attack for c in checkpoints_in(f"{store}.progress"))
    assert labels == ["meta", "meta (draw 2)"]


def test_draws_of_different_sizes_train_apart_so_draw_zero_is_the_single_draw(
    tmp_path, monkeypatch, checkpoint_every_step
):
    """meta-similar-users' draws copy different numbers of real users' items; a batched fit
    would pad the smaller draws' epochs, so they train apart and draw 0 stays the single draw."""
    frame = planted(40, 30, n_factors=3, ratings_per_user=8, random_state=0).to_frame()
    frame = frame.drop(frame.sample(frac=0.3, random_state=0).index)  # users of unequal sizes
    monkeypatch.chdir(tmp_path)  # a relative source: the path is part of every seed
    frame.to_csv("uneven.csv", index=False)
    attack = {"name": "meta-similar-users", "params": {**FAST, "new_users": 3}}

    def untargeted(draws: int) -> dict:
        spec = spec_of("uneven.csv", [0.1], attacks=[attack], attack_draws=draws)
        spec["retrains"] = 2
        run_experiment(spec, f"{draws}.db", progress=False)
        with sqlite3.connect(f"{draws}.db") as db:
            rows = db.execute("SELECT config_json, info_json FROM cells").fetchall()
        (info,) = [
            i for c, i in rows if json.loads(c).get("attack", {}).get("name") == attack["name"]
        ]
        return json.loads(info)

    single, drawn = untargeted(1), untargeted(3)
    assert len({d["seeded_edges"] for d in drawn["attack"]}) > 1  # the draws differ in size
    np.testing.assert_array_equal(
        drawn["untargeted"]["train_loss"][:2], single["untargeted"]["train_loss"]
    )
