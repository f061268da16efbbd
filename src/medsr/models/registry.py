"""Name -> architecture registry: ``build_model("rcan", 4, num_feat=64)``.

Each architecture file registers its class with ``@register_model("name")``; the package
``__init__`` imports those files by name (no folder scanning, so one broken optional module
cannot break the others).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from medsr.errors import ConfigError

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding an architecture under ``name`` (its constructor takes ``scale``)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise RuntimeError(
                f"two architectures registered as {name!r}: {_MODELS[name]} and {cls}"
            )
        _MODELS[name] = cls
        return cls

    return add


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``; ConfigError naming ``model=`` and the valid names."""
    if name not in _MODELS:
        raise ConfigError(
            f"model={name!r} is not a known architecture; valid: {', '.join(list_models())}"
        )
    return _MODELS[name]


def display_name(name: str) -> str:
    """How tables name the architecture ``name`` (its class name: ``EDSR``, ``RRDBNet``)."""
    return model_class(name).__name__


def arch_name(model: nn.Module) -> str | None:
    """Registered name of ``model``'s architecture (from ``medsr_spec`` or its class), else None."""
    spec = getattr(model, "medsr_spec", None)
    if isinstance(spec, dict) and spec.get("arch") in _MODELS:
        return spec["arch"]
    for name, cls in _MODELS.items():
        if type(model) is cls:
            return name
    return None


def build_model(name: str, scale: int, **kwargs: Any) -> nn.Module:
    """Build a registered super-resolution network.

    Args:
        name: architecture, one of :func:`list_models` (``edsr``, ``rcan``, ``rrdbnet``, ``swinir``).
        scale: upscaling factor (2, 3 or 4 where the architecture supports it).
        **kwargs: the network's keyword arguments in BasicSR names (``num_feat``, ``num_block``,
            ``res_scale``, ...; SwinIR: the official ``embed_dim``, ``depths``, ...), i.e. the
            config's ``model.net``.

    Returns:
        The network, with ``medsr_spec = {"arch", "scale", "net"}`` attached so saved weights
        can rebuild it.

    Raises:
        ConfigError: unknown name, unsupported scale or unknown keyword argument.
    """
    cls = model_class(name)
    params = inspect.signature(cls).parameters
    valid = [p for p in params if p != "scale"]
    for key in kwargs:
        if key not in valid:
            raise ConfigError(
                f"model.net.{key} is not a parameter of {name}; valid: {', '.join(valid)}"
            )
    net = cls(scale=scale, **kwargs)
    net.medsr_spec = {"arch": name, "scale": scale, "net": dict(kwargs)}
    return net
