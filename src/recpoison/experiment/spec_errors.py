"""Spec errors that name every problem (issue 13 §4), in one line.

A spec with several problems is reported at once: ``3 problems in the spec: (1) ...; (2) ...``,
each problem with its key path; one problem is its message alone. The CLI prints a ConfigError
as one line, so problems are numbered rather than put on lines of their own.
:func:`describe_validation_error` turns pydantic's errors into such problems;
:class:`Problems` collects the checks that come after the shapes (names, parameters, pairings).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from recpoison.errors import ConfigError


def describe_validation_error(error: ValidationError, root: type[BaseModel]) -> str:
    """Every pydantic error of a spec (model ``root``) in one line, see :func:`join_problems`:
    unknown keys first (a misspelt key is often why a required one is missing), grouped per
    mapping with the keys allowed there, then missing fields grouped per mapping, then each bad
    value with its path; the alternatives of a union at one path are joined with "or"."""
    unknown: dict[tuple[int | str, ...], list[str]] = {}
    missing: dict[tuple[int | str, ...], list[str]] = {}
    values: dict[str, tuple[list[str], str]] = {}
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(repr(str(loc[-1])))
            continue
        loc = tuple(part for part in loc if not _is_union_member(part))
        if item["type"] == "missing":
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        shown = item.get("input")
        got = f" (got {shown!r})" if isinstance(shown, int | float | str) and loc else ""
        texts, _ = values.setdefault(_dotted(loc), ([], got))  # "" for the whole spec
        text = item["msg"].removeprefix("Value error, ")
        if text not in texts:
            texts.append(text)
    problems = [_unknown_keys(root, parent, keys) for parent, keys in unknown.items()]
    problems += [_missing_fields(parent, names) for parent, names in missing.items()]
    problems += [
        f"{path}{': ' * bool(path)}{' or '.join(texts)}{got}"
        for path, (texts, got) in values.items()
    ]
    return join_problems(problems)


def join_problems(problems: Sequence[str]) -> str:
    """One problem as it is; several numbered on one line: ``2 problems in the spec: (1) ...;
    (2) ...`` (the CLI prints a ConfigError as one line)."""
    if len(problems) == 1:
        return problems[0]
    numbered = "; ".join(f"({i}) {problem}" for i, problem in enumerate(problems, 1))
    return f"{len(problems)} problems in the spec: {numbered}"


def _unknown_keys(root: type[BaseModel], parent: tuple[int | str, ...], keys: list[str]) -> str:
    where = f" in {_dotted(parent)}" if parent else ""
    allowed = _allowed_keys(root, parent)
    hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
    noun = "key" if len(keys) == 1 else "keys"
    return f"unknown {noun} {', '.join(keys)}{where}{hint}"


def _missing_fields(parent: tuple[int | str, ...], names: list[str]) -> str:
    if len(names) == 1:
        return f"{_dotted((*parent, names[0]))}: required field is missing"
    where = f"{_dotted(parent)}: " if parent else ""
    return f"{where}required fields are missing: {', '.join(names)}"


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def _is_union_member(part: int | str) -> bool:
    """Whether a pydantic error location part names a union member (``str``,
    ``dict[str,any]``, ``function-after[...]``) rather than a key or an index."""
    return isinstance(part, str) and ("[" in part or part in _SCALAR_TAGS)


_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _allowed_keys(root: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the model found at ``loc`` below ``root``."""
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        nested = _model_in(field.annotation)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    for meta in getattr(annotation, "__metadata__", ()):
        found = _model_in(meta)
        if found is not None:
            return found
    return None


class Problems:
    """The problems found in a spec, raised together as one ConfigError."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    @contextmanager
    def collect(self) -> Iterator[None]:
        """A ConfigError raised inside becomes one problem."""
        try:
            yield
        except ConfigError as error:
            self.messages.append(str(error))

    def raise_any(self) -> None:
        if self.messages:
            raise ConfigError(join_problems(self.messages))
