"""JPEG compression on the device at per-sample quality.

Two codecs, both batched with one quality per sample:

- ``baseline`` (default): baseline JPEG as libjpeg writes and reads it (what cameras and Pillow
  produce): 8-bit input, JFIF YCbCr rounded to integers, 4:2:0
  chroma by 2x2 averaging, 8x8 DCT, the Annex K tables scaled by libjpeg's quality rule
  (integer entries clamped to [1, 255]), hard rounding of the coefficients, libjpeg's "fancy"
  (triangular) chroma upsampling, 8-bit output. Real-ESRGAN's DiffJPEG also rounds hard.
- ``kornia``: :func:`kornia.enhance.jpeg_codec_differentiable`. It rounds coefficients with
  ``round(x) + (x - round(x))^3`` so gradients flow; in a forward pass that keeps part of the
  rounding error, and its output is 0.5-1.4 dB closer to the original than a real JPEG of the
  same quality (see ``tests/test_degradations.py``). Use it where gradients are needed.

Images with another channel count than 3 are coded channel by channel as greyscale JPEGs (only
the luma plane, as libjpeg writes a one-component image).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

CODECS = ("baseline", "kornia")

# ITU-T T.81 Annex K tables (luminance, chrominance), the base of libjpeg's quality scaling.
_LUMA = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_CHROMA = [[17, 18, 24, 47] + [99] * 4, [18, 21, 26, 66] + [99] * 4]
_CHROMA += [[24, 26, 56] + [99] * 5, [47, 66] + [99] * 6] + [[99] * 8] * 4


# JFIF full-range YCbCr with libjpeg's coefficients (Kornia's rgb_to_ycbcr rounds them to 3
# digits, which costs 5 dB of agreement with libjpeg at quality 95).
_RGB_TO_YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]],
    dtype=torch.float64,
)
_YCC_TO_RGB = torch.tensor(
    [[1.0, 0.0, 1.402], [1.0, -0.344136286, -0.714136286], [1.0, 1.772, 0.0]], dtype=torch.float64
)
_YCC_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64).view(1, 3, 1, 1)


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """Per-pixel 3x3 colour transform of ``(B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(device=x.device, dtype=x.dtype), x)


@lru_cache(maxsize=8)
def _dct_basis(device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(64, 64)`` orthonormal 2-D DCT-II of a row-major 8x8 block: ``kron(D, D)``."""
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return torch.kron(d, d).to(device=device, dtype=dtype)


def quality_tables(quality: Tensor, base: list) -> Tensor:
    """libjpeg's ``jpeg_quality_scaling`` + ``jpeg_add_quant_table`` (baseline): ``(B, 64)``."""
    q = quality.round().clamp(1, 100)
    scale = torch.where(q < 50, torch.floor(5000 / q), 200 - 2 * q)
    table = torch.tensor(base, dtype=quality.dtype, device=quality.device).view(1, 64)
    return torch.floor((table * scale.view(-1, 1) + 50) / 100).clamp(1, 255)


def _code_plane(plane: Tensor, tables: Tensor) -> Tensor:
    """Level-shifted DCT, quantise (hard rounding), dequantise, inverse DCT of ``(B, h, w)``
    planes with ``h``, ``w`` multiples of 8; ``tables`` ``(B, 64)``. One GEMM each way."""
    b, h, w = plane.shape
    basis = _dct_basis(plane.device, plane.dtype)
    blocks = (plane - 128).reshape(b, h // 8, 8, w // 8, 8).transpose(2, 3).reshape(b, -1, 64)
    t = tables.to(plane.dtype)[:, None, :]
    coef = torch.round(blocks @ basis.T / t) * t
    out = (coef @ basis).reshape(b, h // 8, w // 8, 8, 8).transpose(2, 3).reshape(b, h, w)
    return out + 128


def _fancy_upsample(c: Tensor) -> Tensor:
    """libjpeg's h2v2 fancy upsampling: triangular 3/4-1/4 weights per axis, edges replicated."""
    return F.interpolate(c[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]


def _baseline_rgb(x: Tensor, quality: Tensor) -> Tensor:
    b, _, h, w = x.shape
    hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
    rgb = torch.round(x * 255)
    ycc = torch.round(_mix(_RGB_TO_YCC, rgb) + _YCC_OFFSET.to(rgb)).clamp(0, 255)
    ycc = F.pad(ycc, (0, wp - w, 0, hp - h), mode="replicate")  # libjpeg replicates the edge
    y = _code_plane(ycc[:, 0], quality_tables(quality, _LUMA))
    chroma = F.avg_pool2d(ycc[:, 1:], 2)
    c_tab = quality_tables(quality, _CHROMA).repeat_interleave(2, dim=0)
    c = _code_plane(chroma.reshape(2 * b, hp // 2, wp // 2), c_tab)
    c = _fancy_upsample(c.clamp(0, 255)).reshape(b, 2, hp, wp)
    ycc = torch.cat([y.clamp(0, 255).round()[:, None], c], dim=1)[..., :h, :w]
    rgb = _mix(_YCC_TO_RGB, ycc - _YCC_OFFSET.to(ycc))
    return torch.round(rgb).clamp(0, 255) / 255


def _baseline_grey(x: Tensor, quality: Tensor) -> Tensor:
    b, _, h, w = x.shape
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    plane = F.pad(torch.round(x * 255), (0, wp - w, 0, hp - h), mode="replicate")[:, 0]
    out = _code_plane(plane, quality_tables(quality, _LUMA))[:, None, :h, :w]
    return torch.round(out).clamp(0, 255) / 255


def jpeg(x: Tensor, quality: Tensor, codec: str = "baseline") -> Tensor:
    """Compress and decode ``x`` (clamped to [0, 1]) at ``quality`` ``(B,)`` in [1, 100].

    Args:
        x: ``(B, C, H, W)`` float batch; any size (padded to whole blocks internally).
        quality: per-sample JPEG quality (rounded to an integer by ``baseline``).
        codec: ``baseline`` (libjpeg's forward codec) or ``kornia`` (differentiable).
    """
    x = x.clamp(0, 1)
    q = quality.to(device=x.device, dtype=x.dtype)
    b, c, h, w = x.shape
    if codec == "kornia":
        from kornia.enhance import jpeg_codec_differentiable  # on use (a quarter second)

        if c == 3:
            return jpeg_codec_differentiable(x, q)
        grey = x.reshape(b * c, 1, h, w).expand(-1, 3, -1, -1)
        out = jpeg_codec_differentiable(grey, q.repeat_interleave(c))
        return out.mean(dim=1).reshape(b, c, h, w)
    if codec != "baseline":
        raise ValueError(f"unknown JPEG codec {codec!r}; use one of {CODECS}")
    if c == 3:
        return _baseline_rgb(x, q)
    out = _baseline_grey(x.reshape(b * c, 1, h, w), q.repeat_interleave(c))
    return out.reshape(b, c, h, w)
