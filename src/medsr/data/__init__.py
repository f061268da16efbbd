"""Data: image I/O, dataset listings, FOV masks, datasets, device-side degradation, DataModules.

The DataModules (``FolderDataModule``, ``DF2KDataModule``, ``MessidorDataModule``,
``BenchmarkDataModule``) and ``DataWaitMonitor`` import Lightning; they are loaded on first use
so that ``medsr.data.io`` stays light for scripts that only read and write images.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SRDataModule": "medsr.data.datamodule",
    "FolderDataModule": "medsr.data.datamodule",
    "DF2KDataModule": "medsr.data.datamodule",
    "MessidorDataModule": "medsr.data.datamodule",
    "BenchmarkDataModule": "medsr.data.datamodule",
    "DataWaitMonitor": "medsr.data.monitor",
    "read_image": "medsr.data.io",
    "write_image": "medsr.data.io",
    "list_images": "medsr.data.io",
    "fov_mask": "medsr.data.fov",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsr.data' has no attribute {name!r}")
