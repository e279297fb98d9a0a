"""Experiment presets: YAML specs shipped with recpoison (``recpoison presets list``).

Each ``<name>.yaml`` in this package is a complete spec (see :mod:`recpoison.experiment.spec`);
its ``description`` field is the one-line summary shown by ``recpoison presets list``.
"""

from __future__ import annotations

import difflib
from importlib import resources
from typing import Any

import yaml

from recpoison.errors import ConfigError


def preset_names() -> list[str]:
    """The names of the packaged presets, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of preset ``name`` (ConfigError with a suggestion when unknown)."""
    names = preset_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown preset or spec file {name!r}{hint}; presets: {', '.join(names)}"
        )
    return resources.files(__name__).joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> dict[str, Any]:
    """The raw spec mapping of preset ``name`` (validate it with ``parse_spec``)."""
    return yaml.safe_load(preset_text(name))


def describe_presets() -> dict[str, str]:
    """``{name: description}`` of every preset."""
    return {name: str(load_preset(name).get("description", "")) for name in preset_names()}
