"""Explicit name -> class registries, resolved lazily so the CLI starts fast.

Each family (victims, attacks, detectors) keeps one dict of ``name -> "module:Class"``.
No discovery: a new component is one line in its family's dict.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
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
