"""Degradations: HR float batch -> LR, batched on the batch's device, seeded per step or image.

- ``bicubic``: the benchmark LR (MATLAB-bicubic ``imresize``), the default and the thesis protocol.
- ``realesrgan``: Real-ESRGAN's second-order blur/resize/noise/JPEG pipeline (x4plus settings).
- ``fundus``: a fundus camera (defocus, motion, PSF, sensor noise, the camera's JPEG).
- ``scanner``: MR/CT-like (Gaussian PSF, Gaussian or Rician noise, no compression).

``build_degradation(cfg)`` takes the ``degradation=`` config; every pipeline is
called as ``deg(hr, scale, generator, bits=8) -> lr``.
"""

from __future__ import annotations

from collections.abc import Mapping

from medsr.data.degradations.base import (
    Degradation,
    image_generator,
    mix_seed,
    step_generator,
)
from medsr.data.degradations.bicubic import BicubicDegradation
from medsr.data.degradations.fundus import FundusDegradation
from medsr.data.degradations.realesrgan import RealESRGANDegradation
from medsr.data.degradations.scanner import ScannerDegradation
from medsr.errors import ConfigError

PIPELINES: dict[str, type[Degradation]] = {
    "bicubic": BicubicDegradation,
    "realesrgan": RealESRGANDegradation,
    "fundus": FundusDegradation,
    "scanner": ScannerDegradation,
}


def build_degradation(cfg: Mapping | None = None, **overrides) -> Degradation:
    """A :class:`Degradation` from the ``degradation=`` config (None: bicubic).

    Args:
        cfg: mapping with ``name`` and the pipeline's settings (an OmegaConf node works; scripts
            get a packaged one with ``medsr.conf.compose.degradation_config(name)``), or None.
        **overrides: top-level settings replacing the config's (e.g. ``seed=0``).
    """
    from omegaconf import DictConfig, OmegaConf

    if cfg is None:
        cfg = {"name": "bicubic"}
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    elif not isinstance(cfg, Mapping):
        raise ConfigError(f"degradation must be a mapping with a name, got {cfg!r}")
    values = {**cfg, **overrides}
    name = values.pop("name", None)
    if name not in PIPELINES:
        raise ConfigError(f"degradation.name={name!r} is not known; use one of {sorted(PIPELINES)}")
    return PIPELINES[name].from_config(values)


__all__ = [
    "PIPELINES",
    "BicubicDegradation",
    "Degradation",
    "FundusDegradation",
    "RealESRGANDegradation",
    "ScannerDegradation",
    "build_degradation",
    "image_generator",
    "mix_seed",
    "step_generator",
]
