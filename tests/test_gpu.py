"""The CUDA paths keep the CPU contracts: ``pytest -m gpu`` on a machine with an NVIDIA GPU.

Deselected by default (``addopts`` in pyproject.toml) and skipped, with the reason shown,
where torch sees no CUDA device. Each test runs the same call on the CPU and on the GPU and
compares them, or checks on the GPU the contract its CPU test checks. The neural victims draw
their parameters from per-replica generators on their own device, so a GPU replica is not the
CPU replica: there the contracts are the batching equivalence and the learning itself.
"""

import numpy as np
import pytest
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.kkt import Hessian, RowBlockInverse
from recpoison.attacks.meta_gradient import OPTIMIZERS, FunctionalNCF, PairData, meta_gradient
from recpoison.data import planted
from recpoison.data.transforms import leave_one_out
from recpoison.experiment.runner import run_experiment
from recpoison.metrics import leave_one_out_hr_ndcg, target_hit_ratio
from recpoison.victims import make_victim
from recpoison.victims.base import replica_seeds
from recpoison.victims.mf import Entries
from recpoison.victims.neural import GMF, MLP, NeuMF

GPU = "cuda"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

FAST = {"epochs": 2, "batch_size": 512, "lr": 1e-2}


def all_scores(model) -> torch.Tensor:
    return model.score_replicas(np.arange(model.train_.n_users)).cpu()


# -- victims ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_ncf_replica_in_batch_equals_replica_alone_on_the_gpu(cls):
    small = planted(80, 60, ratings_per_user=8, rating_scale=None, random_state=3)
    seeds = replica_seeds(7, 3)
    batched = cls(**FAST, n_replicas=3, random_state=7, device=GPU).fit(small)
    scores = batched.score_replicas(np.arange(small.n_users))
    assert scores.device.type == "cuda" and scores.shape == (3, 80, 60)
    for r in (0, 2):
        alone = cls(**FAST, seeds=[seeds[r]], device=GPU).fit(small)
        torch.testing.assert_close(scores[r].cpu(), all_scores(alone)[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores[0], scores[1], atol=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "lazy-adam"])
def test_neumf_learns_on_the_gpu_as_on_the_cpu(optimizer):
    """Leave-one-out HR@10 on planted data: the GPU's replicas (other initial draws) reach the
    CPU's quality within noise, far above popularity (measured on the CPU: ~0.35)."""
    data = planted(300, 200, ratings_per_user=20, rating_scale=None, random_state=0)
    train, test_items = leave_one_out(data, random_state=0)
    hr = {}
    for device in ("cpu", GPU):
        model = NeuMF(
            epochs=5,
            lr=1e-2,
            batch_size=512,
            n_replicas=4,
            random_state=0,
            device=device,
            optimizer=optimizer,
        ).fit(train, exclude_items=test_items)
        hr[device] = leave_one_out_hr_ndcg(model, train, test_items, random_state=0)["hr"]
        assert np.all(model.loss_history_[-1] < model.loss_history_[0])
    assert hr[GPU].mean() > 0.5, hr
    assert abs(hr[GPU].mean() - hr["cpu"].mean()) < 0.08, hr


@pytest.mark.parametrize(
    ("name", "params", "tolerance"),
    [
        ("als-mf", {"rank": 5, "n_replicas": 2, "dtype": "float64"}, 1e-8),
        # rank >= DUAL_FROM_RANK: the users (8 ratings) and most items solved in the dual form
        ("als-mf", {"rank": 16, "n_replicas": 2, "dtype": "float64"}, 1e-8),
        ("random-walk", {"dtype": "float64", "tol": 1e-12}, 1e-10),
        ("nuclear-norm", {"max_rank": 10, "iterations": 60, "dtype": "float64"}, 1e-4),
    ],
)
def test_factorization_and_graph_victims_give_the_cpu_scores(name, params, tolerance):
    data = planted(60, 40, n_factors=3, ratings_per_user=8, random_state=0)
    scores = {
        device: make_victim(name, **params, random_state=0, device=device)
        .fit(data)
        .score_replicas(np.arange(data.n_users))
        for device in ("cpu", GPU)
    }
    assert scores[GPU].device.type == "cuda"
    torch.testing.assert_close(scores[GPU].cpu(), scores["cpu"], atol=tolerance, rtol=tolerance)


# -- attacks ----------------------------------------------------------------------------------
def test_mf_hessian_products_equal_on_the_gpu():
    data = planted(50, 30, n_factors=3, ratings_per_user=8, random_state=2)
    gen = torch.Generator().manual_seed(1)
    users = torch.randn(50, 4, dtype=torch.float64, generator=gen)
    items = torch.randn(30, 4, dtype=torch.float64, generator=gen)
    p, q = torch.randn_like(users), torch.randn_like(items)
    products = {}
    for device in ("cpu", GPU):
        on = torch.device(device)
        entries = Entries.from_interactions(data, 3.0, torch.float64, on)
        hessian = Hessian(entries, users.to(on), items.to(on), 0.7, 1.3)
        products[device] = [h.cpu() for h in hessian((p.to(on), q.to(on)))]
    for gpu, cpu in zip(products[GPU], products["cpu"], strict=True):
        torch.testing.assert_close(gpu, cpu)


def test_row_block_inverse_equals_on_the_gpu():
    """Rank 16: the users (8 ratings) and most items take the Woodbury form."""
    data = planted(50, 30, n_factors=3, ratings_per_user=8, random_state=2)
    gen = torch.Generator().manual_seed(3)
    items = torch.randn(30, 16, dtype=torch.float64, generator=gen)
    x = torch.randn(50, 16, dtype=torch.float64, generator=gen)
    solved = {}
    for device in ("cpu", GPU):
        on = torch.device(device)
        entries = Entries.from_interactions(data, 3.0, torch.float64, on)
        solved[device] = RowBlockInverse(entries, items.to(on), 0.7)(x.to(on)).cpu()
    torch.testing.assert_close(solved[GPU], solved["cpu"])


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pga", {"n_iter": 3, "goal": "integrity"}),
        ("u-tna", {"rank": 8, "n_iter": 3}),
        ("s-tna-inf", {"rank": 8, "n_iter": 3, "n_influential": 20}),
        ("graph-attack", {"steps": 5}),
        ("s-graph", {"steps": 5, "delta": 20}),
    ],
)
def test_factorization_and_graph_attacks_make_the_cpu_profiles(name, params):
    """The same fake users on both devices: float64 arithmetic in another order may swap a
    filler whose weight ties another's, hardly more."""
    data = planted(120, 60, n_factors=3, ratings_per_user=10, random_state=0)
    fakes = {
        device: make_attack(name, n_fillers=8, **params, device=device).generate(
            data, [5], 4, random_state=0
        )
        for device in ("cpu", GPU)
    }
    gpu, cpu = (fakes[d].matrix.toarray() != 0 for d in (GPU, "cpu"))
    assert gpu.shape == cpu.shape == (4, 60)
    assert (gpu & cpu).sum() >= 0.9 * cpu.sum(), (gpu.sum(1), cpu.sum(1))


def test_poison_model_with_a_gpu_surrogate_drives_its_poison_model_to_the_target():
    """The CPU test of the authors' schedule, with the surrogate (and so the attack) on the GPU;
    the victim trained on its fake users puts the target above the clean victim."""
    data = planted(250, 180, ratings_per_user=20, rating_scale=None, random_state=0)
    target = int(np.argsort(np.asarray(data.matrix.sum(0)).ravel(), kind="stable")[5])
    surrogate = NeuMF(
        embedding_dim=8, layers=(32, 16, 8), epochs=10, batch_size=512, lr=5e-3,
        n_replicas=3, random_state=1, device=GPU,
    )  # fmt: skip
    attack = make_attack("poison-model", n_fillers=10, rounds=3, fake_per_step=5)
    fake = attack.generate(data, [target], 25, surrogate=surrogate, random_state=0)
    for step in fake.info["trace"]:
        assert step["hr"][0] < 0.2 and max(step["hr"]) > 0.8
    victim = NeuMF(
        embedding_dim=8, layers=(32, 16, 8), epochs=10, batch_size=512, lr=5e-3,
        n_replicas=4, random_state=1, device=GPU,
    )  # fmt: skip
    clean = target_hit_ratio(victim.clone().fit(data), data, [target]).mean(10)
    poisoned = data.with_fake_users(fake)
    attacked = target_hit_ratio(victim.clone().fit(poisoned), poisoned, [target]).mean(10)
    assert attacked > clean + 0.02, (clean, attacked)  # CPU: 0.000 -> 0.061


def test_meta_gradient_on_the_gpu_equals_the_cpu():
    data = planted(12, 10, n_factors=2, ratings_per_user=4, rating_scale=None, random_state=0)
    victim = make_victim("neumf", embedding_dim=4, layers=(8, 4), random_state=0, device="cpu")
    users, items = np.divmod(np.arange(data.n_users * data.n_items), data.n_items)
    labels = torch.as_tensor(data.matrix.toarray().ravel(), dtype=torch.float64)
    gradients = {}
    for device in ("cpu", GPU):
        model = FunctionalNCF(victim.initial_module(12, 10), dtype=torch.float64)
        model.initial = {k: v.to(device) * (30 if v.dim() == 2 else 1) for k, v in
                         model.initial.items()}  # fmt: skip
        pairs = PairData(
            torch.as_tensor(users, device=device), torch.as_tensor(items, device=device)
        )
        grad, _, _ = meta_gradient(model, pairs, labels.to(device), 6, OPTIMIZERS["adam"](0.02))
        gradients[device] = grad.cpu()
    torch.testing.assert_close(gradients[GPU], gradients["cpu"])


def test_meta_attack_with_a_gpu_surrogate_inserts_distinct_non_edges():
    data = planted(40, 30, n_factors=3, ratings_per_user=6, rating_scale=None, random_state=1)
    gmf = make_victim("gmf", random_state=4, device=GPU)
    result = make_attack("meta", steps=10, flips_per_step=2).perturb(
        data, 7, surrogate=gmf, random_state=0
    )
    flips = result.flips
    assert flips.shape == (7, 3) and (flips[:, 2] == 1).all()
    assert len(np.unique(flips[:, 0] * data.n_items + flips[:, 1])) == 7
    assert (data.matrix[flips[:, 0], flips[:, 1]] == 0).all()


# -- the runner -------------------------------------------------------------------------------
def test_a_run_on_the_gpu_stores_every_cell(planted_csv, tmp_path):
    spec = {
        "name": "gpu",
        "datasets": [{"source": str(planted_csv(n_users=60)), "transforms": ["binarize"]}],
        "victims": [{"name": "neumf", "params": {"epochs": 2, "layers": [8, 4], "lr": 0.01}}],
        "attacks": [{"name": "none"}, {"name": "random", "params": {"n_fillers": 5}}],
        "sizes": [0.05],
        "targets": [{"type": "unpopular", "count": 2}],
        "retrains": 3,
        "ks": [10],
        "device": GPU,
        "seed": 3,
    }
    summary = run_experiment(spec, tmp_path / "gpu.db", progress=False)
    assert summary.n_computed == summary.n_cells > 0 and summary.n_skipped == 0, summary
