"""User-facing errors: one clear message naming the file or setting and the fix.

Entry points catch :class:`MedsrError` and print its message without a stack trace.
"""


class MedsrError(Exception):
    """A problem with the user's input, configuration or files (not a bug in medsr)."""


class ConfigError(MedsrError, ValueError):
    """A setting has an invalid value; the message names the setting and the valid values."""


class DataError(MedsrError):
    """A dataset folder or image file is missing, unreadable or unsuitable."""


class WeightsError(MedsrError):
    """A weights file is missing, unsafe, or does not match the network."""
