"""Checks that need no ground truth: LR consistency, back-projection onto it, TTA spread.

A clinic never has the HR image, so PSNR against one says nothing about a new output. Two
properties can still be measured on every output:

- **LR consistency** (NTIRE's LR-PSNR): the output, degraded the way the input was made
  (MATLAB bicubic ``imresize(SR, 1/s)``), must give back the input. :func:`lr_psnr` is the PSNR
  on Y (grey: its own channel) between ``quantize(imresize(SR, 1/s))`` at the source bit depth
  and the LR input, peak = the source's full scale (255 or 65535), no border crop.
  :func:`lr_residual` is the per-LR-pixel ``|imresize(SR, 1/s) - LR|`` (unrounded) in levels
  of the source, the largest over the colour channels.
- **Back-projection** (:func:`back_project`, Irani and Peleg 1991): ``x <- x + imresize(LR -
  imresize(x, 1/s), s)`` until the LR residual stops falling, which enforces the first
  property; :func:`projecting` applies it window by window in tiled inference.
- **Uncertainty** (:func:`uncertainty_map`): the spread of the x8 self-ensemble outputs
  (``medsr.ops.ensemble.self_ensemble_spread``), in levels.

Neither proves an output right: an output can match the LR input exactly and still hold
invented detail finer than the LR pixel grid, which the check cannot see (a projected GAN
output passes it by construction); a low spread says the network agrees with itself under
flips and rotations, not that it is correct. Computed in float64: float32 would move values
across 16-bit rounding boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from medsr.errors import ConfigError
from medsr.metrics import psnr_y
from medsr.ops import imresize, quantize
from medsr.ops.quantize import levels

__all__ = [
    "BackProjection",
    "ProjectionResult",
    "back_project",
    "downscale_rows",
    "finish_window",
    "full_scale",
    "lr_psnr",
    "lr_psnr_of",
    "lr_residual",
    "lr_residual_of",
    "project",
    "projected_radius",
    "projecting",
    "residual_summary",
    "uncertainty_map",
]

BITS = (8, 16)
# LR pixels one back-projection step widens the receptive field by on each side: the
# antialiased x1/s kernel reads 2 LR pixels each side, the xs kernel 2 more.
PROJECTION_REACH = 4
# LR rows of context each side of a block in downscale_rows (the x1/s kernel reads 2).
_ROW_MARGIN = 3


def full_scale(bits: int) -> float:
    """Largest level of a ``bits``-bit image (255 or 65535): the PSNR peak and the level unit."""
    if bits not in BITS:
        raise ConfigError(f"bit depth {bits!r} is not supported; images are 8 or 16 bit")
    return levels(bits)


def _check_pair(sr: Tensor, lr: Tensor, scale: int) -> None:
    if sr.ndim != 4 or lr.ndim != 4 or sr.shape[:2] != lr.shape[:2]:
        raise ValueError(
            f"expected SR (B, C, sH, sW) and LR (B, C, H, W), got {tuple(sr.shape)} and {tuple(lr.shape)}"
        )
    if sr.shape[-2:] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        raise ValueError(
            f"SR {tuple(sr.shape[-2:])} is not x{scale} of LR {tuple(lr.shape[-2:])}; "
            "compare each output with the input it was made from, at its scale"
        )


def lr_psnr_of(down: Tensor, lr: Tensor, bits: int = 8) -> Tensor:
    """LR-PSNR (dB) from an already downscaled output ``down = imresize(SR, 1/s)``; (B,) float64.

    Both sides are compared as ``bits``-bit levels (the LR input is an image of that depth:
    rounding it only removes float32 representation noise, so equal images give ``inf``).
    """
    full_scale(bits)
    return psnr_y(quantize(down.double(), bits), quantize(lr.double(), bits), crop_border=0)


def lr_psnr(sr: Tensor, lr: Tensor, scale: int, bits: int = 8) -> Tensor:
    """PSNR on Y between ``quantize(imresize(SR, 1/s))`` and the LR input; ``inf`` when equal.

    Args:
        sr: (B, C, sH, sW) output in [0, 1], C in {1, 3} (as written or scored: quantised).
        lr: (B, C, H, W) input in [0, 1] (``bits``-bit levels).
        scale: the upscaling factor ``s``.
        bits: the source bit depth (8 or 16): rounding of the downscaled output and PSNR peak.

    Returns:
        float64 tensor (B,).
    """
    _check_pair(sr, lr, scale)
    return lr_psnr_of(imresize(sr.double(), 1.0 / scale), lr, bits)


def lr_residual_of(down: Tensor, lr: Tensor, bits: int = 8) -> Tensor:
    """``|down - LR|`` in levels, the largest over channels: (B, 1, H, W) float32."""
    diff = (down.double() - lr.double()).abs_().amax(dim=1, keepdim=True)
    return diff.mul_(full_scale(bits)).float()


def lr_residual(sr: Tensor, lr: Tensor, scale: int, bits: int = 8) -> Tensor:
    """Per-LR-pixel ``|imresize(SR, 1/s) - LR|`` in levels of the source, unrounded.

    Args:
        sr: (B, C, sH, sW) output in [0, 1].
        lr: (B, C, H, W) input in [0, 1].
        scale: the upscaling factor.
        bits: the source bit depth (8 or 16): 1 level = 1 / (2**bits - 1).

    Returns:
        (B, 1, H, W) float32; colour images: the largest residual over R, G, B.
    """
    _check_pair(sr, lr, scale)
    return lr_residual_of(imresize(sr.double(), 1.0 / scale), lr, bits)


def residual_summary(residual: Tensor) -> tuple[float, float]:
    """(mean, 99th percentile) of a residual or uncertainty map of one image, in its units."""
    values = residual.detach().float().cpu().numpy().ravel()
    return float(values.mean()), float(np.percentile(values, 99))


def downscale_rows(sr: Tensor, scale: int, max_value: float = 1.0, rows: int = 128) -> Tensor:
    """``imresize(SR / max_value, 1/s)`` of a host image block of rows by block of rows.

    For outputs too large for one float copy (tiled prediction): only ``rows`` LR rows (plus
    a margin the kernel reads) are converted to float at a time. Equals the whole-image
    result up to float rounding. Float64, as :func:`lr_psnr`: float32 would move values
    across 16-bit rounding boundaries.

    Args:
        sr: (1, C, sH, sW) tensor, any dtype (uint8/uint16 levels or floats).
        scale: the downscaling factor.
        max_value: level that maps to 1 (255, 65535, or 1 for float input).
        rows: LR rows per block.

    Returns:
        (1, C, H, W) float64 in [0, 1] (unclamped).
    """
    h = sr.shape[-2] // scale
    blocks = []
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        lo, hi = max(0, top - _ROW_MARGIN), min(h, bottom + _ROW_MARGIN)
        block = sr[..., lo * scale : hi * scale, :].double() / max_value
        blocks.append(imresize(block, 1.0 / scale)[..., top - lo : bottom - lo, :])
    return torch.cat(blocks, dim=-2)


@dataclass(frozen=True)
class BackProjection:
    """Settings of :func:`back_project`.

    Args:
        tolerance: stop once one step lowers the RMS LR residual by less than this many
            levels of the source (or raises it).
        max_iterations: cap on the number of steps.
    """

    tolerance: float = 1e-3
    max_iterations: int = 30

    def __post_init__(self) -> None:
        if not (
            isinstance(self.tolerance, int | float)
            and math.isfinite(self.tolerance)
            and self.tolerance >= 0
        ):
            raise ConfigError(
                f"projection tolerance={self.tolerance!r} must be a number >= 0 (levels)"
            )
        if (
            isinstance(self.max_iterations, bool)
            or not isinstance(self.max_iterations, int)
            or self.max_iterations < 1
        ):
            raise ConfigError(
                f"projection max_iterations={self.max_iterations!r} must be an int >= 1"
            )


@dataclass
class ProjectionResult:
    """The projected output (float, unclamped) and how the LR residual fell."""

    image: Tensor
    rms: list[float] = field(
        default_factory=list
    )  # RMS LR residual in levels, before each step and after the last

    @property
    def iterations(self) -> int:
        return len(self.rms) - 1


@torch.no_grad()
def back_project(
    sr: Tensor, lr: Tensor, scale: int, settings: BackProjection | None = None, bits: int = 8
) -> ProjectionResult:
    """Iterative back-projection ``x <- x + imresize(LR - imresize(x, 1/s), s)`` on ``sr``'s device.

    Runs until the RMS LR residual stops falling by ``settings.tolerance`` levels, or for
    ``settings.max_iterations`` steps. Float throughout; round the result with
    :func:`project` (or at the output boundary).

    Args:
        sr: (B, C, sH, sW) network output in [0, 1] (unclamped float is best).
        lr: (B, C, H, W) the input it was made from, in [0, 1].
        scale: the upscaling factor.
        settings: tolerance and iteration cap.
        bits: source bit depth; the unit of the tolerance and of ``rms`` (levels).
    """
    settings = settings or BackProjection()
    _check_pair(sr, lr, scale)
    levels = full_scale(bits)
    x, lr = sr.float().clone(), lr.to(sr.device, torch.float32)
    residual = lr - imresize(x, 1.0 / scale)
    rms = [float(residual.square().mean().sqrt()) * levels]
    for _ in range(settings.max_iterations):
        x.add_(imresize(residual, float(scale)))
        residual = lr - imresize(x, 1.0 / scale)
        rms.append(float(residual.square().mean().sqrt()) * levels)
        if rms[-2] - rms[-1] < settings.tolerance:
            break
    return ProjectionResult(x, rms)


def project(
    sr: Tensor, lr: Tensor, scale: int, settings: BackProjection | None = None, bits: int = 8
) -> Tensor:
    """:func:`back_project`, then clamped and rounded to the source's ``bits``-bit levels."""
    return quantize(back_project(sr, lr, scale, settings, bits).image, bits)


def projecting(
    fn: Callable[[Tensor], Tensor],
    scale: int,
    settings: BackProjection | None = None,
    *,
    max_value: float = 1.0,
    bits: int = 8,
) -> Callable[[Tensor], Tensor]:
    """``fn`` followed by :func:`back_project` onto its own input window, for tiled inference.

    Each window is projected onto its own LR pixels; ``medsr.ops.tiled_forward`` then
    stitches the windows with its usual overlap rules, given :func:`projected_radius`.

    Args:
        fn: LR window (levels up to ``max_value``, or floats) -> x``scale`` float output.
        scale: its factor.
        settings: projection settings.
        max_value: level of the window that maps to 1.
        bits: source bit depth (the unit of the tolerance).
    """

    def run(window: Tensor) -> Tensor:
        lr = window.float() / max_value
        return back_project(fn(window).float(), lr, scale, settings, bits).image

    return run


def projected_radius(radius: float, settings: BackProjection | None) -> float:
    """Receptive radius (LR pixels) of a network followed by back-projection (``settings``;
    None: no projection): each step adds :data:`PROJECTION_REACH`, so tiles stitch by the
    exact cut only if the overlap covers it."""
    return radius if settings is None else radius + PROJECTION_REACH * settings.max_iterations


def finish_window(
    out: Tensor,
    lr: Tensor,
    scale: int,
    projection: BackProjection | None,
    bits: int,
    alpha: Tensor | None = None,
    std: Tensor | None = None,
) -> Tensor:
    """One window's output for tiled inference: ``out`` (projected onto ``lr`` when asked),
    then the upscaled ``alpha`` channel and the :func:`uncertainty_map` of ``std``, if any."""
    parts = [out.float()]
    if projection is not None:
        parts[0] = back_project(parts[0], lr, scale, projection, bits).image
    if alpha is not None:
        parts.append(alpha.float())
    if std is not None:
        parts.append(uncertainty_map(std, bits))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def uncertainty_map(std: Tensor, bits: int = 8) -> Tensor:
    """Per-pixel x8 self-ensemble spread in levels: (B, C, H, W) std -> (B, 1, H, W).

    Colour: the root mean square over channels (the pooled standard deviation).
    """
    return std.float().square().mean(dim=1, keepdim=True).sqrt_().mul_(full_scale(bits))
