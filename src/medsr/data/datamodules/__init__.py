"""DataModules: any folder (and the shipped samples), DF2K, MESSIDOR-2, benchmark sets.

``<Name>Data`` (``base``, ``folder``, ``df2k``, ``messidor``, ``benchmark``) hold everything and do
not import Lightning; ``<Name>DataModule`` (``lightning``) are the same with
``LightningDataModule`` for training. Both are loaded on first use.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "SRData": "base",
    "FolderData": "folder",
    "DF2KData": "df2k",
    "MessidorData": "messidor",
    "BenchmarkData": "benchmark",
    "MedicalData": "medical",
}
_WHERE |= {f"{name}Module": "lightning" for name in _WHERE}

__all__ = sorted(_WHERE) + ["plain_target"]


def plain_target(target: str) -> str:
    """The Lightning-free class of a data config's ``_target_`` (evaluation needs no Lightning);
    ``target`` itself when it has none (e.g. a DataModule defined elsewhere)."""
    package, _, name = target.rpartition(".")
    plain = name.removesuffix("Module")
    if package == __name__ and name.endswith("DataModule") and plain in _WHERE:
        return f"{__name__}.{plain}"
    return target


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
