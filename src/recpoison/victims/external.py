"""Bring your own model: a user's recommender class named by a dotted path ``module:Class``.

Wherever a victim name is accepted (the spec's ``victims:`` and ``surrogate:``, ``--victim``,
:func:`recpoison.victims.make_victim`), ``mypkg.models:MyRecommender`` imports ``MyRecommender``
from ``mypkg.models`` (the module must be importable: installed, or on ``PYTHONPATH``). The class
takes its hyperparameters as constructor keyword arguments (the spec's ``params:``) and
implements either

* ``fit(train)`` and ``score_replicas(users) -> [R, len(users), n_items]``: it trains its
  replicas itself; its constructor must accept ``n_replicas`` (and receives ``random_state``
  and ``device`` when it accepts them). A subclass of :class:`Recommender` is used as it is.
* ``fit(train)`` and ``score(users) -> [len(users), n_items]``: one model; recpoison fits one
  instance per replica, passing each its own seed as ``random_state`` when the constructor
  accepts it (and ``device`` likewise), and stacks their scores.

``train`` is an :class:`~recpoison.data.Interactions` (``train.matrix`` is the users x items
CSR matrix); ``users`` an array of row indices; higher scores rank first. The class may declare
``capabilities`` (``{"implicit"}`` or ``{"explicit"}``); by default it is assumed to train on
both. Anything missing is a ConfigError naming it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar, Self

import numpy as np
import torch

from recpoison.data.interactions import Interactions
from recpoison.errors import ConfigError
from recpoison.utils import RandomState
from recpoison.victims.base import Recommender
from recpoison.victims.replicated import OneModelPerReplica, ReplicaScorer

#: Data kinds a user's class is assumed to train on when it declares no ``capabilities``.
DEFAULT_CAPABILITIES = frozenset({"implicit", "explicit"})
#: Constructor arguments recpoison sets itself.
RESERVED = ("n_replicas", "random_state", "device")


def external_victim(path: str) -> type[Recommender]:
    """The :class:`Recommender` class for the user's class at ``path`` (see the module doc)."""
    cls = _import(path)
    if issubclass(cls, Recommender):
        return cls
    if not callable(getattr(cls, "fit", None)):
        raise ConfigError(f"victim {path!r}: the class has no fit(train) method")
    accepted = _constructor_parameters(cls)
    if callable(getattr(cls, "score_replicas", None)):
        if "n_replicas" not in accepted:
            raise ConfigError(
                f"victim {path!r} implements score_replicas, so its constructor must accept "
                "n_replicas (or implement score(users) for one replica instead)"
            )
        base: type[ExternalVictim] = ExternalReplicas
    elif callable(getattr(cls, "score", None)):
        base = OneInstancePerReplica
    else:
        raise ConfigError(
            f"victim {path!r}: the class implements neither score_replicas(users) nor "
            "score(users); add one of them"
        )
    capabilities = frozenset(getattr(cls, "capabilities", DEFAULT_CAPABILITIES))
    if base is OneInstancePerReplica:
        capabilities |= {"per_replica_data"}
    namespace = {
        "model_class": cls,
        "name": path,
        "capabilities": capabilities,
        "__init__": _init_with_signature(base, cls, accepted),
    }
    return type(cls.__name__, (base,), namespace)


def _import(path: str) -> type:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ConfigError(f"victim {path!r}: a dotted path is written 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"victim {path!r}: cannot import module {module_name!r} ({error}); install it or "
            "add its folder to PYTHONPATH"
        ) from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise ConfigError(f"victim {path!r}: module {module_name!r} has no attribute {attribute!r}")
    if not inspect.isclass(cls):
        raise ConfigError(f"victim {path!r}: {attribute!r} is not a class")
    return cls


def _constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    return {
        name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"
    }


def _init_with_signature(
    base: type[ExternalVictim], cls: type, accepted: dict[str, inspect.Parameter]
) -> Any:
    """``base.__init__`` advertising the user's parameters plus the runner's, so that spec
    validation and ``get_params`` see the real hyperparameters."""

    def __init__(self: ExternalVictim, **params: Any) -> None:
        base.__init__(self, **params)

    user = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in accepted.items()
        if name not in RESERVED and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    runner = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in zip(RESERVED, (1, None, "auto"), strict=True)
    ]
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        runner.append(inspect.Parameter("params", inspect.Parameter.VAR_KEYWORD))
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_parameter, *user, *runner])  # type: ignore[attr-defined]
    __init__.__doc__ = f"Hyperparameters of {cls.__module__}.{cls.__qualname__}."
    return __init__


class ExternalVictim(Recommender):
    """A user's class behind the :class:`Recommender` contract (built by
    :func:`external_victim`; ``model_class`` is the user's class)."""

    model_class: ClassVar[type]

    def __init__(
        self,
        *,
        n_replicas: int = 1,
        random_state: RandomState = None,
        device: str = "auto",
        **params: Any,
    ) -> None:
        super().__init__(n_replicas=n_replicas, random_state=random_state, device=device)
        self.params = params
        accepted = _constructor_parameters(self.model_class)
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise ConfigError(
                    f"{self.name} has no parameter {unknown[0]!r}; "
                    f"valid: {', '.join(n for n in accepted if n not in RESERVED)}"
                )

    def get_params(self) -> dict[str, Any]:
        return {
            **self.params,
            "n_replicas": self.n_replicas,
            "random_state": self.random_state,
            "device": self.device,
        }

    def _instance(self, **runner: Any) -> Any:
        """A new instance of the user's class with its params and the runner's arguments it
        accepts."""
        accepted = _constructor_parameters(self.model_class)
        given = {key: value for key, value in runner.items() if key in accepted}
        try:
            return self.model_class(**self.params, **given)
        except TypeError as error:
            raise ConfigError(f"{self.name}: cannot construct the model: {error}") from None


class ExternalReplicas(ExternalVictim):
    """A user's class that trains its replicas itself (``fit`` + ``score_replicas``)."""

    def fit(self, train: Interactions) -> Self:
        self._check_fit_input(train)
        self.model_ = self._instance(
            n_replicas=self.n_replicas, random_state=self.random_state, device=self.device
        )
        self.model_.fit(train)
        return self

    def score_replicas(self, users: np.ndarray) -> torch.Tensor:
        if not hasattr(self, "model_"):
            raise ConfigError(f"{self.name} is not fitted yet; call fit first")
        users = self._users(users)
        scores = self.model_.score_replicas(users)
        out = torch.as_tensor(scores if torch.is_tensor(scores) else np.asarray(scores))
        expected = (self.n_replicas, len(users), self.train_.n_items)
        if tuple(out.shape) != expected:
            raise ConfigError(
                f"{self.name}.score_replicas returned shape {tuple(out.shape)}; expected "
                f"[replicas, users, items] = {list(expected)}"
            )
        return out.to(device=self.device_, dtype=torch.float32)


class OneInstancePerReplica(ExternalVictim, OneModelPerReplica):
    """A user's one-replica class (``fit`` + ``score``): one instance per replica and seed."""

    def _fit_one(self, data: Interactions, seed: int) -> ReplicaScorer:
        model = self._instance(random_state=seed, device=self.device)
        model.fit(data)
        return model.score
