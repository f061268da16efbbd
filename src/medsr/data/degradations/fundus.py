"""A fundus-camera model: defocus and eye-motion blur, the optics' PSF, pixel integration,
sensor noise, and the camera's JPEG.

Blur sizes are in LR pixels (the camera's own pixels) and scaled by the factor, so x2, x3 and
x4 LR images look equally sharp. Order, per sample: defocus disk (with ``defocus.prob``) ->
motion line in any direction (``motion.prob``) -> Gaussian PSF (always) -> ``downsample`` ->
Poisson-Gaussian sensor noise (read noise + shot noise, per channel) -> JPEG (``jpeg.prob``,
integer quality as a camera writes it). Values: ``conf/degradation/fundus.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from medsr.data.degradations.base import (
    SpecDegradation,
    bernoulli,
    device_generator,
    to_levels,
    uniform,
)
from medsr.data.degradations.config import check_choice, check_prob, check_range
from medsr.data.degradations.jpeg import CODECS, jpeg
from medsr.data.degradations.kernels import blur, disk_kernels, gaussian_blur, line_kernels
from medsr.data.degradations.noise import sensor_noise
from medsr.data.degradations.resize import DOWNSAMPLE, downsample


@dataclass(frozen=True)
class ProbRange:
    """Applied with probability ``prob``; the size drawn uniformly from ``range`` (LR pixels)."""

    prob: float
    range: tuple[float, float]

    def validate(self, key: str) -> None:
        check_prob(f"{key}.prob", self.prob)
        check_range(f"{key}.range", self.range, 0.0, 16.0)


@dataclass(frozen=True)
class SensorNoiseSpec:
    """Sigma of the read noise and of the shot noise at full signal, in 8-bit levels."""

    read: tuple[float, float]
    shot: tuple[float, float]

    def validate(self, key: str) -> None:
        check_range(f"{key}.read", self.read, 0.0, 255.0)
        check_range(f"{key}.shot", self.shot, 0.0, 255.0)


@dataclass(frozen=True)
class JpegSpec:
    prob: float
    quality: tuple[float, float]
    codec: str

    def validate(self, key: str) -> None:
        check_prob(f"{key}.prob", self.prob)
        check_range(f"{key}.quality", self.quality, 1.0, 100.0)
        check_choice(f"{key}.codec", self.codec, CODECS)


@dataclass(frozen=True)
class FundusSpec:
    defocus: ProbRange
    motion: ProbRange
    psf_sigma: tuple[float, float]
    downsample: str
    noise: SensorNoiseSpec
    jpeg: JpegSpec

    def validate(self, key: str) -> None:
        check_range(f"{key}.psf_sigma", self.psf_sigma, 0.01, 8.0)
        check_choice(f"{key}.downsample", self.downsample, DOWNSAMPLE)


class FundusDegradation(SpecDegradation):
    """The fundus-camera model; see the module docstring and ``conf/degradation/fundus.yaml``."""

    name = "fundus"

    spec_type = FundusSpec
    spec: FundusSpec

    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        spec, n = self.spec, hr.shape[0]
        dev, dt = hr.device, hr.dtype
        defocus_on = bernoulli(generator, n, spec.defocus.prob)
        radius = uniform(generator, n, spec.defocus.range) * scale
        motion_on = bernoulli(generator, n, spec.motion.prob)
        length = uniform(generator, n, spec.motion.range) * scale
        angle = uniform(generator, n, (0.0, math.pi))
        sigma = uniform(generator, n, spec.psf_sigma) * scale
        read = uniform(generator, n, spec.noise.read) / 255.0
        shot = uniform(generator, n, spec.noise.shot) / 255.0
        jpeg_on = bernoulli(generator, n, spec.jpeg.prob)
        quality = uniform(generator, n, spec.jpeg.quality).round()
        noise_gen = device_generator(dev, generator)

        x = hr
        if bool(defocus_on.any()):
            radius = torch.where(defocus_on, radius, torch.zeros_like(radius))
            size = 2 * math.ceil(float(radius.max()) + 0.5) + 1
            x = blur(x, disk_kernels(radius, size, dev, dt))
        if bool(motion_on.any()):
            length = torch.where(motion_on, length, torch.zeros_like(length))
            size = 2 * math.ceil(float(length.max()) / 2 + 1) + 1
            x = blur(x, line_kernels(length, angle, size, dev, dt))
        x = gaussian_blur(x, sigma[:, None].expand(n, 2))
        x = downsample(x, scale, spec.downsample)
        x = sensor_noise(x, read, shot, noise_gen)
        if bool(jpeg_on.any()):
            idx = jpeg_on.nonzero()[:, 0].to(dev)
            x = x.index_copy(0, idx, jpeg(to_levels(x[idx], 8), quality[jpeg_on], spec.jpeg.codec))
        return to_levels(x, bits)
