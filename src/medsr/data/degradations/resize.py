"""Resizing and sharpening helpers of the pipelines (``torch.nn.functional`` and Kornia)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from medsr.data.degradations.kernels import gaussian_blur
from medsr.ops import imresize

#: Real-ESRGAN's random resize modes: ``F.interpolate`` without antialiasing, as it uses them.
MODES = ("area", "bilinear", "bicubic")
#: Sensor-side downsampling of the camera and scanner models: pixel integration or MATLAB bicubic.
DOWNSAMPLE = ("area", "imresize")


def interpolate(x: Tensor, mode: str, scale_factor: float | None = None, size=None) -> Tensor:
    """``F.interpolate`` by ``scale_factor`` (output ``floor(n * s)``, at least 1) or to ``size``."""
    if size is None:
        size = tuple(max(1, math.floor(n * scale_factor)) for n in x.shape[-2:])
        if all(math.floor(n * scale_factor) >= 1 for n in x.shape[-2:]):
            size = None  # Real-ESRGAN's call: coordinates mapped with the factor itself
    kwargs = {} if mode == "area" else {"align_corners": False}
    if size is not None:
        return F.interpolate(x, size=tuple(size), mode=mode, **kwargs)
    return F.interpolate(x, scale_factor=scale_factor, mode=mode, **kwargs)


def downsample(x: Tensor, scale: int, mode: str) -> Tensor:
    """Integer downscale: ``area`` (mean of each s x s block) or ``imresize`` (MATLAB bicubic)."""
    if mode == "area":
        return F.avg_pool2d(x, scale)
    return imresize(x, 1.0 / scale)


def unsharp_mask(x: Tensor, weight: float, radius: int, threshold: float) -> Tensor:
    """Real-ESRGAN's USM of the ground truth (BasicSR ``USMSharp``): Gaussian of ``radius`` taps
    (OpenCV's sigma for it), sharpened where the residual exceeds ``threshold`` 8-bit levels,
    blended with a blurred mask."""
    size = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel(size, 0)
    sigmas = x.new_full((x.shape[0], 2), sigma)
    blur = gaussian_blur(x, sigmas, size)
    residual = x - blur
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft = gaussian_blur(mask, sigmas, size)
    sharp = (x + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * x
