"""Hydra/OmegaConf helpers shared by the entry points."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf


def samples_dir(split: str = "") -> str:
    """Folder of the sample images shipped inside the package (``train`` or ``val``)."""
    root = Path(str(resources.files("medsr") / "samples"))
    return str(root / split) if split else str(root)


def register_resolvers() -> None:
    """Register medsr's OmegaConf resolvers (idempotent): ``${samples_dir:train}``."""
    if not OmegaConf.has_resolver("samples_dir"):
        OmegaConf.register_new_resolver("samples_dir", samples_dir)


register_resolvers()
