"""Conversions between decoded image arrays and tensors (channels, bit depth, layout)."""

from __future__ import annotations

import numpy as np
import torch

from medsr.errors import DataError
from medsr.ops.quantize import to_integer, to_integer_array

_PEAK = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def chw_tensor(a: np.ndarray) -> torch.Tensor:
    """(H, W, C) array -> (C, H, W) tensor sharing memory where it can (Pillow's arrays are
    read-only and torch wants writable memory, so those are copied)."""
    return torch.from_numpy(np.require(a.transpose(2, 0, 1), requirements=["C", "W"]))


def to_float_tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` uint8/uint16 -> ``(C, H, W)`` float32 in [0, 1] (uint16 divided by 65535)."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    peak = _PEAK.get(a.dtype)
    if peak is None:
        raise DataError(f"expected a uint8 or uint16 image array, got {a.dtype}.")
    return chw_tensor(a).float().div_(peak)


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A float image in [0, 1] (``(C, H, W)`` tensor or ``(H, W, C)`` array), or a uint16 array,
    to an ``(H, W, C)`` uint8 array, clamped, halves rounded up (``medsr.ops.quantize``)."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        return to_integer(t[None] if t.ndim == 2 else t, 8).permute(1, 2, 0).numpy()
    a = np.asarray(x)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return to_integer_array(a, 8)


def to_rgb(array: np.ndarray) -> np.ndarray:
    """Gray -> 3 equal channels; RGBA -> RGB (alpha dropped). Other arrays are returned as is."""
    c = array.shape[-1]
    if c == 1:
        return np.repeat(array, 3, axis=-1)
    if c == 4:
        return array[..., :3]
    return array


def drop_alpha(array: np.ndarray) -> np.ndarray:
    """RGBA -> RGB; gray and RGB unchanged (evaluation keeps the native channel count)."""
    return array[..., :3] if array.shape[-1] == 4 else array


def as_uint8(array: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 with rounding (training ships uint8); uint8 unchanged."""
    return array if array.dtype == np.uint8 else to_uint8(array)
