"""The poison-model attack of Huang et al., "Data Poisoning Attacks to Deep Learning Based
Recommender Systems" (NDSS 2021), section IV (Algorithm 1).

For each fake user v (or ``fake_per_step`` of them at once, as the paper does on ML-1M, V-B):

1. insert v with its target rating (r_max) into the poison model's data and continue its
   ordinary training (ℒ) -- the *pre-training* of IV-C;
2. *poison training* (IV-C): ``rounds`` rounds of training on ``ℒ + λG`` (Eq. 6, with G of
   Eq. 4, see :mod:`recpoison.attacks.poison_loss`); after each round the poison model's own
   HR_t@K on the attacker's normal users is measured (from the same scores as G) and the best
   round is kept (round 0 = the pre-trained model), as in the authors' code;
3. *filler selection* (IV-D): ``r_v = ŷ_v ⊙ p`` (Eq. 8); the top ``n`` non-target items become
   v's fillers and their selection probabilities decay, ``p_i <- δ p_i`` (Eq. 7); p is reset to
   all ones once every entry is below 1;
4. the fillers get ratings from N(μ_i, σ_i²) fitted per item (IV-D; 1.0 on implicit data) and v,
   now complete, joins the poison model's data.

Choices the paper leaves open, and what is done here:

* The poison model is the surrogate (``surrogate``: an unfitted victim of the architecture the
  attacker assumes -- the victim's own under white-box, another one for transfer, V-D) cloned
  with one replica per target set and fitted on the attacker's view of the data (whatever the
  runner passed as ``train``: full or partial knowledge, V-C). Nothing else is read.
* ``schedule="authors"`` (the default) is the authors' procedure (public code of Huang et al.,
  ``attacks/main.py``), which Algorithm 1 describes: for every step a *fresh* poison model is
  pre-trained from scratch, for the surrogate's epochs, on the attacker's data plus the fake
  users made so far plus the new fake user(s) rating only the target. Each finished fake user
  trains with its positives plus ``n_negatives`` negatives per positive drawn once (uniformly,
  with replacement, from the items it did not rate) and kept for the rest of the attack; the
  fake user being generated has its target positive only. Poison training then alternates, per
  round, one optimizer step per normal user on ``λη l_u``, one on ``λ||ŷ_v||²`` and one epoch of
  ℒ (:mod:`recpoison.attacks.poison_authors`, all targets of a cell at once). Differences from
  their code, on purpose: the pre-training keeps its final epoch (they keep the epoch with the
  best *test* HR), everything is seeded (they seed only numpy's negative sampling), HR_t divides
  by the eligible normal users (they divide by all users), and the normal users' negatives are
  re-drawn every epoch as every recpoison NCF victim does (they draw them once for the whole
  attack).
* ``schedule="fast"``: one *base* model is trained once and then continues training
  (``step_epochs`` epochs of ℒ, warm-started, ``partial_fit``) as fake users are inserted;
  every step's poison training runs on a copy of it for ``poison_epochs`` epochs per round
  with the attack term spread over the mini-batches
  (:class:`~recpoison.attacks.poison_loss.PoisonObjective`). It costs one pre-training in all
  instead of one per step; the README measures how its fake users differ.
* No model selection by held-out performance: the authors pick the pre-training epoch by test
  HR, which recpoison never does (DESIGN.md); the round is chosen by the attacker's objective.
* Default parameters (the "Parameter Setting" paragraph of V-A lost its numbers in extraction):
  κ = 1, δ = 0.9, n = 30, λ = 0.01, η = 100, K = 10, as given for this project; δ = 0.9 is the
  best value the text reports for ML-100K (Fig. 5) and a smaller δ is recommended for sparser
  data (IV-D). The paper does not describe rounds; 5 rounds, each one epoch, with the best one
  kept, follow the authors' code. How ℒ and G are weighed per mini-batch is explained in
  :class:`~recpoison.attacks.poison_loss.PoisonObjective`.
* Diagnostics in ``FakeProfiles.info``: ``surrogate_hr`` (the surrogate's own HR_t@K on the
  attacker's view before the attack and, with ``refit_after``, after retraining it from scratch
  on the view plus the fake users), ``trace`` (per step and round: HR_t, G, Σ l_u, ||ŷ_v||²),
  ``chosen_rounds``, ``selection_resets`` and timings (``seconds``, ``seconds_pretrain``,
  ``seconds_per_fake_user``, ``seconds_refit``).
* On explicit data with an implicit-only surrogate (NeuMF), the poison model trains on the
  binarized view, as the paper trains NeuMF (V-A); the fake users' filler ratings are still
  drawn on the original scale.
* ``rate_target=False`` (end of V-B): the target is never inserted and each fake user rates the
  ``n + 1`` (``n + len(targets)``) items with the highest adjusted scores instead.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.attacks.base import Attack
from recpoison.attacks.filler_selection import SelectionProbability
from recpoison.attacks.poison_authors import (
    AuthorsProgress,
    StackedTargets,
    fixed_negatives,
)
from recpoison.attacks.poison_loss import PoisonObjective
from recpoison.attacks.prefix import StepHook, progress_fingerprint
from recpoison.attacks.ratings import (
    RatingSampler,
    assemble_profiles,
    max_rating,
    n_rated_items,
)
from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.transforms import binarize
from recpoison.errors import ConfigError
from recpoison.metrics import target_hit_ratio
from recpoison.utils import RandomState, check_random_state, derive_seed
from recpoison.victims.base import Recommender

logger = logging.getLogger(__name__)

#: How the poison model is trained per step (see the module docstring).
SCHEDULES = ("authors", "fast")

#: Per-round values recorded in a step's trace.
_TRACE_KEYS = ("hr", "G", "target_loss", "fake_norm")

#: Methods and attributes the poison model needs beyond the `Recommender` contract.
_SURROGATE_HOOKS = (
    "seeds",
    "optimizer_step",
    "partial_fit",
    "scores_with_grad",
    "forward_scores",
    "copy_fitted",
    "batch_size",
    "n_negatives",
)


class PoisonModelAttack(Attack):
    """Huang et al.'s attack (NDSS 2021, section IV): fillers chosen by a poison-trained surrogate.

    Parameters (section IV; defaults discussed in the module docstring): ``n_fillers`` (n),
    ``kappa`` (κ of Eq. 2), ``delta`` (δ of Eq. 7), ``lam`` (λ of Eq. 6), ``eta`` (η of Eq. 4),
    ``top_k`` (K, the length of L_u and of the HR_t@K used to pick the round), ``rounds``
    (poison-training rounds per step), ``poison_epochs`` (epochs of ``ℒ + λG`` per round),
    ``pretrain_epochs`` (epochs of the initial fit; ``None`` = the surrogate's own ``epochs``),
    ``step_epochs`` (epochs of ℒ after inserting a step's fake users), ``fake_per_step``
    (fake users generated together), ``users_per_step`` (normal users per optimizer step of the
    attack term, see :class:`~recpoison.attacks.poison_loss.PoisonObjective`; a speed setting),
    ``rate_target`` and ``refit_after`` (retrain the surrogate from scratch on the poisoned view
    to report its HR_t after the attack).
    """

    name: ClassVar[str] = "poison-model"
    requires: ClassVar[frozenset[str]] = frozenset({"surrogate", "differentiable"})

    def __init__(
        self,
        *,
        n_fillers: int = 30,
        rate_target: bool = True,
        kappa: float = 1.0,
        delta: float = 0.9,
        lam: float = 1e-2,
        eta: float = 1e2,
        top_k: int = 10,
        rounds: int = 5,
        poison_epochs: int = 1,
        pretrain_epochs: int | None = None,
        step_epochs: int = 1,
        fake_per_step: int = 1,
        users_per_step: int = 64,
        refit_after: bool = True,
        schedule: str = "authors",
    ) -> None:
        super().__init__(n_fillers=n_fillers)
        self.rate_target = rate_target
        self.kappa = kappa
        self.delta = delta
        self.lam = lam
        self.eta = eta
        self.top_k = top_k
        self.rounds = rounds
        self.poison_epochs = poison_epochs
        self.pretrain_epochs = pretrain_epochs
        self.step_epochs = step_epochs
        self.fake_per_step = fake_per_step
        self.users_per_step = users_per_step
        self.refit_after = refit_after
        self.schedule = schedule

    def grows_by_prefix(self) -> bool:
        """The authors' schedule does (:class:`~recpoison.attacks.poison_authors.AuthorsProgress`);
        the fast one's base model trains on every fake user, so it does not."""
        return self.schedule == "authors"

    # -- checks ---------------------------------------------------------------------------------
    def _check_params(self, surrogate: Recommender) -> None:
        checks = [
            (self.kappa >= 0, "kappa must be >= 0"),
            (0 < self.delta <= 1, "delta must be in (0, 1]"),
            (self.lam >= 0 and self.eta >= 0, "lam and eta must be >= 0"),
            (isinstance(self.top_k, int) and self.top_k >= 1, "top_k must be an integer >= 1"),
            (isinstance(self.rounds, int) and self.rounds >= 0, "rounds must be an integer >= 0"),
            (
                isinstance(self.poison_epochs, int) and self.poison_epochs >= 1,
                "poison_epochs must be an integer >= 1",
            ),
            (
                self.pretrain_epochs is None
                or (isinstance(self.pretrain_epochs, int) and self.pretrain_epochs >= 1),
                "pretrain_epochs must be None or an integer >= 1",
            ),
            (
                isinstance(self.step_epochs, int) and self.step_epochs >= 0,
                "step_epochs must be an integer >= 0",
            ),
            (
                isinstance(self.fake_per_step, int) and self.fake_per_step >= 1,
                "fake_per_step must be an integer >= 1",
            ),
            (
                isinstance(self.users_per_step, int) and self.users_per_step >= 1,
                "users_per_step must be an integer >= 1",
            ),
            (
                self.schedule in SCHEDULES,
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.name}: {message} ({self!r})")
        if "differentiable" not in surrogate.capabilities:
            raise ConfigError(
                f"{self.name} needs a differentiable surrogate (a neural victim such "
                f"as neumf, gmf or mlp); {surrogate.name} is not"
            )
        missing = [hook for hook in _SURROGATE_HOOKS if not hasattr(surrogate, hook)]
        if missing:
            raise ConfigError(f"{self.name}: surrogate {surrogate.name} lacks {', '.join(missing)}")
        if self.pretrain_epochs is not None and "epochs" not in surrogate.get_params():
            raise ConfigError(
                f"{self.name}: pretrain_epochs is set but surrogate "
                f"{surrogate.name} has no 'epochs' parameter"
            )

    # -- the attack -----------------------------------------------------------------------------
    def generate(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_state: RandomState = None,
        resume_from: AuthorsProgress | None = None,
        on_step: StepHook | None = None,
    ) -> FakeProfiles:
        """``n_fake`` profiles promoting ``targets``, built step by step with the poison model
        (``resume_from``, ``on_step``: see :meth:`generate_many`)."""
        return self.generate_many(
            train,
            [targets],
            n_fake,
            surrogate=surrogate,
            random_states=[random_state],
            resume_from=resume_from,
            on_step=on_step,
        )[0]

    def generate_many(
        self,
        train: Interactions,
        target_sets: Sequence[np.ndarray],
        n_fake: int,
        *,
        surrogate: Recommender | None = None,
        random_states: Sequence[RandomState],
        resume_from: AuthorsProgress | None = None,
        on_step: StepHook | None = None,
    ) -> list[FakeProfiles]:
        """One set of ``n_fake`` profiles per target set, each as :meth:`generate` would make it
        with the matching random state. The authors' schedule trains the poison models of all
        target sets together, as stacked replicas (:mod:`recpoison.attacks.poison_authors`),
        goes on from ``resume_from`` (an earlier call's ``progress_``, or a state ``on_step``
        was given) when it was made with the same inputs and fewer fake users, calls ``on_step``
        with its state after each step, and leaves its own state in ``progress_``."""
        checked = [self.check_inputs(train, t, n_fake, surrogate) for t in target_sets]
        self._check_params(surrogate)
        if len(checked) != len(random_states) or len({len(t) for t in checked}) != 1:
            raise ConfigError(
                f"{self.name}: give one random state per target set, and target sets of one size"
            )
        if self.schedule == "fast":
            return [
                self._generate_fast(train, t, n_fake, surrogate, rs)
                for t, rs in zip(checked, random_states, strict=True)
            ]
        return self._generate_authors(
            train, np.stack(checked), n_fake, surrogate, random_states, resume_from, on_step
        )

    def _generate_authors(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        surrogate: Recommender,
        random_states: Sequence[RandomState],
        resume_from: AuthorsProgress | None,
        on_step: StepHook | None,
    ) -> list[FakeProfiles]:
        """The authors' schedule for the ``[R, T]`` target sets ``targets`` at once, going on
        from ``resume_from`` when it matches these inputs (see :class:`AuthorsProgress`)."""
        start = time.perf_counter()
        n_sets = len(targets)
        view = self._training_view(train, surrogate)
        fingerprint = progress_fingerprint(
            self.get_params(), surrogate.get_params(), view, targets, random_states
        )
        if resume_from is not None and resume_from.continues(
            fingerprint, n_fake, self.fake_per_step
        ):
            progress = copy.deepcopy(resume_from)
        else:
            progress = self._start_authors(
                train, view, targets, surrogate, random_states, fingerprint
            )
        resumed_from = progress.n_fake
        steps_start = time.perf_counter()
        sampler = RatingSampler.fit(train, per_item=True)
        for size in _step_sizes(n_fake - progress.n_fake, self.fake_per_step):
            self._authors_step(progress, train, view, targets, size, surrogate, sampler)
            if on_step is not None:
                on_step(progress)
        self.progress_ = progress

        profiles = [
            assemble_profiles(train, t, f, r, rate_target=self.rate_target)
            for t, f, r in zip(targets, progress.fillers, progress.ratings, strict=True)
        ]
        steps_done = time.perf_counter()
        after: list[float | None] = [None] * n_sets
        if self.refit_after:
            poisoned = [_poison_view(view, p.matrix) for p in profiles]
            refit = self._surrogate(surrogate, progress.fit_seeds).fit(poisoned)
            fakes = np.arange(view.n_users, view.n_users + n_fake)
            objective = self._stacked(view, targets, fakes, refit.device_)
            after = objective.values(refit)["hr"].tolist()
        end = time.perf_counter()
        phases = (end - start, steps_start - start, steps_done - steps_start, end - steps_done)
        result = []
        for r in range(n_sets):
            info = self._info(
                progress.traces[r],
                progress.selections[r].resets,
                (float(progress.hr_before[r]), after[r]),
                [seconds / n_sets for seconds in phases],
                max(1, n_fake - resumed_from),
                stacked_target_sets=n_sets,
                resumed_from=resumed_from,
            )
            result.append(FakeProfiles(profiles[r].matrix, targets[r], info))
        return result

    def _info(
        self,
        trace: list[dict[str, Any]],
        resets: int,
        surrogate_hr: tuple[float, float | None],
        seconds: Sequence[float],
        n_new: int,
        **extra: Any,
    ) -> dict[str, Any]:
        """The ``info`` of one target set's fake users, for both schedules: the per-step
        ``trace``, the surrogate's HR_t before and after (None without ``refit_after``) and
        ``seconds`` spent in total, pre-training, poison steps (for ``n_new`` fake users made
        here) and the refit."""
        total, pretrain, steps, refit = seconds
        return {
            "attack": self.name,
            "schedule": self.schedule,
            "trace": trace,
            "chosen_rounds": [step["chosen_round"] for step in trace],
            "selection_resets": resets,
            "surrogate_hr": {"k": self.top_k, "before": surrogate_hr[0], "after": surrogate_hr[1]},
            **extra,
            "seconds": total,
            "seconds_pretrain": pretrain,
            "seconds_refit": refit,
            "seconds_per_fake_user": steps / n_new,
        }

    def _start_authors(
        self,
        train: Interactions,
        view: Interactions,
        targets: np.ndarray,
        surrogate: Recommender,
        random_states: Sequence[RandomState],
        fingerprint: str | None,
    ) -> AuthorsProgress:
        """No fake user yet: the random streams, and the pre-trained model's HR_t (the
        ``before`` of ``surrogate_hr``); ``fingerprint`` says what inputs it was made from."""
        n_sets = len(targets)
        n_rated = n_rated_items(
            self.name, train, self.n_fillers, targets.shape[1], self.rate_target
        )
        rngs = [check_random_state(rs) for rs in random_states]
        fit_seeds = [derive_seed(rng) for rng in rngs]
        base = self._surrogate(surrogate, fit_seeds).fit(view)
        no_fakes = np.zeros(0, dtype=np.int64)
        hr_before = self._stacked(view, targets, no_fakes, base.device_).values(base)["hr"]
        return AuthorsProgress(
            fingerprint=fingerprint,
            n_fake=0,
            rngs=rngs,
            fit_seeds=fit_seeds,
            hr_before=hr_before,
            n_negatives=base.n_negatives,
            selections=[SelectionProbability(train.n_items, t, self.delta) for t in targets],
            fillers=[np.empty((0, n_rated), dtype=np.int64) for _ in range(n_sets)],
            ratings=[np.empty((0, n_rated), dtype=np.float32) for _ in range(n_sets)],
            negatives=[[] for _ in range(n_sets)],
            traces=[[] for _ in range(n_sets)],
        )

    def _authors_step(
        self,
        progress: AuthorsProgress,
        train: Interactions,
        view: Interactions,
        targets: np.ndarray,
        size: int,
        surrogate: Recommender,
        sampler: RatingSampler,
    ) -> None:
        """One step of the authors' schedule: ``size`` more fake users per target set, added
        to ``progress`` (steps 1-3 of :mod:`recpoison.attacks.poison_authors`)."""
        n_sets = len(targets)
        rngs = progress.rngs
        no_fakes = np.zeros(0, dtype=np.int64)
        datasets, fixed = [], []
        for r in range(n_sets):
            partial = assemble_profiles(
                train,
                targets[r],
                progress.fillers[r],
                progress.ratings[r],
                rate_target=self.rate_target,
            )
            pending = self._pending_rows(train, targets[r], size)
            datasets.append(_poison_view(view, sp.vstack([partial.matrix, pending], format="csr")))
            fixed_r = {view.n_users + j: neg for j, neg in enumerate(progress.negatives[r])}
            new_users = range(datasets[r].n_users - size, datasets[r].n_users)
            fixed_r.update({u: no_fakes for u in new_users})
            fixed.append(fixed_r)
        fake_users = np.arange(datasets[0].n_users - size, datasets[0].n_users)
        model = self._surrogate(surrogate, [derive_seed(rng) for rng in rngs])
        model.fit(datasets, fixed_negatives=fixed)
        objective = self._stacked(view, targets, fake_users, model.device_)
        values = [objective.values(model)]
        best_round = np.zeros(n_sets, dtype=int)
        best_probs = torch.sigmoid(model.score_replicas(fake_users)).cpu().numpy()
        for round_ in range(1, self.rounds + 1):
            objective.poison_round(model, rngs)
            model.partial_fit(datasets, 1, fixed_negatives=fixed)
            values.append(objective.values(model))
            best_hr = np.array([values[b]["hr"][r] for r, b in enumerate(best_round)])
            improved = values[-1]["hr"] > best_hr
            if improved.any():
                probs = torch.sigmoid(model.score_replicas(fake_users)).cpu().numpy()
                best_probs[improved] = probs[improved]
                best_round[improved] = round_
        n_rated = progress.fillers[0].shape[1]
        for r in range(n_sets):
            selection = progress.selections[r]
            chosen = np.stack([selection.choose(best_probs[r, j], n_rated) for j in range(size)])
            progress.fillers[r] = np.concatenate([progress.fillers[r], chosen])
            progress.ratings[r] = np.concatenate(
                [progress.ratings[r], sampler.sample(chosen, rngs[r])]
            )
            own = targets[r] if self.rate_target else no_fakes
            progress.negatives[r] += [
                fixed_negatives(train.n_items, np.union1d(row, own), progress.n_negatives, rngs[r])
                for row in chosen
            ]
            trace = {key: [float(v[key][r]) for v in values] for key in _TRACE_KEYS}
            trace["chosen_round"] = int(best_round[r])
            progress.traces[r].append(trace)
        progress.n_fake += size
        logger.info(
            "%s: %d fake users for %d target set(s), rounds kept %s",
            self.name,
            progress.n_fake,
            n_sets,
            best_round.tolist(),
        )

    def _stacked(
        self, view: Interactions, targets: np.ndarray, fake_users: np.ndarray, device: torch.device
    ) -> StackedTargets:
        return StackedTargets(
            view, targets, fake_users, self.top_k, self.kappa, self.eta, self.lam, device
        )

    def _training_view(self, train: Interactions, surrogate: Recommender) -> Interactions:
        """The data the poison model trains on: binarized for an implicit-only surrogate."""
        if not train.is_implicit and "explicit" not in surrogate.capabilities:
            return binarize(train)
        return train

    def _generate_fast(
        self,
        train: Interactions,
        targets: np.ndarray,
        n_fake: int,
        surrogate: Recommender,
        random_state: RandomState,
    ) -> FakeProfiles:
        """``schedule="fast"``: one warm-started base model, poison training spread over
        mini-batches (see the module docstring)."""
        start = time.perf_counter()
        n_rated = n_rated_items(self.name, train, self.n_fillers, len(targets), self.rate_target)
        rng = check_random_state(random_state)
        view = self._training_view(train, surrogate)
        fit_seed = derive_seed(rng)
        base = self._surrogate(surrogate, [fit_seed]).fit(view)
        hr_before = self._hit_ratio(base, view, targets)
        pretrain_seconds = time.perf_counter() - start
        logger.info(
            "%s: surrogate HR_t@%d before the attack %.4f", self.name, self.top_k, hr_before
        )

        sampler = RatingSampler.fit(train, per_item=True)
        selection = SelectionProbability(train.n_items, targets, self.delta)
        fillers = np.empty((0, n_rated), dtype=np.int64)
        ratings = np.empty((0, n_rated), dtype=np.float32)
        trace: list[dict[str, Any]] = []
        for size in _step_sizes(n_fake, self.fake_per_step):
            partial = assemble_profiles(
                train, targets, fillers, ratings, rate_target=self.rate_target
            )
            pending = self._pending_rows(train, targets, size)
            data = _poison_view(view, sp.vstack([partial.matrix, pending], format="csr"))
            fake_users = np.arange(data.n_users - size, data.n_users)
            best, step_trace = self._poison_step(base, data, targets, fake_users, rng)
            probs = torch.sigmoid(best.score_replicas(fake_users)[0]).cpu().numpy()
            chosen = np.stack([selection.choose(probs[j], n_rated) for j in range(size)])
            fillers = np.concatenate([fillers, chosen])
            ratings = np.concatenate([ratings, sampler.sample(chosen, rng)])
            trace.append(step_trace)
            logger.info(
                "%s: %d/%d fake users, round %d kept (HR_t %.4f)",
                self.name,
                len(fillers),
                n_fake,
                step_trace["chosen_round"],
                step_trace["hr"][step_trace["chosen_round"]],
            )

        profiles = assemble_profiles(train, targets, fillers, ratings, rate_target=self.rate_target)
        steps_done = time.perf_counter()
        after = None
        if self.refit_after:
            poisoned = _poison_view(view, profiles.matrix)
            after = self._hit_ratio(
                self._surrogate(surrogate, [fit_seed]).fit(poisoned), poisoned, targets
            )
        end = time.perf_counter()
        steps = steps_done - start - pretrain_seconds
        seconds = (end - start, pretrain_seconds, steps, end - steps_done)
        info = self._info(trace, selection.resets, (hr_before, after), seconds, n_fake)
        return FakeProfiles(profiles.matrix, targets, info)

    def _poison_step(
        self,
        base: Recommender,
        data: Interactions,
        targets: np.ndarray,
        fake_users: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Recommender, dict[str, Any]]:
        """Pre-train ``base`` on ``data`` (in place), then poison-train a copy for ``rounds``
        rounds; return the best model (by the poison model's HR_t@K) and the step's trace."""
        base.partial_fit(data, self.step_epochs)
        objective = PoisonObjective(
            data,
            targets,
            fake_users,
            data.n_ratings * (1 + base.n_negatives),
            base.batch_size,
            top_k=self.top_k,
            kappa=self.kappa,
            eta=self.eta,
            users_per_step=self.users_per_step,
            rng=rng,
            device=base.device_,
        )
        best, best_round = base, 0
        values = [objective.value(base)]
        poison = base.copy_fitted()
        for round_ in range(1, self.rounds + 1):
            poison.partial_fit(data, self.poison_epochs, extra_loss=objective, lam=self.lam)
            values.append(objective.value(poison))
            if values[-1]["hr"] > values[best_round]["hr"]:
                best, best_round = poison.copy_fitted(), round_
        step_trace = {key: [v[key] for v in values] for key in _TRACE_KEYS}
        step_trace["chosen_round"] = best_round
        return best, step_trace

    # -- helpers --------------------------------------------------------------------------------
    def _surrogate(self, surrogate: Recommender, seeds: list[int]) -> Recommender:
        """An unfitted copy of the surrogate with one replica per seed of ``seeds``."""
        params: dict[str, Any] = {"n_replicas": len(seeds), "random_state": None, "seeds": seeds}
        if self.pretrain_epochs is not None:
            params["epochs"] = self.pretrain_epochs
        return surrogate.clone(**params)

    def _hit_ratio(self, model: Recommender, data: Interactions, targets: np.ndarray) -> float:
        """The model's own HR_t@K over the normal users of ``data``, averaged over targets."""
        return target_hit_ratio(model, data, targets, ks=(self.top_k,)).mean(self.top_k)

    def _pending_rows(self, train: Interactions, targets: np.ndarray, size: int) -> sp.csr_matrix:
        """Rows of the fake users being generated: their target rating only (empty when the
        target is not rated)."""
        value = max_rating(train) if self.rate_target else 0.0
        dense = np.zeros((size, train.n_items), dtype=np.float32)
        dense[:, targets] = value
        return sp.csr_matrix(dense)


def _step_sizes(n_fake: int, per_step: int) -> list[int]:
    """How many fake users each step generates: ``per_step`` each, the remainder last."""
    sizes = [per_step] * (n_fake // per_step)
    return sizes + ([n_fake % per_step] if n_fake % per_step else [])


def _poison_view(view: Interactions, fake: sp.csr_matrix) -> Interactions:
    """``view`` with the fake rows appended, their ratings binarized if ``view`` is implicit."""
    fake = sp.csr_matrix(fake, dtype=np.float32)
    fake.eliminate_zeros()
    if view.is_implicit:
        fake.data[:] = 1.0
    return view.with_fake_users(FakeProfiles(fake, np.empty(0, dtype=np.int64)))
