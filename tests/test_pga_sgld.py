"""PGA / SGLD (Li et al. 2016) and the MF attack (Huang 2021): gradients, projection, effect."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recpoison.attacks import make_attack
from recpoison.attacks.kkt import (
    Hessian,
    RowBlockInverse,
    availability_objective,
    conjugate_gradient,
    implicit_gradient,
    integrity_objective,
    solve_hessian,
)
from recpoison.attacks.pga_sgld import MFAttack, PGAAttack, SGLDAttack
from recpoison.data import FakeProfiles, Interactions, planted
from recpoison.errors import ConfigError
from recpoison.utilities import availability_utility, integrity_utility, ttest_detectability
from recpoison.victims.mf import ALSMF, DUAL_FROM_RANK, Entries, als
from recpoison.victims.nuclear import NuclearNormMF, soft_impute

F64 = torch.float64


# -- the KKT gradient against finite differences of the retrained victim -------------------------
def _tiny_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    m, n, n_fake = 20, 15, 3
    truth = rng.normal(size=(m, 2)) @ rng.normal(size=(2, n))
    rows, cols = np.nonzero(rng.random((m, n)) < 0.5)
    normal = Entries(
        torch.as_tensor(rows),
        torch.as_tensor(cols),
        torch.as_tensor(truth[rows, cols] + 0.3 * rng.normal(size=len(rows))),
        (m, n),
    )
    fake_rows = np.repeat(np.arange(n_fake), 4)
    fake_cols = np.concatenate([rng.choice(n, 4, replace=False) for _ in range(n_fake)])
    values = rng.uniform(-1, 1, len(fake_rows))

    def stacked(vals: np.ndarray) -> Entries:
        fake = Entries(
            torch.as_tensor(fake_rows),
            torch.as_tensor(fake_cols),
            torch.as_tensor(vals),
            (n_fake, n),
        )
        return normal.stack(fake)

    return normal, stacked, values, torch.as_tensor(fake_rows + m), torch.as_tensor(fake_cols)


def _utilities(normal: Entries, clean):
    m = normal.shape[0]
    target, weight = torch.tensor([3]), torch.tensor([2.0], dtype=F64)
    return {
        "availability": lambda u, v: availability_objective(u, v, clean, normal),
        "integrity": lambda u, v: integrity_objective(u, v, m, target, weight, 0.0),
    }


def _check_against_finite_differences(fit, stacked, values, rows, cols, utilities, lam):
    """Central differences (one refit per perturbed fake rating) vs the implicit gradient."""
    entries = stacked(values)
    state, users, items = fit(entries, None)
    h = 1e-2
    numeric = {name: np.zeros(len(values)) for name in utilities}
    for e in range(len(values)):
        up, down = values.copy(), values.copy()
        up[e] += h
        down[e] -= h
        fit_up, fit_down = fit(stacked(up), state)[1:], fit(stacked(down), state)[1:]
        for name, utility in utilities.items():
            numeric[name][e] = (utility(*fit_up)[0] - utility(*fit_down)[0]) / (2 * h)
    for name, utility in utilities.items():
        gradient, residual, fallback = implicit_gradient(
            entries,
            users,
            items,
            lam,
            lam,
            utility(users, items)[1],
            rows,
            cols,
            "cg",
            500,
            tol=1e-9,
        )
        assert residual < 1e-5 and not fallback
        error = np.abs(gradient.numpy() - numeric[name]).max() / np.abs(numeric[name]).max()
        assert error < 2e-2, (name, error)


def test_als_kkt_gradient_matches_finite_differences_of_the_retrained_model():
    normal, stacked, values, rows, cols = _tiny_problem()
    lam = 1.0
    start = torch.randn(1, 15, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    clean_u, clean_v, _ = als(normal, start, lam, lam, 3000)

    def fit(entries, warm):
        users, items, _ = als(entries, clean_v if warm is None else warm, lam, lam, 3000)
        return items, users[0], items[0]

    _check_against_finite_differences(
        fit, stacked, values, rows, cols, _utilities(normal, (clean_u[0], clean_v[0])), lam
    )


def test_nuclear_norm_gradient_matches_finite_differences_of_the_retrained_model():
    normal, stacked, values, rows, cols = _tiny_problem(1)
    lam = 1.0
    gen = torch.Generator().manual_seed(0)

    def fit(entries, warm):
        if warm is not None and warm[0].shape[0] < entries.shape[0]:
            warm = (torch.nn.functional.pad(warm[0], (0, 0, 0, 3)), warm[1], warm[2])
        factors, _ = soft_impute(entries, lam, 15, 3000, 1e-13, gen, warm, oversampling=15)
        u, s, v = factors
        return factors, u * s.sqrt(), v * s.sqrt()

    clean_state, clean_u, clean_v = fit(normal, None)
    assert 0 < clean_state[1].numel() < 15  # a genuinely low-rank solution
    fit_warm = lambda entries, warm: fit(entries, clean_state if warm is None else warm)  # noqa: E731
    _check_against_finite_differences(
        fit_warm, stacked, values, rows, cols, _utilities(normal, (clean_u, clean_v)), lam
    )


def test_block_gradient_is_li_et_als_closed_form_eq12():
    _, stacked, values, rows, cols = _tiny_problem()
    lam = 1.0
    start = torch.randn(1, 15, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    entries = stacked(values)
    users, items, _ = als(entries, start, lam, lam, 500)
    users, items = users[0], items[0]
    _, (grad_u, grad_v) = integrity_objective(
        users, items, 20, torch.tensor([3]), torch.tensor([2.0], dtype=F64), 0.0
    )
    gradient = implicit_gradient(
        entries, users, items, lam, lam, (grad_u, grad_v), rows, cols, "block"
    ).gradient
    u, v = users.numpy(), items.numpy()
    r, c = entries.rows.numpy(), entries.cols.numpy()
    for e, (i, j) in enumerate(zip(rows.numpy(), cols.numpy(), strict=True)):
        sigma_u = v[c[r == i]].T @ v[c[r == i]]
        sigma_v = u[r[c == j]].T @ u[r[c == j]]
        d_u = np.linalg.solve(lam * np.eye(3) + sigma_u, v[j])  # ∂ũ_i/∂M̃_ij
        d_v = np.linalg.solve(lam * np.eye(3) + sigma_v, u[i])  # ∂v_j/∂M̃_ij
        expected = grad_u[i].numpy() @ d_u + grad_v[j].numpy() @ d_v
        assert gradient[e].item() == pytest.approx(expected, abs=1e-10)
        if j != 3:  # the closed form ignores the U-V coupling: no signal on a filler
            assert expected == pytest.approx(0.0, abs=1e-12)


def test_hessian_products_equal_autograd():
    """``Hessian`` (Gram blocks plus the per-entry cross term) against the Hessian-vector
    product of the loss ``‖R_Ω(M − U Vᵀ)‖² + λ_U‖U‖² + λ_V‖V‖²`` by double backward."""
    _, stacked, values, _, _ = _tiny_problem()
    entries = stacked(values)
    gen = torch.Generator().manual_seed(1)
    users, items = (torch.randn(n, 3, dtype=F64, generator=gen) for n in entries.shape)
    p, q = torch.randn_like(users), torch.randn_like(items)

    def loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        pred = (u[entries.rows] * v[entries.cols]).sum(1)
        penalty = 0.7 * u.square().sum() + 1.3 * v.square().sum()
        return ((entries.values - pred) ** 2).sum() + penalty

    _, (expected_u, expected_v) = torch.autograd.functional.hvp(loss, (users, items), (p, q))
    h_u, h_v = Hessian(entries, users, items, 0.7, 1.3)((p, q))
    torch.testing.assert_close(h_u, expected_u)
    torch.testing.assert_close(h_v, expected_v)


@pytest.mark.parametrize("rank", [3, DUAL_FROM_RANK + 2])
def test_row_block_inverse_equals_the_inverted_diagonal_blocks(rank):
    """``RowBlockInverse`` (Gram Cholesky for rows of at least k entries, Woodbury below, ``x/2λ``
    for an empty row) against each row's block ``2(λI + Σ_j y_j y_jᵀ)`` inverted densely."""
    rng = np.random.default_rng(2)
    lam, n_rows, n_cols = 0.3, rank + 4, 3 * rank
    rows = np.concatenate([np.full(r, r) for r in range(n_rows)])  # row r has r entries
    cols = np.concatenate([rng.choice(n_cols, size=r, replace=False) for r in range(n_rows)])
    entries = Entries(
        torch.as_tensor(rows),
        torch.as_tensor(cols),
        torch.ones(len(rows), dtype=F64),
        (n_rows, n_cols),
    )
    other = torch.as_tensor(rng.normal(size=(n_cols, rank)))
    x = torch.as_tensor(rng.normal(size=(n_rows, rank)))
    solved = RowBlockInverse(entries, other, lam)(x).numpy()
    y = other.numpy()
    for r in range(n_rows):
        observed = cols[rows == r]
        block = 2 * (lam * np.eye(rank) + y[observed].T @ y[observed])
        expected = np.linalg.solve(block, x[r].numpy())
        np.testing.assert_allclose(solved[r], expected, rtol=1e-10, atol=1e-12)


def test_cg_returns_its_progress_when_the_residual_norm_has_not_fallen_below_the_start():
    """``A = diag(1, 100)``, ``b = (10, 1)``: CG's first step lowers ``φ(z) = ½zᵀAz − bᵀz`` from
    0 to about −25.5 while the residual norm grows fivefold. Stopped there, CG must return that
    step (an ascent direction for PGA), not ``z = 0``; a second step solves the system; a
    negative definite ``A`` is reported as such."""
    scale = (torch.tensor([1.0], dtype=F64), torch.tensor([100.0], dtype=F64))
    rhs = (torch.tensor([10.0], dtype=F64), torch.tensor([1.0], dtype=F64))

    def operator(x):
        return x[0] * scale[0], x[1] * scale[1]

    def identity(x):
        return x

    z, relative, indefinite = conjugate_gradient(operator, identity, rhs, 1, 1e-12)
    alpha = 101 / 200  # rᵀr / rᵀAr
    assert not indefinite
    assert float(z[0]) == pytest.approx(10 * alpha) and float(z[1]) == pytest.approx(alpha)
    assert relative == pytest.approx(np.hypot(10 - 10 * alpha, 1 - 100 * alpha) / np.hypot(10, 1))
    assert relative > 4
    z, relative, indefinite = conjugate_gradient(operator, identity, rhs, 2, 1e-12)
    assert float(z[0]) == pytest.approx(10.0) and float(z[1]) == pytest.approx(0.01)
    assert relative < 1e-12 and not indefinite
    negative = conjugate_gradient(lambda x: (-x[0], -x[1]), identity, rhs, 5, 1e-12)
    assert negative.indefinite and float(negative.z[0]) == 0.0


def test_cg_solves_the_hessian_system():
    normal, stacked, values, _, _ = _tiny_problem()
    start = torch.randn(1, 15, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    entries = stacked(values)
    users, items, _ = als(entries, start, 1.0, 1.0, 3000)
    _, rhs = availability_objective(users[0], items[0], (users[0, :20], items[0]), normal)
    _, residual, fallback = solve_hessian(
        entries, users[0], items[0], 1.0, 1.0, rhs, "cg", 300, 1e-9
    )
    assert residual < 1e-8 and not fallback


def test_cg_falls_back_to_the_block_solution_where_the_hessian_is_indefinite():
    """Far from a minimum (tiny factors, ratings around 10) the residual cross term makes ``H``
    indefinite: CG meets negative curvature at once and returns the block-diagonal solution,
    flagged, with that solution's own relative residual."""
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(rng.random((20, 15)) < 0.5)
    ratings = torch.as_tensor(10 + rng.normal(size=len(rows)))
    entries = Entries(torch.as_tensor(rows), torch.as_tensor(cols), ratings, (20, 15))
    gen = torch.Generator().manual_seed(0)
    users, items = (0.1 * torch.randn(n, 3, dtype=F64, generator=gen) for n in (20, 15))
    rhs = (
        torch.randn(20, 3, dtype=F64, generator=gen),
        torch.randn(15, 3, dtype=F64, generator=gen),
    )
    z, residual, fallback = solve_hessian(entries, users, items, 0.01, 0.01, rhs, "cg", 50, 1e-8)
    block, _, _ = solve_hessian(entries, users, items, 0.01, 0.01, rhs, "block")
    assert fallback
    torch.testing.assert_close(z, block, rtol=0, atol=0)
    hz = Hessian(entries, users, items, 0.01, 0.01)(z)
    error = torch.cat([(rhs[0] - hz[0]).ravel(), (rhs[1] - hz[1]).ravel()]).norm()
    assert residual == pytest.approx(float(error / torch.cat([r.ravel() for r in rhs]).norm()))


# -- generated profiles ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> Interactions:
    return planted(n_users=300, n_items=200, n_factors=4, ratings_per_user=20, random_state=0)


B, N_FAKE = 20, 15
VICTIM = {"rank": 10, "iterations": 30, "dtype": "float64", "random_state": 1}


@pytest.fixture(scope="module")
def clean(data) -> ALSMF:
    return ALSMF(**VICTIM).fit(data)


@pytest.fixture(scope="module")
def profiles(data) -> dict[str, FakeProfiles]:
    """Attacks computed once, used by several tests (fixed seeds)."""
    target = [int(np.argsort(np.bincount(data.matrix.indices))[20])]
    attacks = {
        "pga": (PGAAttack("availability", n_fillers=B, n_iter=20), []),
        "sgld": (SGLDAttack("availability", n_fillers=B, n_iter=20), []),
        "pga_up": (PGAAttack("integrity", n_fillers=B, n_iter=10), target),
        "pga_down": (PGAAttack("integrity", n_fillers=B, n_iter=10, weights=[-2.0]), target),
        "sgld_up": (SGLDAttack("integrity", n_fillers=B, n_iter=10), target),
    }
    return {
        name: attack.generate(data, t, N_FAKE, random_state=0)
        for name, (attack, t) in attacks.items()
    }


def _uniform_attack(data: Interactions, seed: int = 0) -> FakeProfiles:
    """Li et al.'s "uniform attack": items and ratings uniformly at random."""
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((N_FAKE, data.n_items)), axis=1)[:, :B].ravel()
    ratings = rng.integers(1, 6, len(cols)).astype(float)
    matrix = sp.csr_matrix(
        (ratings, (np.repeat(np.arange(N_FAKE), B), cols)), shape=(N_FAKE, data.n_items)
    )
    return FakeProfiles(matrix, np.array([], dtype=np.int64))


def _retrain(data: Interactions, fake: FakeProfiles) -> ALSMF:
    return ALSMF(**VICTIM).fit(data.with_fake_users(fake))


@pytest.mark.parametrize("name", ["pga", "sgld", "pga_up", "pga_down", "sgld_up"])
def test_profiles_are_valid_ratings_with_exactly_b_fillers(data, profiles, name):
    fake = profiles[name]
    targets = fake.targets
    assert fake.matrix.shape == (N_FAKE, data.n_items)
    assert set(np.unique(fake.matrix.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    per_user = np.diff(fake.matrix.indptr)
    if name in ("pga", "sgld"):
        assert len(targets) == 0
        assert np.all(per_user == B)
    else:
        assert np.all(per_user == B + 1)
        rating = fake.matrix[:, targets[0]].toarray().ravel()
        assert np.all(rating == (1.0 if name == "pga_down" else 5.0))


def test_pga_utility_increases_over_iterations(profiles):
    history = np.array(profiles["pga"].info["utility_history"])
    assert len(history) == 21
    assert history[-1] > 5 * history[0]
    assert np.mean(np.diff(history) > 0) > 0.8
    up = np.array(profiles["pga_up"].info["utility_history"])
    assert up[-1] > up[0]
    assert profiles["pga"].info["utility_projected"] > history[0]


def test_availability_attacks_beat_the_uniform_attack(data, clean, profiles):
    uniform = availability_utility(clean, _retrain(data, _uniform_attack(data)))[0]
    for name in ("pga", "sgld"):
        shift = availability_utility(clean, _retrain(data, profiles[name]))[0]
        assert shift > 1.5 * uniform, (name, shift, uniform)


def test_integrity_attacks_move_the_target_in_the_chosen_direction(data, clean, profiles):
    target = profiles["pga_up"].targets
    up = integrity_utility(clean, _retrain(data, profiles["pga_up"]), target)[0]
    down = integrity_utility(clean, _retrain(data, profiles["pga_down"]), target)[0]
    sgld = integrity_utility(clean, _retrain(data, profiles["sgld_up"]), target)[0]
    assert up > 0.1 and sgld > 0.05 and down < -0.1


def test_sgld_fake_users_are_harder_to_tell_from_normal_users(data, profiles):
    pga = ttest_detectability(data.with_fake_users(profiles["pga"]))
    sgld = ttest_detectability(data.with_fake_users(profiles["sgld"]))
    assert pga["p_value"] < 0.05
    assert sgld["p_value"] > pga["p_value"]
    assert abs(sgld["statistic"]) < abs(pga["statistic"])


def test_mf_attack_raises_the_target_hit_ratio(data, clean):
    from recpoison.metrics import target_hit_ratio

    target = [int(np.argsort(np.bincount(data.matrix.indices))[100])]
    fake = MFAttack(n_fillers=B).generate(data, target, 30, random_state=0)
    assert np.all(np.diff(fake.matrix.indptr) == B + 1)
    assert np.all(fake.matrix[:, target[0]].toarray() == 5.0)
    poisoned = data.with_fake_users(fake)
    before = target_hit_ratio(clean, data, target).mean(10)
    after = target_hit_ratio(_retrain(data, fake), poisoned, target).mean(10)
    assert after > before


def test_mf_attack_on_implicit_data_gives_implicit_rows_and_improves_its_objective():
    data = planted(
        n_users=150, n_items=80, n_factors=3, ratings_per_user=12, rating_scale=None, random_state=0
    )
    target = int(np.argsort(np.bincount(data.matrix.indices, minlength=80))[30])
    fake = make_attack("mf", n_fillers=10, n_iter=15).generate(data, [target], 8, random_state=0)
    assert np.all(fake.matrix.data == 1.0)
    assert np.all(np.diff(fake.matrix.indptr) == 11)
    assert np.all(fake.matrix[:, target].toarray() == 1.0)
    history = fake.info["utility_history"]
    assert history[-1] > history[0]


def test_mf_attack_projected_fillers_beat_random_fillers_on_its_own_objective():
    """``utility_projected``: the ALS model retrained on the 0/1 profiles, fake users with
    sampled negatives like normal users. With ``n_iter=0`` the top-B of the uniform initial
    strengths are random fillers, so the optimised fillers must score higher."""
    data = planted(
        n_users=150, n_items=80, n_factors=3, ratings_per_user=12, rating_scale=None, random_state=0
    )
    target = int(np.argsort(np.bincount(data.matrix.indices, minlength=80))[30])
    projected = {
        n_iter: make_attack("mf", n_fillers=10, n_iter=n_iter)
        .generate(data, [target], 8, random_state=0)
        .info["utility_projected"]
        for n_iter in (0, 15)
    }
    assert projected[15] > 1.03 * projected[0]


def test_pga_against_the_nuclear_norm_victim(data):
    victim = NuclearNormMF(lam=8.0, max_rank=20, dtype="float64", random_state=0)
    fake = PGAAttack("availability", n_fillers=B, n_iter=4, inner_iterations=20).generate(
        data, [], N_FAKE, surrogate=victim, random_state=0
    )
    assert fake.info["victim_model"] == "nuclear-norm"
    history = fake.info["utility_history"]
    assert np.all(np.diff(history) > 0)
    assert fake.info["cg_residual_max"] < 0.1


def test_hybrid_goal_and_determinism(data):
    attack = PGAAttack("hybrid", n_fillers=5, mu=(1.0, -1.0), n_iter=3)
    first = attack.generate(data, [7], 4, random_state=3)
    second = attack.generate(data, [7], 4, random_state=3)
    assert (first.matrix != second.matrix).nnz == 0
    assert first.info["goal"] == "hybrid"
    assert np.all(first.matrix[:, 7].toarray() == 5.0)


@pytest.mark.parametrize(
    ("attack", "targets", "match"),
    [
        (PGAAttack("integrity"), [], "target"),
        (PGAAttack("sideways"), [1], "goal"),
        (PGAAttack("integrity", weights=[1.0, 2.0]), [1], "weights"),
        (SGLDAttack(beta=-1.0), [], "beta"),
        (PGAAttack(n_fillers=500), [], "n_fillers"),
    ],
)
def test_bad_inputs_are_config_errors(tiny_explicit, attack, targets, match):
    with pytest.raises(ConfigError, match=match):
        attack.generate(tiny_explicit, targets, 3, random_state=0)


def test_pga_and_sgld_need_explicit_ratings(tiny_implicit):
    for name in ("pga", "sgld"):
        with pytest.raises(ConfigError, match="explicit"):
            make_attack(name).generate(tiny_implicit, [], 2)


def test_availability_attacks_beat_the_random_attack_on_their_utility(data, clean, profiles):
    """Issue: the optimised attacks must beat a random attack of the same size on the utility
    they optimise (RMS change of the unrated predictions), with their default step rules."""
    target = [int(np.argsort(np.bincount(data.matrix.indices))[100])]
    random = make_attack("random", n_fillers=B).generate(data, target, N_FAKE, random_state=0)
    baseline = availability_utility(clean, _retrain(data, random))[0]
    for name in ("pga", "sgld"):
        shift = availability_utility(clean, _retrain(data, profiles[name]))[0]
        assert shift > 1.2 * baseline, (name, shift, baseline)
    steps = profiles["pga"].info["step_history"]
    assert len(steps) == 20 and max(steps) > 0.2  # the line search grew the step
