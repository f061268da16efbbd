"""A scanner model for single-channel (and multi-channel) medical images: a Gaussian
point-spread function, voxel integration and Gaussian or Rician noise; no compression.

MR magnitude images carry Rician noise (the magnitude of complex Gaussian noise: a positive
bias in dark regions); CT and X-ray are close to Gaussian. The PSF sigma is in LR pixels
(anisotropic with ``psf.anisotropic_prob``: sigma_y drawn apart from sigma_x, as a slice profile
differs from the in-plane resolution); noise sigma in percent of full scale. The output keeps
the input's bit depth (16-bit sources stay 16-bit). Values: ``conf/degradation/scanner.yaml``.
"""

from __future__ import annotations

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
from medsr.data.degradations.kernels import gaussian_blur
from medsr.data.degradations.noise import gaussian_noise, rician_noise
from medsr.data.degradations.resize import DOWNSAMPLE, downsample


@dataclass(frozen=True)
class PsfSpec:
    sigma: tuple[float, float]
    anisotropic_prob: float

    def validate(self, key: str) -> None:
        check_range(f"{key}.sigma", self.sigma, 0.01, 8.0)
        check_prob(f"{key}.anisotropic_prob", self.anisotropic_prob)


@dataclass(frozen=True)
class ScannerNoiseSpec:
    rician_prob: float
    sigma_percent: tuple[float, float]

    def validate(self, key: str) -> None:
        check_prob(f"{key}.rician_prob", self.rician_prob)
        check_range(f"{key}.sigma_percent", self.sigma_percent, 0.0, 100.0)


@dataclass(frozen=True)
class ScannerSpec:
    psf: PsfSpec
    downsample: str
    noise: ScannerNoiseSpec

    def validate(self, key: str) -> None:
        check_choice(f"{key}.downsample", self.downsample, DOWNSAMPLE)


class ScannerDegradation(SpecDegradation):
    """The scanner model; see the module docstring and ``conf/degradation/scanner.yaml``."""

    name = "scanner"

    spec_type = ScannerSpec
    spec: ScannerSpec

    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        spec, n = self.spec, hr.shape[0]
        sigma_x = uniform(generator, n, spec.psf.sigma)
        sigma_y = uniform(generator, n, spec.psf.sigma)
        aniso = bernoulli(generator, n, spec.psf.anisotropic_prob)
        sigma_y = torch.where(aniso, sigma_y, sigma_x)
        rician = bernoulli(generator, n, spec.noise.rician_prob)
        noise = uniform(generator, n, spec.noise.sigma_percent) / 100.0
        noise_gen = device_generator(hr.device, generator)

        x = gaussian_blur(hr, torch.stack([sigma_y, sigma_x], dim=1) * scale)
        x = downsample(x, scale, spec.downsample)
        if bool(rician.all()):
            return to_levels(rician_noise(x, noise, noise_gen), bits)
        none = torch.zeros_like(rician)
        gauss = gaussian_noise(x, noise, none, noise_gen)
        if bool(rician.any()):
            mag = rician_noise(x, noise, noise_gen)
            gauss = torch.where(rician.to(x.device).view(-1, 1, 1, 1), mag, gauss)
        return to_levels(gauss, bits)
