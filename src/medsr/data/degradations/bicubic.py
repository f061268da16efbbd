"""The benchmark degradation as a :class:`Degradation`: MATLAB-bicubic ``imresize(HR, 1/s)``."""

from __future__ import annotations

import torch
from torch import Tensor

from medsr.data.degradations.base import Degradation
from medsr.data.degrade import bicubic_lr
from medsr.errors import ConfigError


class BicubicDegradation(Degradation):
    """Today's LR (:func:`medsr.data.degrade.bicubic_lr`); the generator is not used.

    Args:
        seed: unused (deterministic).
        matlab_uint8: round after each 1-D pass of ``imresize`` as MATLAB does on a uint8 image
            (``degradation.matlab_uint8``), as the DIV2K and benchmark LR files were made.
    """

    name = "bicubic"
    random = False

    def __init__(self, seed: int | None = None, matlab_uint8: bool = False) -> None:
        super().__init__(seed)
        if not isinstance(matlab_uint8, bool):
            raise ConfigError(f"degradation.matlab_uint8={matlab_uint8!r} must be true or false")
        self.matlab_uint8 = matlab_uint8

    @classmethod
    def from_config(cls, values: dict, key: str = "degradation") -> BicubicDegradation:
        values = dict(values)
        seed = values.pop("seed", None)
        matlab_uint8 = values.pop("matlab_uint8", False)
        if values:
            raise ConfigError(f"{key}: the bicubic degradation has no setting {sorted(values)}")
        return cls(seed, matlab_uint8)

    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        return bicubic_lr(hr, scale, bits, self.matlab_uint8)
