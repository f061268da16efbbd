"""The upscaling factors medsr trains and evaluates (those of the thesis and its references)."""

from __future__ import annotations

from collections.abc import Sequence

from medsr.errors import ConfigError

SUPPORTED_SCALES = (2, 3, 4)


def check_scale(
    scale: object,
    supported: Sequence[int] = SUPPORTED_SCALES,
    *,
    owner: str = "",
    why: str = "",
    key: str = "scale",
) -> int:
    """``scale`` as an int if it is one of ``supported``, else a ConfigError naming ``key``, the
    valid values and, for an architecture's own limits, the ``owner`` and ``why``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in supported:
        by = f" by {owner}" if owner else ""
        valid = ", ".join(f"{key}={s}" for s in supported)
        raise ConfigError(
            f"{key}={scale!r} is not supported{by}; use {valid}.{' ' + why if why else ''}"
        )
    return int(scale)
