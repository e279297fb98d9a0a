"""Errors a user can cause. The CLI prints them in one line and exits with code 2."""


class RecpoisonError(Exception):
    """Base class of every error caused by bad input, configuration or environment."""


class DataError(RecpoisonError):
    """A dataset file or name that cannot be read as ratings."""


class ConfigError(RecpoisonError):
    """An unknown name, a bad parameter value, or an impossible combination."""


class DeviceError(RecpoisonError):
    """A compute device that was asked for but is not available."""
