"""Colour conversion for evaluation: MATLAB ``rgb2ycbcr`` luma (ITU-R BT.601, studio range).

Published SR tables compare Y of MATLAB's ``rgb2ycbcr`` (16-235), not full-range Y (kornia's
``rgb_to_ycbcr``, about 1.3 dB apart in PSNR).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_y"]

# BT.601 luma scaled to the 16-235 range, for R, G, B in [0, 1] (BasicSR's rgb2ycbcr).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def rgb_to_y(x: Tensor) -> Tensor:
    """Y of MATLAB ``rgb2ycbcr`` on the 0-255 scale, not rounded.

    Args:
        x: RGB tensor (..., 3, H, W) with values in [0, 1], floating point.

    Returns:
        Tensor (..., 1, H, W): ``16 + 65.481 R + 128.553 G + 24.966 B``, same dtype as ``x``.
    """
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"rgb_to_y: expected RGB (..., 3, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"rgb_to_y: expected a float tensor in [0, 1], got {x.dtype}")
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True) + _Y_OFFSET
