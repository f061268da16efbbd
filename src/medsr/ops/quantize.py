"""Rounding to integer levels at the data boundary, one rule everywhere: clamp to [0, 1], then
round halves up (MATLAB's ``uint8()``/``uint16()``), never to even.

LR inputs, SR outputs, written images and figures all pass through these functions, so an image
written by ``medsr.predict`` holds exactly the levels that ``medsr.evaluate`` scored.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["levels", "quantize", "to_integer", "to_integer_array"]


def levels(bits: int) -> float:
    """The top level of a ``bits``-bit image (255 for 8 bits, 65535 for 16, 4095 for 12)."""
    if not 1 <= int(bits) <= 16:
        raise ValueError(f"bits must be between 1 and 16, got {bits}")
    return float(2 ** int(bits) - 1)


def quantize(x: Tensor, bits: int = 8) -> Tensor:
    """Clamp to [0, 1] and round to ``bits``-bit levels (k / (2^bits - 1)), halves rounded up.

    Not differentiable (zero gradient almost everywhere). Half types are rounded in float32
    (bfloat16 cannot hold x * 255 to the unit) and cast back.
    """
    top = levels(bits)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return (torch.floor(work.clamp(0, 1) * top + 0.5) / top).to(x.dtype)


def to_integer(x: Tensor, bits: int = 8, dtype: torch.dtype | None = None) -> Tensor:
    """[0, 1] floats -> integer levels (uint8 up to 8 bits, else uint16 unless ``dtype`` says)."""
    top = levels(bits)
    dtype = dtype or (torch.uint8 if bits <= 8 else torch.uint16)
    work = x.float() if x.dtype not in (torch.float32, torch.float64) else x
    out = torch.floor(work.clamp(0, 1) * top + 0.5)
    # torch cannot cast float -> uint16 on every backend; int32 in between is exact.
    return out.to(torch.int32).to(dtype) if dtype == torch.uint16 else out.to(dtype)


def to_integer_array(a: np.ndarray, bits: int = 8) -> np.ndarray:
    """NumPy version of :func:`to_integer` for (H, W, C) float arrays in [0, 1]."""
    top = levels(bits)
    out = np.floor(np.clip(np.asarray(a, dtype=np.float64), 0, 1) * top + 0.5)
    return out.astype(np.uint8 if bits <= 8 else np.uint16)
