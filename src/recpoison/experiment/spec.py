"""The experiment spec: a validated, strict description of what the runner computes.

A spec is written in YAML (or taken from a preset) and validated here with pydantic v2. Unknown
keys are errors, every field maps 1:1 to a parameter of the models below, and the errors a user
made become one :class:`~recpoison.errors.ConfigError` line naming every problem with its field
path, e.g. ``sizes.0: Input should be greater than 0 (got 0)``
(:mod:`recpoison.experiment.spec_errors`).

Validation has two stages, both before any work is done:

1. :func:`parse_spec` checks shapes and values (pydantic), then names against the registries
   (unknown names get a suggestion), constructor parameters against the classes' signatures, and
   impossible pairings that are visible without data (an attack's ``requires`` against the
   surrogate's capabilities; an explicit-only victim or attack on binarized data).
2. :func:`check_data_pairings` repeats the data-dependent checks once the datasets are loaded
   (an implicit-only victim on explicit data, an attack needing explicit ratings on implicit data).

Components whose module is not importable yet are checked by name only.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from recpoison.attacks import ATTACKS
from recpoison.data.interactions import Interactions
from recpoison.detectors import DETECTORS
from recpoison.errors import ConfigError
from recpoison.experiment.spec_errors import Problems, describe_validation_error
from recpoison.registry import resolve
from recpoison.victims import VICTIMS, victim_class

logger = logging.getLogger(__name__)

#: The attack name of the no-attack baseline row.
NO_ATTACK = "none"
#: The target type of a target set without target items (availability and edge attacks).
NO_TARGETS = "none"
#: The goal of edge attacks (Aravind's thesis §3.5): degrade the recommender for everyone.
UNTARGETED = "untargeted"
#: Dataset transforms a spec may name, in ``recpoison.data.transforms``.
TRANSFORMS = ("binarize", "k_core", "min_rating", "subsample_ratings", "subsample_users")
#: Victim parameters the runner sets itself (from ``retrains``, ``seed`` and ``device``).
RUNNER_VICTIM_PARAMS = ("n_replicas", "random_state", "device", "seeds")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_transform(step: str | dict[str, Any]) -> str | dict[str, Any]:
    """One transform step (checked per step, so that every bad step is reported)."""
    if isinstance(step, dict) and len(step) != 1:
        raise ValueError(f"a transform is one name or a one-key mapping, got {step!r}")
    name = step if isinstance(step, str) else next(iter(step))
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; choose one of: {', '.join(TRANSFORMS)}")
    return step


class DatasetSpec(_Strict):
    """A dataset: ``load_dataset(source, format, columns, name=, rating_scale=, implicit=)``,
    then ``transforms`` in order.

    A transform is a name (``binarize``) or a one-key mapping ``{k_core: 10}`` /
    ``{subsample_users: 0.5}`` / ``{k_core: {k: 10}}``; randomized transforms are seeded from
    the spec's seed. ``name`` also labels the dataset in reports (default: the source).
    """

    source: str
    format: str | None = None
    columns: dict[str, str] | None = None
    name: str | None = None
    rating_scale: tuple[float, float] | None = None
    implicit: bool = False
    transforms: list[Annotated[str | dict[str, Any], AfterValidator(_known_transform)]] = Field(
        default_factory=list
    )

    @property
    def display(self) -> str:
        return self.name or Path(self.source).name

    @property
    def binarized(self) -> bool:
        return any(
            step == "binarize" or (isinstance(step, dict) and "binarize" in step)
            for step in self.transforms
        )


class ComponentSpec(_Strict):
    """A registered component (victim, surrogate, attack, detector) and its constructor params.

    ``label`` names it in reports (default: the name); labels must be unique in their list.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def key(self) -> dict[str, Any]:
        """The part that determines results (the label does not)."""
        return {"name": self.name, "params": self.params}


class TargetSpec(_Strict):
    """A target set: ``count`` random items, ``count`` unpopular items (fewer ratings than
    ``threshold``, default from ``default_unpopular_threshold``), explicit original ``items``, or
    ``none``: no target items (only for attacks whose goal is availability, Li et al. 2016; the
    cells then report RMSE / t-test columns and no HR_t)."""

    type: Literal["random", "unpopular", "items", "none"] = "random"
    count: Annotated[int, Field(ge=1)] = 10
    threshold: Annotated[int, Field(ge=1)] | None = None
    items: list[int | str] | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TargetSpec:
        if self.threshold is not None and self.type != "unpopular":
            raise ValueError("threshold only applies to unpopular targets")
        if (self.type == "items") != (self.items is not None):
            raise ValueError("give `items:` exactly when type is 'items'")
        if self.items is not None and len(self.items) == 0:
            raise ValueError("items must list at least one original item id")
        return self

    @property
    def display(self) -> str:
        return self.label or self.type

    def key(self) -> dict[str, Any]:
        untargeted = self.items or self.type == NO_TARGETS
        return self.model_dump(exclude={"label", "count"} if untargeted else {"label"})


class KnowledgeSpec(_Strict):
    """What the attacker sees: everything, a ``fraction`` of the ratings, of the users, or of the
    ratings nearest to the target in the user-item graph (``hops``, Fang et al. 2020 §5.3)."""

    kind: Literal["full", "ratings", "users", "hops"] = "full"
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _full_is_whole(self) -> KnowledgeSpec:
        if self.kind == "full" and self.fraction != 1.0:
            raise ValueError(
                "knowledge kind 'full' has fraction 1; use 'ratings', 'users' or 'hops'"
            )
        return self

    @property
    def display(self) -> str:
        return "full" if self.kind == "full" else f"{self.kind} {self.fraction:.0%}"


class Spec(_Strict):
    """An experiment: datasets x victims x attacks x sizes x target sets x knowledge x fillers.

    ``surrogate`` (default: each victim itself, i.e. white-box) is what surrogate-based attacks
    optimize against; a different one measures transfer, and with it set every victim of the
    spec faces the same fake users (their seeds leave the victim out). ``retrains`` victims are
    trained from scratch per target and cell; ``ks`` are the list lengths of HR_t@K;
    ``n_fillers`` (optional) sweeps the attacks' filler count; ``victim_quality`` adds
    leave-one-out HR@10/NDCG@10 of each clean victim; ``rmse_holdout`` is the test fraction for
    RMSE of explicit victims (0: off).
    ``victim_data: binarized`` keeps the datasets explicit for the attacks and the detector (fake
    users get explicit ratings; profile features need them) and trains and measures the victims
    on the binarized data (Huang et al. 2021, section VI: NeuMF on implicit data, detection on
    the explicit ratings). ``detector_train_fake`` is the number of fake users (and as many
    normal users) the detector trains on, generated by the cell's attack for other targets
    (default: 300, at most the number of users; :func:`~recpoison.detectors.protocol.
    build_training_set`): lower it for attacks that cost seconds per fake user.
    ``remedy`` (with a detector) says what is done with flagged users and
    adds its cost and the remedied victim's quality to each cell (default: retrain without
    them, recording HR_t only). ``negative_ratio`` is, for edge attacks (the untargeted protocol
    of Aravind's thesis, :mod:`recpoison.experiment.edge_spec`), the number of sampled negative
    edges per training positive; ``sizes`` are then fractions of those negatives.
    ``attack_draws`` (edge attacks only) runs each attack cell's attack that many times with
    independent seeds, each perturbed dataset retrained ``retrains`` times with the clean
    victim's seeds: the report's standard errors then cover the attack's own randomness (its
    flips, its surrogate), not only the victim's. Targeted cells need none: each target is
    attacked separately, so their standard error over targets already holds it.
    """

    name: str
    description: str = ""
    datasets: Annotated[list[DatasetSpec], Field(min_length=1)]
    victims: Annotated[list[ComponentSpec], Field(min_length=1)]
    surrogate: ComponentSpec | None = None
    attacks: Annotated[list[ComponentSpec], Field(min_length=1)]
    sizes: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)]
    targets: Annotated[list[TargetSpec], Field(min_length=1)]
    knowledge: Annotated[list[KnowledgeSpec], Field(min_length=1)] = Field(
        default_factory=lambda: [KnowledgeSpec()]
    )
    retrains: Annotated[int, Field(ge=1)] = 3
    ks: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: [10]
    )
    n_fillers: list[Annotated[int, Field(ge=0)]] | None = None
    victim_quality: bool = True
    rmse_holdout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    detector: ComponentSpec | None = None
    detector_train_fake: Annotated[int, Field(ge=2)] | None = None
    remedy: ComponentSpec | None = None
    negative_ratio: Annotated[float, Field(gt=0, le=10)] = 1.0
    attack_draws: Annotated[int, Field(ge=1, le=100)] = 1
    victim_data: Literal["as-is", "binarized"] = "as-is"
    device: str = "auto"
    seed: int = 0

    @field_validator("knowledge", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, Mapping) else value

    @field_validator("sizes", "ks", "n_fillers")
    @classmethod
    def _distinct(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError(f"values must be distinct, got {values}")
        return values

    @model_validator(mode="after")
    def _unique_labels(self) -> Spec:
        groups: dict[str, Sequence[Any]] = {
            "datasets": [d.display for d in self.datasets],
            "victims": [v.display for v in self.victims],
            "attacks": [a.display for a in self.attacks],
            "targets": [t.display for t in self.targets],
            "knowledge": [k.display for k in self.knowledge],
        }
        problems = []
        for field, labels in groups.items():
            repeated = sorted({x for x in labels if labels.count(x) > 1})
            if repeated:
                key = "name" if field == "datasets" else "label"
                names = ", ".join(map(repr, repeated))
                problems.append(
                    f"{field}: {names} appear{'s' * (len(repeated) == 1)} more than once; "
                    f"give each entry a distinct `{key}:`"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def surrogate_for(self, victim: ComponentSpec) -> ComponentSpec:
        """The surrogate an attack on ``victim`` uses (the victim itself when none is set)."""
        return self.surrogate or victim

    def to_json(self) -> dict[str, Any]:
        """The resolved spec (defaults filled in) as JSON-compatible data."""
        return self.model_dump(mode="json")


# -- parsing ----------------------------------------------------------------------------------
def parse_spec(raw: Mapping[str, Any]) -> Spec:
    """Validate a mapping into a :class:`Spec`, then check names and pairings (ConfigError)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a spec must be a mapping of fields, got {type(raw).__name__}")
    try:
        spec = Spec.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, Spec)) from None
    check_components(spec)
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file."""
    return parse_spec(read_yaml(path))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file (ConfigError when missing or not a mapping)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read spec {str(path)!r}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a spec must be a YAML mapping of fields")
    return raw


def apply_overrides(raw: Mapping[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``KEY=VALUE`` assignments applied (values parsed as YAML).

    Keys are dotted paths (``retrains``, ``victims.params.epochs``, ``datasets.0.source``); a
    path step that meets a list applies to every entry, or to one when it is an index, so
    ``targets.count=5`` sets the count of every target set. Unknown keys are reported when the
    result is validated.
    """
    result = copy.deepcopy(dict(raw))
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {path}: cannot parse {text!r} as a YAML value") from None
        _assign(result, path.strip().split("."), value, path.strip())
    return result


def _assign(node: Any, parts: list[str], value: Any, path: str) -> None:
    key, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if not key.isdigit():
            for item in node:
                _assign(item, parts, value, path)
            return
        if int(key) >= len(node):
            raise ConfigError(f"--set {path}: index {key} is out of range ({len(node)} entries)")
        if rest:
            _assign(node[int(key)], rest, value, path)
        else:
            node[int(key)] = value
        return
    if not isinstance(node, dict):
        raise ConfigError(f"--set {path}: {key!r} is below a value that is not a mapping")
    if not rest:
        node[key] = value
        return
    if node.get(key) is None:
        node[key] = {}
    _assign(node[key], rest, value, path)


# -- names, parameters and pairings -----------------------------------------------------------
def component_class(family: str, table: Mapping[str, str], name: str) -> type | None:
    """The registered class, or None when its module cannot be imported yet (ConfigError for an
    unknown name). A victim may also be a user's class given as ``module:Class``."""
    if family == "victim" and ":" in name:
        return victim_class(name)
    if name not in table:
        resolve(family, table, name)
    module_name = table[name].split(":")[0]
    try:
        return resolve(family, table, name)
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("recpoison"):
            raise
        logger.debug(
            "%s %r: module %s not importable yet; checked by name only", family, name, module_name
        )
        return None


def attack_class_or_none(name: str) -> type | None:
    """The attack class for ``name`` (None for the 'none' row or an unimportable module)."""
    return None if name == NO_ATTACK else component_class("attack", ATTACKS, name)


def check_components(spec: Spec) -> None:
    """Names, constructor parameters and data-independent pairings: one ConfigError listing
    every problem (see :func:`~recpoison.experiment.spec_errors.join_problems`)."""
    problems = Problems()
    victims: dict[int, type | None] = {}
    for i, victim in enumerate(spec.victims):
        victims[i] = _checked(
            problems, f"victims.{i}", "victim", VICTIMS, victim, RUNNER_VICTIM_PARAMS
        )
    surrogate_cls = None
    if spec.surrogate is not None:
        surrogate_cls = _checked(
            problems, "surrogate", "victim", VICTIMS, spec.surrogate, RUNNER_VICTIM_PARAMS
        )
    if spec.detector is not None:
        _checked(problems, "detector", "detector", DETECTORS, spec.detector, ("random_state",))
    if spec.detector_train_fake is not None and spec.detector is None:
        problems.add("detector_train_fake: sizes a detector's training set; add a `detector:`")
    if spec.remedy is not None:
        _check_remedy(spec, problems)
    attack_table = {NO_ATTACK: "", **ATTACKS}
    for i, attack in enumerate(spec.attacks):
        if attack.name == NO_ATTACK:
            if attack.params:
                problems.add(f"attacks.{i}: the 'none' attack takes no params")
            continue
        if attack.name not in attack_table:
            try:
                resolve("attack", attack_table, attack.name)  # names 'none' among the choices
            except ConfigError as error:
                problems.add(f"attacks.{i}.name: {error}")
                continue
        attack_cls = _checked(
            problems, f"attacks.{i}", "attack", ATTACKS, attack, ("random_state",)
        )
        if attack_cls is None:
            continue
        requires = getattr(attack_cls, "requires", frozenset())
        for j, victim in enumerate(spec.victims):
            surrogate = surrogate_cls if spec.surrogate is not None else victims[j]
            label = (spec.surrogate or victim).name
            if (
                "differentiable" in requires
                and surrogate is not None
                and "differentiable" not in surrogate.capabilities
            ):
                problems.add(
                    f"attacks.{i}: {attack.name} needs a differentiable surrogate "
                    f"and {label} is not one; set `surrogate:` to a neural victim"
                )
        if goal_of(attack, attack_cls) not in ("availability", UNTARGETED):
            for t, target in enumerate(spec.targets):
                if target.type == NO_TARGETS:
                    problems.add(
                        f"attacks.{i}: {attack.name} needs target items but targets.{t} has "
                        "type 'none' (only attacks with goal 'availability' run without targets)"
                    )
        if "explicit_ratings" in requires:
            for d, dataset in enumerate(spec.datasets):
                if dataset.binarized:
                    problems.add(
                        f"attacks.{i}: {attack.name} needs explicit ratings but "
                        f"datasets.{d} is binarized"
                    )
    from recpoison.experiment.edge_spec import check_edge_spec

    if all(attack.name in attack_table for attack in spec.attacks):  # else reported above
        with problems.collect():  # its first problem
            check_edge_spec(spec)
    for d, dataset in enumerate(spec.datasets):
        if spec.victim_data == "binarized" and dataset.binarized:
            problems.add(
                f"datasets.{d}: victim_data 'binarized' needs explicit data for the "
                "attacks and the detector; remove `binarize` from its transforms"
            )
    for j, cls in victims.items():
        caps = getattr(cls, "capabilities", None)
        if caps is None or "implicit" in caps:
            continue
        if spec.victim_data == "binarized":
            problems.add(
                f"victims.{j}: {spec.victims[j].name} needs explicit ratings but "
                "victim_data is 'binarized'"
            )
        for d, dataset in enumerate(spec.datasets):
            if dataset.binarized:
                problems.add(
                    f"victims.{j}: {spec.victims[j].name} needs explicit ratings "
                    f"but datasets.{d} is binarized; remove `binarize`"
                )
    problems.raise_any()


def goal_of(attack: ComponentSpec, cls: type | None = None) -> str | None:
    """The ``goal`` an attack runs with: its param, else its constructor's default, else its
    class's ``goal`` (``untargeted`` for edge attacks); None without one."""
    if "goal" in attack.params:
        return attack.params["goal"]
    cls = cls if cls is not None else attack_class_or_none(attack.name)
    if cls is None:
        return None
    parameter = inspect.signature(cls.__init__).parameters.get("goal")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return getattr(cls, "goal", None)
    return parameter.default


def _check_remedy(spec: Spec, problems: Problems) -> None:
    from recpoison.experiment.measures.remedy import REMEDIES

    if spec.detector is None:
        problems.add("remedy: a remedy acts on flagged users; add a `detector:`")
    if spec.remedy.name not in REMEDIES:
        try:
            resolve("remedy", {name: "" for name in REMEDIES}, spec.remedy.name)
        except ConfigError as error:
            problems.add(f"remedy.name: {error}")
            return
    if spec.remedy.name == "sisa":
        from recpoison.victims.neural import NCFRecommender

        for j, victim in enumerate(spec.victims):
            try:
                cls = component_class("victim", VICTIMS, victim.name)
            except ConfigError:
                continue  # an unknown victim is reported with its own path
            if cls is not None and not issubclass(cls, NCFRecommender):
                problems.add(
                    f"remedy: sisa trains neural victims (neumf, gmf, mlp) slice by slice; "
                    f"victims.{j} ({victim.name}) is not one"
                )
    valid = [p for p in inspect.signature(REMEDIES[spec.remedy.name].__init__).parameters]
    for key in spec.remedy.params:
        if key not in valid[1:]:
            problems.add(
                f"remedy.params.{key}: {spec.remedy.name} has no parameter {key!r}; "
                f"valid: {', '.join(valid[1:]) or 'none'}"
            )


def check_data_pairings(spec: Spec, datasets: Sequence[Interactions]) -> None:
    """The pairing checks that need the loaded data (one ConfigError listing every problem)."""
    problems = Problems()
    for d, data in enumerate(datasets):
        if spec.victim_data == "binarized":
            if data.is_implicit:
                problems.add(
                    f"datasets.{d} ({data.name}) is implicit; victim_data 'binarized' is for "
                    "explicit data (drop it)"
                )
            continue  # victims train on the binarized data (checked in check_components)
        for j, victim in enumerate(spec.victims):
            cls = component_class("victim", VICTIMS, victim.name)
            caps = getattr(cls, "capabilities", frozenset())
            if data.is_implicit and "implicit" not in caps:
                problems.add(
                    f"victims.{j}: {victim.name} needs explicit ratings; "
                    f"datasets.{d} ({data.name}) is implicit"
                )
            if not data.is_implicit and "explicit" not in caps:
                problems.add(
                    f"victims.{j}: {victim.name} trains on implicit feedback; add "
                    f"`binarize` to the transforms of datasets.{d}"
                )
        for i, attack in enumerate(spec.attacks):
            cls = attack_class_or_none(attack.name)
            if cls is not None and "explicit_ratings" in cls.requires and data.is_implicit:
                problems.add(
                    f"attacks.{i}: {attack.name} needs explicit ratings; "
                    f"datasets.{d} ({data.name}) is implicit"
                )
    problems.raise_any()


def _checked(
    problems: Problems,
    path: str,
    family: str,
    table: Mapping[str, str],
    component: ComponentSpec,
    reserved: Sequence[str],
) -> type | None:
    """The component's class (None when unknown or not importable yet); its name and params
    checked, each problem added to ``problems``."""
    try:
        cls = component_class(family, table, component.name)
    except ConfigError as error:
        problems.add(f"{path}.name: {error}")
        return None
    for key in component.params:
        if key in reserved:
            problems.add(
                f"{path}.params.{key}: set by the runner (use the spec's retrains / seed / device)"
            )
    if cls is not None:
        signature = inspect.signature(cls.__init__)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        valid = [p for p in signature.parameters if p != "self"]
        for key in component.params:
            if not accepts_any and key not in valid and key not in reserved:
                problems.add(
                    f"{path}.params.{key}: {component.name} has no parameter "
                    f"{key!r}; valid: {', '.join(valid)}"
                )
    return cls
