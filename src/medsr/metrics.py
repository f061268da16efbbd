"""PSNR and SSIM on the Y channel, as the SR literature reports them (BasicSR / MATLAB).

Protocol: RGB in [0, 1] -> Y of MATLAB ``rgb2ycbcr`` on the 0-255 scale (not rounded);
a one-channel image is compared on its own channel (x 255, no YCbCr offset); ``crop_border``
pixels removed on every side; float64 throughout. SSIM follows Wang et al., "Image quality
assessment: from error visibility to structural similarity", IEEE TIP 2004: 11x11 Gaussian
window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, valid region only (MATLAB ``ssim_index``,
BasicSR ``calculate_ssim``). Identical images give PSNR ``inf`` and SSIM 1.

An optional ``mask`` (B, 1, H, W), True inside a fundus field of view, restricts PSNR to the
pixels inside it and SSIM to windows centred inside it: the black surround otherwise
inflates both.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from medsr.ops.color import rgb_to_y

__all__ = ["PSNRY", "SSIMY", "psnr_y", "ssim_y"]  # noqa: F822 (PSNRY, SSIMY: module __getattr__)

_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5
SSIM_WINDOW = _SSIM_WINDOW  # the smallest image side (after the crop border) SSIM can score
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _to_y255(x: Tensor) -> Tensor:
    """(B, 3|1, H, W) in [0, 1] -> (B, 1, H, W) float64 on the 0-255 scale."""
    x = x.to(torch.float64)
    return rgb_to_y(x) if x.shape[1] == 3 else x * 255.0


def _prepare(
    name: str, sr: Tensor, hr: Tensor, crop_border: int, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate, convert to Y (0-255, float64) and crop; returns (sr_y, hr_y, mask or None)."""
    if sr.shape != hr.shape:
        raise ValueError(f"{name}: sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.ndim != 4 or sr.shape[1] not in (1, 3):
        raise ValueError(
            f"{name}: expected (B, 3, H, W) RGB or (B, 1, H, W) grayscale, got {tuple(sr.shape)}"
        )
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"{name}: crop_border must be an int >= 0, got {crop_border!r}")
    h, w = sr.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"{name}: crop_border={crop_border} removes all of a {h}x{w} image")
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != (sr.shape[0], 1, h, w):
            raise ValueError(
                f"{name}: mask must be a bool tensor of shape {(sr.shape[0], 1, h, w)}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
    c = crop_border
    crop = (slice(None), slice(None), slice(c, h - c), slice(c, w - c))
    return _to_y255(sr[crop]), _to_y255(hr[crop]), None if mask is None else mask[crop]


def _masked_mean(values: Tensor, mask: Tensor | None, name: str) -> Tensor:
    """Per-image mean of (B, 1, h, w) ``values``, over ``mask`` when given."""
    if mask is None:
        return values.mean(dim=(1, 2, 3))
    counts = mask.sum(dim=(1, 2, 3))
    if bool((counts == 0).any()):
        empty = [i for i, n in enumerate(counts.tolist()) if n == 0]
        raise ValueError(
            f"{name}: the mask selects no pixel of image(s) {empty} after cropping the border"
        )
    return (values * mask).sum(dim=(1, 2, 3)) / counts


def psnr_y(sr: Tensor, hr: Tensor, crop_border: int, mask: Tensor | None = None) -> Tensor:
    """PSNR (dB) on Y, one value per image; ``inf`` where the images are identical.

    Args:
        sr: (B, 3, H, W) RGB or (B, 1, H, W) grayscale in [0, 1] (already quantised).
        hr: same shape as ``sr``.
        crop_border: pixels removed on each side before comparing (the scale, by convention).
        mask: optional (B, 1, H, W) bool; only pixels inside it (after the crop) count.

    Returns:
        float64 tensor (B,).
    """
    sr_y, hr_y, mask = _prepare("psnr_y", sr, hr, crop_border, mask)
    mse = _masked_mean((sr_y - hr_y) ** 2, mask, "psnr_y")
    return 10.0 * torch.log10(255.0**2 / mse)  # mse 0 -> inf


def _gaussian_taps() -> list[float]:
    """MATLAB ``fspecial('gaussian', 11, 1.5)`` is the outer product of these normalised taps."""
    g = [
        math.exp(-((k - _SSIM_WINDOW // 2) ** 2) / (2 * _SSIM_SIGMA**2))
        for k in range(_SSIM_WINDOW)
    ]
    return [v / sum(g) for v in g]


def _filter_valid(x: Tensor, taps: list[float]) -> Tensor:
    """Separable 'valid' filtering of the last two dims by shifted adds.

    On CPU this is several times faster than a float64 ``conv2d`` (which also slows per image
    as the batch grows).
    """
    n, (h, w) = len(taps), x.shape[-2:]
    rows = x[..., : h - n + 1, :] * taps[0]
    for k in range(1, n):
        rows.add_(x[..., k : k + h - n + 1, :], alpha=taps[k])
    out = rows[..., : w - n + 1] * taps[0]
    for k in range(1, n):
        out.add_(rows[..., k : k + w - n + 1], alpha=taps[k])
    return out


def _ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """SSIM map over the valid region: (B, 1, h, w) -> (B, 1, h - 10, w - 10)."""
    taps = _gaussian_taps()
    maps = []
    for xi, yi in zip(x, y, strict=True):  # image by image: the five statistics stay in cache
        stats = _filter_valid(torch.cat([xi, yi, xi * xi, yi * yi, xi * yi]), taps)
        mu_x, mu_y, xx, yy, xy = stats.unsqueeze(1).unbind(0)
        var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
        maps.append(
            ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2))
            / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
        )
    return torch.stack(maps)


def ssim_y(sr: Tensor, hr: Tensor, crop_border: int, mask: Tensor | None = None) -> Tensor:
    """SSIM on Y (Wang et al. 2004, 11x11 Gaussian window, valid region), one value per image.

    Args:
        sr: (B, 3, H, W) RGB or (B, 1, H, W) grayscale in [0, 1] (already quantised).
        hr: same shape as ``sr``.
        crop_border: pixels removed on each side before comparing.
        mask: optional (B, 1, H, W) bool; the SSIM map is averaged only over windows whose
            centre lies inside it.

    Returns:
        float64 tensor (B,).
    """
    sr_y, hr_y, mask = _prepare("ssim_y", sr, hr, crop_border, mask)
    h, w = sr_y.shape[-2:]
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim_y: the image is {h}x{w} after cropping {crop_border} pixels per side; "
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW}"
        )
    half = _SSIM_WINDOW // 2
    if mask is not None:
        mask = mask[..., half : h - half, half : w - half]  # window centres of the valid region
    return _masked_mean(_ssim_map(sr_y, hr_y), mask, "ssim_y")


def __getattr__(name: str):
    if name in ("PSNRY", "SSIMY"):
        return _metric_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _metric_classes() -> dict[str, type]:
    """The torchmetrics classes, made on first use: evaluation and prediction call the functions
    above and skip torchmetrics' import (a third of a second)."""
    from torchmetrics import MeanMetric

    class _MeanOverImages(MeanMetric):
        """Mean of a per-image metric over every image seen (torchmetrics' ``MeanMetric``, whose sum and
        weight states reduce under DDP)."""

        is_differentiable = False
        higher_is_better = True

        def __init__(self, crop_border: int, **kwargs) -> None:
            super().__init__(**kwargs)
            if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
                raise ValueError(
                    f"{type(self).__name__}: crop_border must be an int >= 0, got {crop_border!r}"
                )
            self.crop_border = crop_border
            self.set_dtype(torch.float64)

        def _per_image(self, sr: Tensor, hr: Tensor, mask: Tensor | None) -> Tensor:
            raise NotImplementedError

        def update(self, sr: Tensor, hr: Tensor, mask: Tensor | None = None) -> None:
            super().update(self._per_image(sr, hr, mask).double())

    class PSNRY(_MeanOverImages):
        """Mean Y-channel PSNR (dB) over all images (:func:`psnr_y`); ``inf`` if any pair is identical.

        Args:
            crop_border: pixels removed on each side (the scale, by convention).
        """

        def _per_image(self, sr: Tensor, hr: Tensor, mask: Tensor | None) -> Tensor:
            return psnr_y(sr, hr, self.crop_border, mask)

    class SSIMY(_MeanOverImages):
        """Mean Y-channel SSIM over all images (:func:`ssim_y`).

        Args:
            crop_border: pixels removed on each side (the scale, by convention).
        """

        def _per_image(self, sr: Tensor, hr: Tensor, mask: Tensor | None) -> Tensor:
            return ssim_y(sr, hr, self.crop_border, mask)

    for cls in (PSNRY, SSIMY):  # pickled and documented as medsr.metrics.PSNRY / SSIMY
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return {"PSNRY": PSNRY, "SSIMY": SSIMY}
