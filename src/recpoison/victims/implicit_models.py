"""Victims from the `implicit` library (Ben Frederickson, https://github.com/benfred/implicit).

The recommenders practitioners deploy on implicit feedback, wrapped in the
:class:`~recpoison.victims.base.Recommender` contract (``pip install 'recpoison[implicit]'``,
implicit 0.7.x):

* ``implicit-als``: weighted matrix factorization by alternating least squares (Hu, Koren and
  Volinsky, ICDM 2008), conjugate-gradient solver;
* ``implicit-bpr``: Bayesian personalized ranking (Rendle et al., UAI 2009), SGD with sampled
  negatives;
* ``implicit-lmf``: logistic matrix factorization (Johnson, 2014);
* ``implicit-cosine``, ``implicit-tfidf``, ``implicit-bm25``: item-item nearest neighbours
  with cosine, TF-IDF or BM25 weighting, ``K`` neighbours per item.

Each replica is one implicit model with its own seed (:mod:`recpoison.victims.replicated`);
the nearest-neighbour models are deterministic, so their replicas are fitted once per dataset.
Defaults are implicit's own. The models train on the binarized data (every interaction has
confidence 1; explicit data must be binarized first, as for NeuMF). Scores are exactly what
implicit ranks by: ``user_factors @ item_factors.T`` for the factorization models (BPR's item
bias is its last factor) and ``user_items @ similarity`` for the neighbour models.

Threads: ``num_threads`` (default: torch's thread count, so ``recpoison --threads N`` and the
test suite's single thread apply to implicit too) and BLAS is limited to one thread during
fitting, as implicit recommends. Factorization results are bit-reproducible for a seed with one
thread; BPR and LMF update factors Hogwild-style, so with several threads they vary slightly.

Devices: ALS and BPR train on the GPU when the victim's device is CUDA and implicit was built
with CUDA (``implicit.gpu.HAS_CUDA``, which needs the ``rmm`` package of the matching CUDA
version); ``device="auto"`` then falls back to the CPU with a log message, and an explicit
``device="cuda"`` without implicit's GPU support is a DeviceError. LMF and the neighbour models
are CPU-only in implicit. Scores are always computed with torch on the victim's device.
Errors raised by implicit while fitting are passed on as one ConfigError line.
"""

from __future__ import annotations

import logging
import warnings
from abc import abstractmethod
from functools import partial
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError, DeviceError
from recpoison.utils import RandomState
from recpoison.victims.replicated import OneModelPerReplica, ReplicaScorer

logger = logging.getLogger(__name__)

#: Exceptions implicit raises for bad parameters or data; passed on as one ConfigError line.
IMPLICIT_ERRORS = (ValueError, TypeError, RuntimeError, IndexError, NotImplementedError)


def _implicit() -> Any:
    try:
        import implicit
    except ImportError:
        raise ConfigError(
            "the implicit victims need the implicit package: pip install 'recpoison[implicit]'"
        ) from None
    return implicit


class ImplicitRecommender(OneModelPerReplica):
    """Shared fitting, threads, devices and error handling of the implicit victims."""

    capabilities = frozenset({"implicit", "per_replica_data"})
    #: Whether implicit has a GPU implementation of this model.
    gpu_capable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.num_threads = num_threads

    @abstractmethod
    def _new_model(self, seed: int, use_gpu: bool, num_threads: int) -> Any:
        """An unfitted implicit model with this victim's hyperparameters."""

    @abstractmethod
    def _scorer(self, model: Any, user_items: sp.csr_matrix) -> ReplicaScorer:
        """The scoring function of a fitted implicit model."""

    def _fit_one(self, data: Interactions, seed: int) -> ReplicaScorer:
        from threadpoolctl import threadpool_limits

        _implicit()
        from implicit.utils import ParameterWarning

        num_threads = torch.get_num_threads() if self.num_threads is None else self.num_threads
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ConfigError(f"{self.name}: num_threads must be an integer >= 0 (0 = all cores)")
        user_items = sp.csr_matrix(data.matrix > 0, dtype=np.float32)
        use_gpu = self._use_gpu()
        try:
            with threadpool_limits(1, "blas"), warnings.catch_warnings():
                # implicit's neighbour models pass COO matrices to their own kernels
                warnings.simplefilter("ignore", ParameterWarning)
                model = self._new_model(seed % 2**32, use_gpu, num_threads)
                model.fit(user_items, show_progress=False)
        except IMPLICIT_ERRORS as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConfigError(
                f"{self.name}: implicit failed to fit: {type(error).__name__}: {message}"
            ) from None
        return self._scorer(model, user_items)

    def _use_gpu(self) -> bool:
        """Train on implicit's GPU code when the device is CUDA (see the module doc)."""
        if self.device_.type != "cuda":
            return False
        _implicit()
        from implicit.gpu import HAS_CUDA

        if self.gpu_capable and HAS_CUDA:
            return True
        reason = (
            f"implicit has no GPU version of {self.name}"
            if not self.gpu_capable
            else "implicit was installed without working CUDA support (it needs rmm)"
        )
        if self.device == "auto":
            logger.info("%s: %s; training on the CPU", self.name, reason)
            return False
        raise DeviceError(f"{self.name}: {reason}; use --device cpu")


class ImplicitFactorization(ImplicitRecommender):
    """A factorization model of implicit: scores are ``user_factors @ item_factors.T``."""

    def _scorer(self, model: Any, user_items: sp.csr_matrix) -> ReplicaScorer:
        if hasattr(model, "to_cpu"):  # a GPU model keeps its factors in device memory
            model = model.to_cpu()
        device = self.device_
        users = torch.as_tensor(np.asarray(model.user_factors, dtype=np.float32), device=device)
        items = torch.as_tensor(np.asarray(model.item_factors, dtype=np.float32), device=device)
        return partial(_factor_scores, users, items)


def _factor_scores(
    user_factors: torch.Tensor, item_factors: torch.Tensor, users: np.ndarray
) -> torch.Tensor:
    index = torch.as_tensor(users, device=user_factors.device)
    return user_factors.index_select(0, index) @ item_factors.T


class ImplicitALS(ImplicitFactorization):
    """``implicit.als.AlternatingLeastSquares``: confidence-weighted least squares on the full
    user x item matrix (Hu et al. 2008, Eq. 3), ``alpha`` scaling the confidence of positives."""

    name = "implicit-als"
    gpu_capable = True

    def __init__(
        self,
        *,
        factors: int = 100,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        use_cg: bool = True,
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            num_threads=num_threads,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_cg = use_cg

    def _new_model(self, seed: int, use_gpu: bool, num_threads: int) -> Any:
        from implicit.als import AlternatingLeastSquares

        params = {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": seed,
            "use_gpu": use_gpu,
        }
        if not use_gpu:
            params.update(use_cg=self.use_cg, num_threads=num_threads)
        return AlternatingLeastSquares(**params)


class ImplicitBPR(ImplicitFactorization):
    """``implicit.bpr.BayesianPersonalizedRanking``: SGD on ln σ(x_ui - x_uj) over sampled
    (user, positive, negative) triples (Rendle et al. 2009, Eq. 5), with an item bias."""

    name = "implicit-bpr"
    gpu_capable = True

    def __init__(
        self,
        *,
        factors: int = 100,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        verify_negative_samples: bool = True,
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            num_threads=num_threads,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.verify_negative_samples = verify_negative_samples

    def _new_model(self, seed: int, use_gpu: bool, num_threads: int) -> Any:
        from implicit.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            verify_negative_samples=self.verify_negative_samples,
            use_gpu=use_gpu,
            num_threads=num_threads,
            random_state=seed,
        )


class ImplicitLMF(ImplicitFactorization):
    """``implicit.lmf.LogisticMatrixFactorization`` (Johnson 2014): logistic likelihood of
    interactions with ``neg_prop`` sampled negatives per positive; CPU only."""

    name = "implicit-lmf"

    def __init__(
        self,
        *,
        factors: int = 30,
        learning_rate: float = 1.0,
        regularization: float = 0.6,
        iterations: int = 30,
        neg_prop: int = 30,
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            num_threads=num_threads,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.neg_prop = neg_prop

    def _new_model(self, seed: int, use_gpu: bool, num_threads: int) -> Any:
        from implicit.lmf import LogisticMatrixFactorization

        return LogisticMatrixFactorization(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            neg_prop=self.neg_prop,
            num_threads=num_threads,
            random_state=seed,
        )


class ImplicitItemKNN(ImplicitRecommender):
    """An item-item nearest-neighbour model of implicit: each item keeps its ``K`` most similar
    items; a user's score of item j is the sum of the similarities of j to the items the user
    interacted with (``user_items @ similarity``). Deterministic and CPU-only."""

    seeded = False
    #: The class in ``implicit.nearest_neighbours``.
    implicit_class: ClassVar[str]

    def __init__(
        self,
        *,
        K: int = 20,  # implicit's name
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            num_threads=num_threads,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.K = K

    def _model_params(self) -> dict[str, Any]:
        return {"K": self.K}

    def _new_model(self, seed: int, use_gpu: bool, num_threads: int) -> Any:
        if not isinstance(self.K, int) or self.K < 1:
            raise ConfigError(f"{self.name}: K must be an integer >= 1, got {self.K!r}")
        from implicit import nearest_neighbours

        model_class = getattr(nearest_neighbours, self.implicit_class)
        return model_class(**self._model_params(), num_threads=num_threads)

    def _scorer(self, model: Any, user_items: sp.csr_matrix) -> ReplicaScorer:
        similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
        return partial(_neighbour_scores, user_items, similarity, self.device_)


def _neighbour_scores(
    user_items: sp.csr_matrix, similarity: sp.csr_matrix, device: torch.device, users: np.ndarray
) -> torch.Tensor:
    scores = (user_items[users] @ similarity).toarray()
    return torch.as_tensor(scores, device=device)


class ImplicitCosine(ImplicitItemKNN):
    """``implicit.nearest_neighbours.CosineRecommender``: cosine similarity of item columns."""

    name = "implicit-cosine"
    implicit_class = "CosineRecommender"


class ImplicitTFIDF(ImplicitItemKNN):
    """``implicit.nearest_neighbours.TFIDFRecommender``: cosine of TF-IDF weighted columns."""

    name = "implicit-tfidf"
    implicit_class = "TFIDFRecommender"


class ImplicitBM25(ImplicitItemKNN):
    """``implicit.nearest_neighbours.BM25Recommender``: BM25-weighted item similarities with
    saturation ``K1`` and length normalisation ``B``."""

    name = "implicit-bm25"
    implicit_class = "BM25Recommender"

    def __init__(
        self,
        *,
        K: int = 20,  # implicit's name
        K1: float = 1.2,
        B: float = 0.75,
        num_threads: int | None = None,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            K=K,
            num_threads=num_threads,
            n_replicas=n_replicas,
            random_state=random_state,
            device=device,
        )
        self.K1 = K1
        self.B = B

    def _model_params(self) -> dict[str, Any]:
        return {"K": self.K, "K1": self.K1, "B": self.B}
