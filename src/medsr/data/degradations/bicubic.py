"""The benchmark degradation as a :class:`Degradation`: MATLAB-bicubic ``imresize(HR, 1/s)``."""

from __future__ import annotations

import torch
from torch import Tensor

from medsr.data.degradations.base import Degradation
from medsr.data.degrade import bicubic_lr
from medsr.errors import ConfigError


class BicubicDegradation(Degradation):
    """Today's LR (:func:`medsr.data.degrade.bicubic_lr`); the generator is not used."""

    name = "bicubic"
    random = False

    @classmethod
    def from_config(cls, values: dict, key: str = "degradation") -> BicubicDegradation:
        values = dict(values)
        seed = values.pop("seed", None)
        if values:
            raise ConfigError(f"{key}: the bicubic degradation has no setting {sorted(values)}")
        return cls(seed)

    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        return bicubic_lr(hr, scale, bits)
