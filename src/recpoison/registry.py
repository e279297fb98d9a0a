"""Explicit name -> class registries, resolved lazily so the CLI starts fast.

Each family (victims, attacks, detectors) keeps one dict of ``name -> "module:Class"``.
No discovery: a new component is one line in its family's dict. :func:`summary` and
:func:`constructor_parameters` describe a registered class from its docstring and signature
(``recpoison components`` prints them), so the listing cannot drift from the code.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recpoison.errors import ConfigError


def resolve(family: str, table: Mapping[str, str], name: str) -> Any:
    """Import and return the class registered as ``name``; unknown names get a suggestion."""
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {family} {name!r}{hint}; choose one of: {', '.join(table)}")
    module_name, class_name = table[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


@dataclass(frozen=True)
class Parameter:
    """One keyword a component's constructor takes: ``default`` is the value as a spec or
    ``--param`` would write it (JSON, which YAML reads; ``repr`` for anything else), ``None``
    when the argument is required."""

    name: str
    default: str | None
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is None


def summary(cls: type) -> str:
    """The first paragraph of ``cls``'s docstring, on one line."""
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def constructor_parameters(cls: type) -> list[Parameter]:
    """The named arguments of ``cls(...)`` in signature order (no ``*args`` / ``**kwargs``)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    result = []
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.kind not in named:
            continue
        empty = parameter.default is inspect.Parameter.empty
        annotation = parameter.annotation
        result.append(
            Parameter(
                parameter.name,
                None if empty else _as_written(parameter.default),
                "" if annotation is inspect.Parameter.empty else _annotation_text(annotation),
            )
        )
    return result


def _as_written(value: Any) -> str:
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _annotation_text(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
