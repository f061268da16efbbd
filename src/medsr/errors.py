"""User-facing errors: one clear message naming the file or setting and the fix.

Entry points catch :class:`MedsrError` and print its message without a stack trace
(``medsr._cli.run_cli``): one line, exit code 2.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

USER_ERROR_EXIT = 2  # the exit code of every user error (a bug in medsr exits with 1)


class MedsrError(Exception):
    """A problem with the user's input, configuration or files (not a bug in medsr).

    A DataLoader worker re-raises an exception in the main process as
    ``type(e)("Caught ... Original Traceback ... <Name>: <message>")``; the constructor keeps
    only the original message, so users see one clear line, not a worker's traceback.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in text and marker in text:
            message = text.rsplit(marker, 1)[1].strip()
        super().__init__(message, *args)


class ConfigError(MedsrError, ValueError):
    """A setting has an invalid value; the message names the setting and the valid values."""


class DataError(MedsrError):
    """A dataset folder or image file is missing, unreadable or unsuitable."""


class WeightsError(MedsrError):
    """A weights file is missing, unsafe, or does not match the network."""


def whole_number(key: str, value: object, minimum: int = 0) -> int:
    """``value`` of setting ``key`` as an int >= ``minimum`` (``tile=abc`` -> ConfigError, not a
    traceback). Booleans and fractions are refused too."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        number = None
    else:
        try:
            number = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
    if number is None or number < minimum:
        raise ConfigError(f"{key}={value!r} must be a whole number >= {minimum}")
    return number


def warn_files(message: str, paths: Iterable[os.PathLike | str], limit: int = 20) -> None:
    """One warning that names the files (the first ``limit``) and gives the count: nothing is
    skipped silently."""
    paths = list(paths)
    if not paths:
        return
    names = "\n  ".join(str(p) for p in paths[:limit])
    more = f"\n  ... and {len(paths) - limit} more" if len(paths) > limit else ""
    warnings.warn(f"{message} ({len(paths)} file(s)):\n  {names}{more}", stacklevel=3)
