"""User-facing errors: one clear message naming the file or setting and the fix.

Entry points catch :class:`MedsrError` and print its message without a stack trace
(``medsr._cli.run_cli``): one line, exit code 2.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable


class MedsrError(Exception):
    """A problem with the user's input, configuration or files (not a bug in medsr)."""


class ConfigError(MedsrError, ValueError):
    """A setting has an invalid value; the message names the setting and the valid values."""


class DataError(MedsrError):
    """A dataset folder or image file is missing, unreadable or unsuitable."""


class WeightsError(MedsrError):
    """A weights file is missing, unsafe, or does not match the network."""


def warn_files(message: str, paths: Iterable[os.PathLike | str], limit: int = 20) -> None:
    """One warning that names the files (the first ``limit``) and gives the count: nothing is
    skipped silently."""
    paths = list(paths)
    if not paths:
        return
    names = "\n  ".join(str(p) for p in paths[:limit])
    more = f"\n  ... and {len(paths) - limit} more" if len(paths) > limit else ""
    warnings.warn(f"{message} ({len(paths)} file(s)):\n  {names}{more}", stacklevel=3)
