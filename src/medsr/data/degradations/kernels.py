"""Blur kernels built batched on the device: one ``(K, K)`` kernel per sample, summing to 1.

Real-ESRGAN's families (Wang et al., ICCVW 2021; BasicSR ``degradations.py``): isotropic and
anisotropic Gaussian, generalised Gaussian ``exp(-0.5 q^beta)``, plateau ``1 / (1 + q^beta)``
with ``q = x^T Sigma^-1 x`` and ``Sigma = R(theta) diag(sx^2, sy^2) R(theta)^T``, and the circular
low-pass (2-D sinc) filter ``w J1(w r) / (2 pi r)``. A sample's own kernel size ``k <= K`` is a
centred window of the ``K x K`` tensor (zero outside), as Real-ESRGAN pads its kernels to 21.
Camera and scanner point-spread functions: defocus disk and motion line. Kernels are applied
with :func:`kornia.filters.filter2d` (one kernel per sample, shared by its channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from medsr.data.degradations.base import (
    bernoulli,
    categorical,
    odd_sizes,
    two_sided_beta,
    uniform,
)
from medsr.data.degradations.config import (
    check_choices,
    check_odd_range,
    check_prob,
    check_probs,
    check_range,
)
from medsr.errors import ConfigError

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
SINC = -1  # kind code of a sinc kernel


@dataclass(frozen=True)
class BlurSpec:
    """Real-ESRGAN's random mixed kernel (``blur_kernel_size``, ``kernel_list``, ... settings).

    Ranges are ``[min, max]`` of uniform draws; sizes are odd, drawn uniformly from the range.
    ``betag``/``betap`` draw U(min, 1) or U(1, max) with probability 1/2 each (BasicSR).
    Sinc kernels smaller than ``sinc_large_from`` draw their cut-off from ``sinc_cutoff_small``,
    larger ones from ``sinc_cutoff_large`` (radians per pixel; pi = Nyquist).
    """

    kernel_size: tuple[int, int]
    kernel_types: tuple[str, ...]
    kernel_probs: tuple[float, ...]
    sigma: tuple[float, float]
    rotation: tuple[float, float]
    betag: tuple[float, float]
    betap: tuple[float, float]
    sinc_prob: float
    sinc_cutoff_small: tuple[float, float]
    sinc_cutoff_large: tuple[float, float]
    sinc_large_from: int

    def validate(self, key: str) -> None:
        check_odd_range(f"{key}.kernel_size", self.kernel_size, 1, 63)
        check_choices(f"{key}.kernel_types", self.kernel_types, KERNEL_TYPES)
        check_probs(f"{key}.kernel_probs", self.kernel_probs, len(self.kernel_types))
        check_range(f"{key}.sigma", self.sigma, 1e-3, 100.0)
        check_range(f"{key}.rotation", self.rotation, -2 * math.pi, 2 * math.pi)
        check_range(f"{key}.betag", self.betag, 1e-2, 100.0)
        check_range(f"{key}.betap", self.betap, 1e-2, 100.0)
        for name in ("betag", "betap"):
            lo, hi = getattr(self, name)
            if not lo <= 1.0 <= hi:
                raise ConfigError(
                    f"{key}.{name}={[lo, hi]}: shapes are drawn from [min, 1] or [1, max], "
                    "so min <= 1 <= max is required"
                )
        check_prob(f"{key}.sinc_prob", self.sinc_prob)
        check_range(f"{key}.sinc_cutoff_small", self.sinc_cutoff_small, 1e-3, math.pi)
        check_range(f"{key}.sinc_cutoff_large", self.sinc_cutoff_large, 1e-3, math.pi)
        if not isinstance(self.sinc_large_from, int) or isinstance(self.sinc_large_from, bool):
            raise ConfigError(f"{key}.sinc_large_from={self.sinc_large_from!r} must be an integer")


@dataclass
class KernelParams:
    """Per-sample kernel parameters (CPU tensors of length B); ``kind`` indexes KERNEL_TYPES or is SINC."""

    kind: Tensor
    size: Tensor
    sigma_x: Tensor
    sigma_y: Tensor
    theta: Tensor
    beta: Tensor
    cutoff: Tensor


def draw_kernels(spec: BlurSpec, n: int, generator: torch.Generator) -> KernelParams:
    """Draw ``n`` kernels' parameters; every parameter is drawn for every sample (aligned streams)."""
    size = odd_sizes(generator, n, spec.kernel_size)
    sinc = bernoulli(generator, n, spec.sinc_prob)
    choice = categorical(generator, n, spec.kernel_probs)
    kind = torch.tensor([KERNEL_TYPES.index(t) for t in spec.kernel_types])[choice]
    sigma_x = uniform(generator, n, spec.sigma)
    sigma_y = uniform(generator, n, spec.sigma)
    theta = uniform(generator, n, spec.rotation)
    betag = two_sided_beta(generator, n, spec.betag)
    betap = two_sided_beta(generator, n, spec.betap)
    cut_small = uniform(generator, n, spec.sinc_cutoff_small)
    cut_large = uniform(generator, n, spec.sinc_cutoff_large)
    iso = kind % 2 == 0  # iso, generalized_iso, plateau_iso
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    beta = torch.where(kind >= 4, betap, torch.where(kind >= 2, betag, torch.ones_like(betag)))
    cutoff = torch.where(size < spec.sinc_large_from, cut_small, cut_large)
    kind = torch.where(sinc, torch.full_like(kind, SINC), kind)
    return KernelParams(kind, size, sigma_x, sigma_y, theta, beta, cutoff)


def grid(size: int, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """Pixel offsets from the centre of a ``size x size`` kernel: ``(x, y)``, x along columns."""
    ax = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def _col(t: Tensor, device, dtype) -> Tensor:
    return t.to(device=device, dtype=dtype).view(-1, 1, 1)


def _window_normalise(k: Tensor, sizes: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Zero outside each sample's centred ``size x size`` window, then scale to sum 1."""
    r = _col(sizes, k.device, k.dtype).sub(1).div(2)
    k = k * ((x.abs() <= r) & (y.abs() <= r))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def mixed_kernels(p: KernelParams, size: int, device=None, dtype=torch.float32) -> Tensor:
    """``(B, size, size)`` kernels of the drawn parameters (``size`` >= every sample's own size)."""
    x, y = grid(size, device, dtype)
    sx, sy = _col(p.sigma_x, device, dtype), _col(p.sigma_y, device, dtype)
    cos, sin = _col(p.theta.cos(), device, dtype), _col(p.theta.sin(), device, dtype)
    # Sigma^-1 = R diag(1/sx^2, 1/sy^2) R^T; q = x^T Sigma^-1 x.
    a = cos**2 / sx**2 + sin**2 / sy**2
    b = cos * sin * (1 / sx**2 - 1 / sy**2)
    c = sin**2 / sx**2 + cos**2 / sy**2
    q_beta = (a * x**2 + 2 * b * x * y + c * y**2).pow(_col(p.beta, device, dtype))
    plateau = _col(p.kind >= 4, device, torch.bool)
    k = torch.where(plateau, 1 / (1 + q_beta), torch.exp(-0.5 * q_beta))
    sinc = _col(p.kind == SINC, device, torch.bool)
    if bool((p.kind == SINC).any()):
        k = torch.where(sinc, _sinc(_col(p.cutoff, device, dtype), x, y), k)
    return _window_normalise(k, p.size, x, y)


def _sinc(cutoff: Tensor, x: Tensor, y: Tensor) -> Tensor:
    r = torch.sqrt(x**2 + y**2)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    return torch.where(r == 0, cutoff**2 / (4 * math.pi), k)  # the limit at r = 0


def sinc_kernels(
    cutoff: Tensor, sizes: Tensor, size: int, device=None, dtype=torch.float32
) -> Tensor:
    """Circular low-pass kernels with cut-off ``cutoff`` (radians per pixel), one per sample."""
    x, y = grid(size, device, dtype)
    return _window_normalise(_sinc(_col(cutoff, device, dtype), x, y), sizes, x, y)


def disk_kernels(radius: Tensor, size: int, device=None, dtype=torch.float32) -> Tensor:
    """Defocus point-spread functions: uniform disks of ``radius`` pixels with a 1-pixel soft edge
    (radius < 0.5 is the identity)."""
    x, y = grid(size, device, dtype)
    r = torch.sqrt(x**2 + y**2)
    k = (_col(radius, device, dtype) + 0.5 - r).clamp(0, 1)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def line_kernels(
    length: Tensor, angle: Tensor, size: int, device=None, dtype=torch.float32
) -> Tensor:
    """Linear motion point-spread functions: a segment of ``length`` pixels at ``angle`` radians
    (counter-clockwise from the x axis, as displayed), centred, splatted bilinearly from points
    at most half a pixel apart, so fractional lengths and any angle are resolved (0 is the
    identity)."""
    x, y = grid(size, device, dtype)
    steps = 2 * size + 1  # midpoints of equal parts: the variance of a uniform segment
    t = (torch.arange(steps, device=device, dtype=dtype) + 0.5) / steps - 0.5
    t = t.view(1, -1, 1, 1)
    half = _col(length, device, dtype).unsqueeze(1) * t  # (B, steps, 1, 1) positions
    ang = _col(angle, device, dtype).unsqueeze(1)
    px, py = half * ang.cos(), -half * ang.sin()  # rows grow downwards
    w = (1 - (x - px).abs()).clamp(min=0) * (1 - (y - py).abs()).clamp(min=0)
    k = w.sum(dim=1)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Per-sample blur with :func:`kornia.filters.filter2d`, reflect borders (replicate when the
    image is not larger than the kernel's radius, as after a strong downscale)."""
    from kornia.filters import filter2d  # on use: the bicubic path never pays Kornia's import

    radius = kernels.shape[-1] // 2
    border = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    return filter2d(x, kernels.to(x.dtype), border_type=border)


def reflect_band(taps: Tensor, n: int) -> Tensor:
    """``(B, n, n)`` matrices applying 1-D kernels ``taps`` ``(B, K)`` (odd K, centred) along an
    axis of length ``n`` with reflect borders: ``out = M @ x`` filters the rows of ``x``."""
    b, k = taps.shape
    idx = (
        torch.arange(n, device=taps.device)[:, None] + torch.arange(k, device=taps.device) - k // 2
    )
    if n == 1:
        idx = torch.zeros_like(idx)
    else:  # mirror about the edge pixels (no repeat), any number of times
        idx = idx.remainder(2 * (n - 1))
        idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    mat = torch.zeros(b, n, n, device=taps.device, dtype=taps.dtype)
    return mat.scatter_add_(2, idx.expand(b, n, k), taps[:, None, :].expand(b, n, k))


def separable_blur(x: Tensor, taps_y: Tensor, taps_x: Tensor) -> Tensor:
    """Per-sample separable filter as two banded matrix products (reflect borders).

    On CPU this is ~8x faster than Kornia's ``gaussian_blur2d`` / ``filter2d_separable`` for
    wide kernels (51 taps on 16x3x256x256: 64 ms vs 550 ms, benchmarks/degradation_throughput.py);
    the output equals theirs within float rounding.
    """
    h, w = x.shape[-2:]
    my = reflect_band(taps_y.to(x.dtype), h)[:, None]
    mx = reflect_band(taps_x.to(x.dtype), w)[:, None]
    return my @ x @ mx.transpose(-1, -2)


def gaussian_blur(x: Tensor, sigma_yx: Tensor, size: int | None = None) -> Tensor:
    """Gaussian blur with per-sample ``(sigma_y, sigma_x)`` ``(B, 2)`` in pixels; kernels from
    :func:`kornia.filters.get_gaussian_kernel1d`, ``size`` taps (default: 3 sigma each side)."""
    from kornia.filters import get_gaussian_kernel1d

    if size is None:
        size = 2 * math.ceil(3 * float(sigma_yx.max())) + 1
    sigma = sigma_yx.to(device=x.device, dtype=x.dtype)
    taps_y = get_gaussian_kernel1d(size, sigma[:, :1])
    taps_x = get_gaussian_kernel1d(size, sigma[:, 1:])
    return separable_blur(x, taps_y, taps_x)
