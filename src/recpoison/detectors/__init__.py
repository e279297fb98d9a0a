"""Detectors of fake users. ``DETECTORS`` is the one registry of their names."""

from __future__ import annotations

from typing import Any

from recpoison.registry import resolve

DETECTORS: dict[str, str] = {
    "svm-tia": "recpoison.detectors.svm_tia:SVMTIADetector",
    "svm-features": "recpoison.detectors.svm_features:SVMFeaturesDetector",
    "ttest": "recpoison.detectors.ttest:TTestDetector",
}


def detector_class(name: str) -> type:
    """The detector class registered as ``name``."""
    return resolve("detector", DETECTORS, name)


def make_detector(name: str, **params: Any) -> Any:
    """Instantiate the detector ``name`` with ``params``."""
    return detector_class(name)(**params)


__all__ = ["DETECTORS", "detector_class", "make_detector"]
