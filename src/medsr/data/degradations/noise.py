"""Batched noise with per-sample levels, drawn from a device generator.

Real-ESRGAN's Gaussian and Poisson noise in colour or grey (BasicSR ``*_noise_pt``), Rician noise
for MR magnitude images, and a Poisson-Gaussian sensor model for cameras. ``sigma`` and ``scale``
are ``(B,)`` tensors on the image's scale ([0, 1]); ``gray`` a ``(B,)`` bool: one noise field
shared by all channels of that sample. Results are not clipped.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _col(t: Tensor, x: Tensor) -> Tensor:
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _gray(x: Tensor) -> Tensor:
    """BT.601 luma of RGB (as BasicSR's ``rgb_to_grayscale``), the channel mean otherwise."""
    from kornia.color import rgb_to_grayscale  # on use: the bicubic path never imports Kornia

    return rgb_to_grayscale(x) if x.shape[1] == 3 else x.mean(dim=1, keepdim=True)


def gaussian_noise(x: Tensor, sigma: Tensor, gray: Tensor, generator: torch.Generator) -> Tensor:
    """``x + N(0, sigma^2)``; the grey samples get one field repeated over their channels."""
    b, _, h, w = x.shape
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if bool(gray.any()):
        grey = torch.randn((b, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        noise = torch.where(_col(gray, x).bool(), grey.expand_as(x), noise)
    return x + noise * _col(sigma, x)


def _distinct_levels(x8: Tensor) -> Tensor:
    """Number of distinct 8-bit levels per sample, without a host sync (a 256-bin histogram)."""
    flat = x8.flatten(1).long()
    seen = torch.zeros(flat.shape[0], 256, device=x8.device, dtype=torch.bool)
    seen.scatter_(1, flat, True)
    return seen.sum(dim=1)


def _shot(x: Tensor, generator: torch.Generator) -> Tensor:
    """BasicSR's Poisson noise field: counts scaled by 2^ceil(log2(#levels)) of the rounded image."""
    img = torch.clamp((x * 255.0).round(), 0, 255) / 255.0
    levels = _distinct_levels(img * 255.0)
    vals = torch.exp2(torch.ceil(torch.log2(levels.to(x.dtype)))).view(-1, 1, 1, 1)
    return torch.poisson(img * vals, generator=generator) / vals - img


def poisson_noise(x: Tensor, scale: Tensor, gray: Tensor, generator: torch.Generator) -> Tensor:
    """Real-ESRGAN's Poisson (shot) noise times ``scale``; grey samples use the luma's noise."""
    noise = _shot(x, generator)
    if bool(gray.any()):
        noise = torch.where(_col(gray, x).bool(), _shot(_gray(x), generator).expand_as(x), noise)
    return x + noise * _col(scale, x)


def rician_noise(x: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
    """Magnitude of complex Gaussian noise, as in MR magnitude images: ``|x + n1 + i n2|``."""
    s = _col(sigma, x)
    real = x + s * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    imag = s * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.sqrt(real**2 + imag**2)


def sensor_noise(x: Tensor, read: Tensor, shot: Tensor, generator: torch.Generator) -> Tensor:
    """Poisson-Gaussian sensor noise, Gaussian approximation: ``sigma(x)^2 = read^2 + shot^2 x``
    (``shot`` is the shot-noise sigma at full signal), independent per channel."""
    var = _col(read, x) ** 2 + _col(shot, x) ** 2 * x.clamp(0, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * var.sqrt()
