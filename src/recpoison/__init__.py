"""recpoison: data-poisoning attacks on recommender systems, and defenses against them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recpoison")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
