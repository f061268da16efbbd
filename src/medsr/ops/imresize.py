"""MATLAB ``imresize(..., 'bicubic')`` for batched tensors, and ``mod_crop``.

The benchmark LR images of the SR literature were made with MATLAB's imresize; every
published PSNR assumes it. This port follows MATLAB's ``contributions`` exactly (Keys cubic,
a = -0.5; kernel widened by 1/scale when shrinking; ``u = x/scale + 0.5 (1 - 1/scale)``;
symmetric padding; weights normalised per output pixel; the dimension with the smaller
scale resized first) but applies the weights as a few dense matmuls per dimension instead
of BasicSR's per-pixel loop, so it runs batched, on any device, and is differentiable.

MATLAB on a ``uint8`` image rounds to ``uint8`` after each of the two passes (the DIV2K
``LR_bicubic`` and benchmark LR files were made so); by default the intermediate stays float
(as in BasicSR: round once at the end with :func:`medsr.ops.quantize`) and ``integer_bits=8``
gives MATLAB's uint8 behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from numbers import Real

import numpy as np
import torch
from torch import Tensor

from medsr.ops.quantize import levels

__all__ = ["imresize", "mod_crop"]

# A dimension is split into chunks of output pixels whose input windows span about this
# many kernel supports: one dense (chunk x window) matmul per chunk keeps the work O(N) and
# mostly non-zero. CPU optimum (4-6) measured with benchmarks/imresize.py; accelerators
# prefer fewer, larger matmuls (a 192-pixel patch is then one matmul per dimension).
_WINDOW_SUPPORTS = {"cpu": 5}
_WINDOW_SUPPORTS_DEFAULT = 64


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5, as MATLAB's ``cubic``."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions``: (out_len, P) 0-based input indices and float64 weights."""
    kernel_width = 4.0
    if scale < 1:  # antialiasing: a wider, lower kernel
        kernel_width /= scale

        def h(d: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * d)
    else:
        h = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # same operation order as MATLAB
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding folded into the indices (repeats for inputs shorter than the kernel).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    return indices, weights


@lru_cache(maxsize=64)
def _chunks_cpu64(in_len: int, out_len: int, scale: float, supports: int) -> tuple:
    """Dense per-chunk matrices ``(start, length, M)``: a chunk's outputs = M @ input[start:start+length]."""
    indices, weights = _contributions(in_len, out_len, scale)
    reach = int((indices.max(axis=1) - indices.min(axis=1)).max()) + 1  # input span of one output
    window = supports * reach
    per_chunk = out_len if in_len <= window else max(1, int((window - reach) * out_len / in_len))
    chunks = []
    for o0 in range(0, out_len, per_chunk):
        idx, w = indices[o0 : o0 + per_chunk], weights[o0 : o0 + per_chunk]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        mat = np.zeros((idx.shape[0], hi - lo))
        np.add.at(mat, (np.arange(idx.shape[0])[:, None], idx - lo), w)  # sums folded taps
        chunks.append((lo, hi - lo, torch.from_numpy(mat)))
    return tuple(chunks)


@lru_cache(maxsize=128)
def _chunks(
    in_len: int, out_len: int, scale: float, device: torch.device, dtype: torch.dtype
) -> tuple:
    """The chunks on ``device`` in ``dtype``; each matrix also kept transposed for the W pass."""
    supports = _WINDOW_SUPPORTS.get(device.type, _WINDOW_SUPPORTS_DEFAULT)
    out = []
    # Cached for every later call: a first call under inference_mode must not make them
    # inference tensors, which autograd refuses to save for backward.
    with torch.inference_mode(False):
        for lo, length, mat in _chunks_cpu64(in_len, out_len, scale, supports):
            mat = mat.to(device=device, dtype=dtype)
            out.append((lo, length, mat, mat.t().contiguous()))
    return tuple(out)


def _resize_dim(x: Tensor, dim: int, out_len: int, scale: float) -> Tensor:
    """Resize ``x`` along ``dim`` (-2 = rows, -1 = columns)."""
    in_len = x.shape[dim]
    if in_len == out_len and scale == 1:
        return x  # MATLAB's weights are the identity here
    parts = []
    for lo, length, mat, mat_t in _chunks(in_len, out_len, scale, x.device, x.dtype):
        piece = x.narrow(dim, lo, length)
        parts.append(torch.matmul(mat, piece) if dim == -2 else torch.matmul(piece, mat_t))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _output_length(in_len: int, scale: float) -> int:
    """MATLAB's ``ceil(scale * in_len)``, ignoring float noise (15 * 0.2 = 3.0000000000000004)."""
    exact = in_len * scale
    nearest = round(exact)
    if abs(exact - nearest) <= 1e-9 * max(1.0, exact):
        return max(1, nearest)
    return max(1, math.ceil(exact))


def _parse_scale_size(
    in_hw: tuple[int, int], scale: float | Sequence[float] | None, size: Sequence[int] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of `scale` (e.g. 0.5) or `size=(h, w)`")
    if size is not None:
        if len(size) != 2 or not all(isinstance(s, int | np.integer) and s > 0 for s in size):
            raise ValueError(f"imresize: size must be two positive ints (h, w), got {size!r}")
        out_hw = (int(size[0]), int(size[1]))
        return (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]), out_hw
    pair = (
        (scale, scale)
        if isinstance(scale, Real)
        else tuple(scale)
        if isinstance(scale, Sequence)
        else ()
    )
    if len(pair) != 2 or not all(isinstance(s, Real) and math.isfinite(s) and s > 0 for s in pair):
        raise ValueError(
            f"imresize: scale must be a positive number or a pair of them, got {scale!r}"
        )
    scales = (float(pair[0]), float(pair[1]))
    return scales, (_output_length(in_hw[0], scales[0]), _output_length(in_hw[1], scales[1]))


def imresize(
    x: Tensor,
    scale: float | Sequence[float] | None = None,
    *,
    size: Sequence[int] | None = None,
    integer_bits: int | None = None,
) -> Tensor:
    """Resize like MATLAB ``imresize(x, scale, 'bicubic')`` (antialiased when shrinking).

    Args:
        x: float tensor (B, C, H, W) or (C, H, W), any device. float16/bfloat16 are computed
            in float32 and cast back. Not rounded or clamped: bicubic overshoots [0, 1].
        scale: factor for both dimensions (0.5 shrinks by 2) or a pair (scale_h, scale_w).
            Output size is MATLAB's ``ceil(scale * H)``, ``ceil(scale * W)``.
        size: output (h, w) instead of ``scale``; the scales are then h/H and w/W, as in MATLAB.
        integer_bits: resize ``x`` as MATLAB resizes an integer image of this many bits (8 =
            ``imresize`` of a ``uint8`` image, how the DIV2K and benchmark LR files were made):
            input, the result of each 1-D pass and so the output are rounded to its levels
            (halves up, saturated), on the 0..2^bits-1 scale as MATLAB computes, so exact
            halves round as there. None: float throughout.

    Returns:
        The resized tensor, same leading dims, device and dtype as ``x``; differentiable
        unless ``integer_bits`` is given.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"imresize: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"imresize: expected a float tensor in [0, 1], got {x.dtype}; convert with x.float() / 255"
        )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"imresize: expected (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}"
        )
    (scale_h, scale_w), (out_h, out_w) = _parse_scale_size((x.shape[-2], x.shape[-1]), scale, size)

    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    # MATLAB resizes the dimension with the smaller scale first (rows on a tie).
    passes = ((-2, out_h, scale_h), (-1, out_w, scale_w))[:: 1 if scale_h <= scale_w else -1]
    if integer_bits is None:
        return _resize_dim(_resize_dim(work, *passes[0]), *passes[1]).to(x.dtype)
    top = levels(integer_bits)

    def integer(v: Tensor) -> Tensor:  # MATLAB's cast to the integer class
        return torch.floor(v.clamp(0, top) + 0.5)

    out = integer(work * top)
    for dim in passes:
        out = integer(_resize_dim(out, *dim))
    return (out / top).to(x.dtype)


def mod_crop(x: Tensor, scale: int) -> Tensor:
    """Crop the last two dims (H, W) down to multiples of ``scale``, keeping the top-left (BasicSR).

    Args:
        x: tensor (..., H, W).
        scale: positive int.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"mod_crop: scale must be a positive int, got {scale!r}")
    h, w = x.shape[-2], x.shape[-1]
    if h < scale or w < scale:
        raise ValueError(f"mod_crop: image {h}x{w} is smaller than the scale {scale}")
    return x[..., : h - h % scale, : w - w % scale]
