"""Training: the LightningModules around the pure ``medsr.models`` networks (``SRModule``,
``ESRGANModule``), losses, callbacks, resume, sweeps and experiment tracking.

Loaded on use: ``import medsr.training.resume`` (config resolvers) must not import Lightning.
"""

from __future__ import annotations

import importlib

_LAZY = {"SRModule": "medsr.training.sr_module", "ESRGANModule": "medsr.training.esrgan_module"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsr.training' has no attribute {name!r}")
