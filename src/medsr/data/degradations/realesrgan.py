"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021), batched on the device.

Per sample: blur (mixed kernel or sinc) -> random resize (up/down/keep, area/bilinear/bicubic)
-> Gaussian or Poisson noise (colour or grey) -> JPEG; then the same again (blur with a
probability) with the resize relative to the LR size; then the final resize to the LR size with a
sinc filter (with a probability) and a JPEG, in either order. The values (``train_realesrgan_x4plus.yml``)
live in ``conf/degradation/realesrgan.yaml``.

Differences from Real-ESRGAN, all in favour of variety within a batch: every sample draws its
own resize, noise type, second-blur and final-order choices (Real-ESRGAN draws them once per
batch and mixes batches through a 180-pair queue). Samples of different intermediate sizes are
processed one by one between the first and the final resize (``per_sample_resize: false``
shares the resize draws of the batch's first sample and keeps the whole batch together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from medsr.data.degradations.base import (
    SpecDegradation,
    bernoulli,
    categorical,
    device_generator,
    odd_sizes,
    to_levels,
    uniform,
)
from medsr.data.degradations.config import (
    check_choice,
    check_choices,
    check_odd_range,
    check_prob,
    check_probs,
    check_range,
)
from medsr.data.degradations.jpeg import CODECS, jpeg
from medsr.data.degradations.kernels import (
    BlurSpec,
    KernelParams,
    blur,
    draw_kernels,
    mixed_kernels,
    sinc_kernels,
)
from medsr.data.degradations.noise import gaussian_noise, poisson_noise
from medsr.data.degradations.resize import MODES, interpolate, unsharp_mask
from medsr.errors import ConfigError


@dataclass(frozen=True)
class ResizeSpec:
    """``probs``: up, down, keep; up draws U(1, max), down U(min, 1); ``modes`` uniformly."""

    probs: tuple[float, float, float]
    range: tuple[float, float]
    modes: tuple[str, ...]

    def validate(self, key: str) -> None:
        check_probs(f"{key}.probs", self.probs, 3)
        check_range(f"{key}.range", self.range, 0.01, 16.0)
        if not self.range[0] <= 1.0 <= self.range[1]:
            raise ConfigError(
                f"{key}.range={list(self.range)} must hold 1 (down: [min, 1], up: [1, max])"
            )
        check_choices(f"{key}.modes", self.modes, MODES)


@dataclass(frozen=True)
class NoiseSpec:
    """Gaussian with ``gaussian_prob`` (sigma in 8-bit levels), else Poisson times ``poisson_scale``."""

    gaussian_prob: float
    sigma: tuple[float, float]
    poisson_scale: tuple[float, float]
    gray_prob: float

    def validate(self, key: str) -> None:
        check_prob(f"{key}.gaussian_prob", self.gaussian_prob)
        check_range(f"{key}.sigma", self.sigma, 0.0, 255.0)
        check_range(f"{key}.poisson_scale", self.poisson_scale, 0.0, 100.0)
        check_prob(f"{key}.gray_prob", self.gray_prob)


@dataclass(frozen=True)
class StageSpec:
    blur_prob: float
    blur: BlurSpec
    resize: ResizeSpec
    noise: NoiseSpec
    jpeg_quality: tuple[float, float]

    def validate(self, key: str) -> None:
        check_prob(f"{key}.blur_prob", self.blur_prob)
        check_range(f"{key}.jpeg_quality", self.jpeg_quality, 1.0, 100.0)


@dataclass(frozen=True)
class FinalSpec:
    """Final sinc (``sinc_prob``, sizes, cut-off in radians/pixel), resize modes and JPEG; the JPEG
    comes before [resize + sinc] with ``jpeg_first_prob``, after it otherwise."""

    sinc_prob: float
    sinc_kernel_size: tuple[int, int]
    sinc_cutoff: tuple[float, float]
    resize_modes: tuple[str, ...]
    jpeg_quality: tuple[float, float]
    jpeg_first_prob: float

    def validate(self, key: str) -> None:
        check_prob(f"{key}.sinc_prob", self.sinc_prob)
        check_odd_range(f"{key}.sinc_kernel_size", self.sinc_kernel_size, 1, 63)
        check_range(f"{key}.sinc_cutoff", self.sinc_cutoff, 1e-3, math.pi)
        check_choices(f"{key}.resize_modes", self.resize_modes, MODES)
        check_range(f"{key}.jpeg_quality", self.jpeg_quality, 1.0, 100.0)
        check_prob(f"{key}.jpeg_first_prob", self.jpeg_first_prob)


@dataclass(frozen=True)
class SharpenSpec:
    """Unsharp masking of the training target (Real-ESRGAN's ``gt_usm``; threshold in 8-bit levels)."""

    enabled: bool
    weight: float
    radius: int
    threshold: float

    def validate(self, key: str) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"{key}.enabled={self.enabled!r} must be true or false")
        check_range(f"{key}.weight", (self.weight, self.weight), 0.0, 10.0)
        if not isinstance(self.radius, int) or self.radius < 1:
            raise ConfigError(f"{key}.radius={self.radius!r} must be a positive integer")
        check_range(f"{key}.threshold", (self.threshold, self.threshold), 0.0, 255.0)


@dataclass(frozen=True)
class RealESRGANSpec:
    first: StageSpec
    second: StageSpec
    final: FinalSpec
    sharpen_target: SharpenSpec
    per_sample_resize: bool
    jpeg_codec: str

    def validate(self, key: str) -> None:
        if not isinstance(self.per_sample_resize, bool):
            raise ConfigError(
                f"{key}.per_sample_resize={self.per_sample_resize!r} must be true or false"
            )
        check_choice(f"{key}.jpeg_codec", self.jpeg_codec, CODECS)


@dataclass
class _StageDraw:
    kernels: KernelParams
    scale: Tensor
    mode: Tensor
    gaussian: Tensor
    sigma: Tensor
    poisson: Tensor
    gray: Tensor
    quality: Tensor


def _draw_stage(spec: StageSpec, n: int, generator: torch.Generator) -> _StageDraw:
    kernels = draw_kernels(spec.blur, n, generator)
    on = bernoulli(generator, n, spec.blur_prob)
    kernels.size = torch.where(on, kernels.size, torch.ones_like(kernels.size))  # 1 = identity
    updown = categorical(generator, n, spec.resize.probs)
    up = uniform(generator, n, (1.0, spec.resize.range[1]))
    down = uniform(generator, n, (spec.resize.range[0], 1.0))
    scale = torch.where(updown == 0, up, torch.where(updown == 1, down, torch.ones_like(up)))
    mode = categorical(generator, n, (1.0,) * len(spec.resize.modes))
    return _StageDraw(
        kernels=kernels,
        scale=scale,
        mode=mode,
        gaussian=bernoulli(generator, n, spec.noise.gaussian_prob),
        sigma=uniform(generator, n, spec.noise.sigma) / 255.0,
        poisson=uniform(generator, n, spec.noise.poisson_scale),
        gray=bernoulli(generator, n, spec.noise.gray_prob),
        quality=uniform(generator, n, spec.jpeg_quality),
    )


def _noise(x: Tensor, d: _StageDraw, sel: slice, generator: torch.Generator) -> Tensor:
    """Gaussian or Poisson noise per sample of the group ``sel``, clipped to [0, 1]."""
    gauss = d.gaussian[sel]
    if bool(gauss.all()):
        return gaussian_noise(x, d.sigma[sel], d.gray[sel], generator).clamp_(0, 1)
    if not bool(gauss.any()):
        return poisson_noise(x, d.poisson[sel], d.gray[sel], generator).clamp_(0, 1)
    out = torch.empty_like(x)
    g, p = gauss.nonzero()[:, 0], (~gauss).nonzero()[:, 0]
    gd, pd = g.to(x.device), p.to(x.device)
    out[gd] = gaussian_noise(x[gd], d.sigma[sel][g], d.gray[sel][g], generator)
    out[pd] = poisson_noise(x[pd], d.poisson[sel][p], d.gray[sel][p], generator)
    return out.clamp_(0, 1)


class RealESRGANDegradation(SpecDegradation):
    """Real-ESRGAN's degradation; see the module docstring and ``conf/degradation/realesrgan.yaml``."""

    name = "realesrgan"

    spec_type = RealESRGANSpec
    spec: RealESRGANSpec

    def target(self, hr: Tensor) -> Tensor:
        s = self.spec.sharpen_target
        return unsharp_mask(hr, s.weight, s.radius, s.threshold) if s.enabled else hr

    def _degrade(self, hr: Tensor, scale: int, generator: torch.Generator, bits: int) -> Tensor:
        spec, n = self.spec, hr.shape[0]
        h, w = hr.shape[-2:]
        d1 = _draw_stage(spec.first, n, generator)
        d2 = _draw_stage(spec.second, n, generator)
        fin = spec.final
        sinc_on = bernoulli(generator, n, fin.sinc_prob)
        sinc_size = odd_sizes(generator, n, fin.sinc_kernel_size)
        sinc_size = torch.where(sinc_on, sinc_size, torch.ones_like(sinc_size))
        cutoff = uniform(generator, n, fin.sinc_cutoff)
        last_mode = categorical(generator, n, (1.0,) * len(fin.resize_modes))
        quality = uniform(generator, n, fin.jpeg_quality)
        jpeg_first = bernoulli(generator, n, fin.jpeg_first_prob)
        noise_gen = device_generator(hr.device, generator)
        codec = spec.jpeg_codec

        k1 = mixed_kernels(d1.kernels, spec.first.blur.kernel_size[1], hr.device, hr.dtype)
        k2 = mixed_kernels(d2.kernels, spec.second.blur.kernel_size[1], hr.device, hr.dtype)
        x = blur(hr, k1) if bool((d1.kernels.size > 1).any()) else hr
        groups = [slice(i, i + 1) for i in range(n)] if spec.per_sample_resize else [slice(0, n)]
        out = []
        for sel in groups:
            i = sel.start  # the group's resize draws
            y = interpolate(x[sel], spec.first.resize.modes[d1.mode[i]], float(d1.scale[i]))
            y = _noise(y, d1, sel, noise_gen)
            y = jpeg(y, d1.quality[sel], codec)
            if bool((d2.kernels.size[sel] > 1).any()):
                y = blur(y, k2[sel])
            size = [max(1, int(v / scale * float(d2.scale[i]))) for v in (h, w)]
            y = interpolate(y, spec.second.resize.modes[d2.mode[i]], size=size)
            y = _noise(y, d2, sel, noise_gen)
            first = jpeg_first[sel]
            if bool(first.any()):
                idx = first.nonzero()[:, 0].to(y.device)
                y = y.index_copy(0, idx, jpeg(y[idx], quality[sel][first], codec))
            out.append(
                interpolate(y, fin.resize_modes[last_mode[i]], size=(h // scale, w // scale))
            )
        y = torch.cat(out)
        if bool(sinc_on.any()):
            kmax = fin.sinc_kernel_size[1]
            y = blur(y, sinc_kernels(cutoff, sinc_size, kmax, y.device, y.dtype))
        last = ~jpeg_first
        if bool(last.any()):
            idx = last.nonzero()[:, 0].to(y.device)
            y = y.index_copy(0, idx, jpeg(y[idx], quality[last], codec))
        return to_levels(y, bits)
