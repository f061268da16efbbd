"""Interpolation baselines (nearest, bilinear, bicubic) as parameter-free networks.

They go through the same evaluation path as the learned models, so baseline and model numbers
share one protocol. ``bicubic`` is MATLAB's imresize, the kernel the benchmark LR came from.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from medsr.errors import ConfigError
from medsr.models.registry import register_model
from medsr.ops import imresize

INTERPOLATION_MODES = ("nearest", "bilinear", "bicubic")


class Interpolation(nn.Module):
    """Upscale by ``scale`` with a fixed kernel; ``bicubic`` is MATLAB-exact."""

    def __init__(self, mode: str, scale: int) -> None:
        super().__init__()
        if mode not in INTERPOLATION_MODES:
            raise ConfigError(
                f"model={mode!r} is not an interpolation; use one of {INTERPOLATION_MODES}"
            )
        self.mode = mode
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "bicubic":
            return imresize(x, self.scale)
        if self.mode == "bilinear":
            return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


@register_model("nearest")
class Nearest(Interpolation):
    def __init__(self, scale: int) -> None:
        super().__init__("nearest", scale)


@register_model("bilinear")
class Bilinear(Interpolation):
    def __init__(self, scale: int) -> None:
        super().__init__("bilinear", scale)


@register_model("bicubic")
class Bicubic(Interpolation):
    """MATLAB-exact bicubic (the kernel the benchmark LR images were made with)."""

    def __init__(self, scale: int) -> None:
        super().__init__("bicubic", scale)
