"""Config sections as frozen dataclasses, parsed from the ``degradation=`` group with clear errors.

The values live in ``conf/degradation/*.yaml`` (one source of truth); the dataclasses only name
and check them. Every error names the full key (``degradation.first.blur.sigma``) and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence

from medsr.errors import ConfigError


def from_mapping(cls: type, values: Mapping, key: str):
    """Build dataclass ``cls`` from ``values``: unknown or missing keys and bad values raise."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{key} must be a mapping of settings, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{key}: unknown setting(s) {unknown}; valid: {sorted(fields)}")
    missing = sorted(
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ConfigError(f"{key}: missing setting(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        sub = hints[name]
        if dataclasses.is_dataclass(sub):
            kwargs[name] = from_mapping(sub, value, f"{key}.{name}")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    obj = cls(**kwargs)
    obj.validate(key)
    return obj


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_prob(key: str, p) -> None:
    """A probability in [0, 1]."""
    if not _number(p) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"{key}={p!r} must be a probability between 0 and 1")


def check_range(key: str, bounds, lo: float = -math.inf, hi: float = math.inf) -> None:
    """``[a, b]`` with ``lo <= a <= b <= hi`` (``a == b`` fixes the value)."""
    ok = (
        isinstance(bounds, tuple)
        and len(bounds) == 2
        and all(_number(v) for v in bounds)
        and lo <= bounds[0] <= bounds[1] <= hi
    )
    if not ok:
        raise ConfigError(
            f"{key}={list(bounds) if isinstance(bounds, tuple) else bounds!r} must be [min, max] "
            f"with {lo} <= min <= max <= {hi}"
        )


def check_odd_range(key: str, bounds, lo: int = 1, hi: int = 63) -> None:
    """``[a, b]`` of odd integer kernel sizes."""
    check_range(key, bounds, lo, hi)
    if not all(isinstance(v, int) and v % 2 == 1 for v in bounds):
        raise ConfigError(f"{key}={list(bounds)} must hold odd integer kernel sizes, e.g. [7, 21]")


def check_probs(key: str, probs, n: int) -> None:
    """``n`` non-negative probabilities that sum to 1."""
    ok = (
        isinstance(probs, tuple)
        and len(probs) == n
        and all(_number(p) and p >= 0 for p in probs)
        and abs(sum(probs) - 1.0) < 1e-6
    )
    if not ok:
        raise ConfigError(
            f"{key}={list(probs) if isinstance(probs, tuple) else probs!r} must be {n} "
            "non-negative probabilities that sum to 1"
        )


def check_choices(key: str, chosen, allowed: Sequence[str]) -> None:
    """A non-empty tuple of distinct names from ``allowed``."""
    ok = (
        isinstance(chosen, tuple)
        and chosen
        and len(set(chosen)) == len(chosen)
        and all(c in allowed for c in chosen)
    )
    if not ok:
        raise ConfigError(f"{key}={chosen!r} must be distinct names from {list(allowed)}")


def check_choice(key: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not supported; use one of {list(allowed)}")
