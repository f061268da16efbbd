"""Heat maps of per-pixel numbers (LR residual, TTA spread) with a scale bar in their unit.

Pillow only. Maps are colour-mapped from 0 to ``vmax`` with a dark-to-bright ramp (black,
purple, red, orange, pale yellow: ordered in lightness, so it reads in grey print too); values
above ``vmax`` saturate and the bar says so. LR-grid maps are enlarged to the output size
with nearest neighbour, so one LR pixel stays one visible block.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from medsr.evaluation.figures import load_font

__all__ = ["colour_map", "heat_map", "heat_map_tensor", "nice_vmax", "overlay", "scale_bar"]

# (position, RGB) anchors of the ramp, interpolated linearly into a 256-entry table.
_ANCHORS = [
    (0.0, (0, 0, 4)),
    (0.25, (87, 16, 110)),
    (0.5, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.0, (252, 255, 164)),
]
_POS = np.array([p for p, _ in _ANCHORS])
_LUT = (
    np.stack(
        [np.interp(np.linspace(0, 1, 256), _POS, [c[i] for _, c in _ANCHORS]) for i in range(3)],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)
OVERLAY_OPACITY = 0.75  # opacity of the colour at vmax; 0 shows the image alone


def _as_2d(values: Tensor | np.ndarray) -> np.ndarray:
    """(H, W), (1, H, W) or (1, 1, H, W) -> float32 (H, W) array."""
    a = (
        values.detach().float().cpu().numpy()
        if isinstance(values, Tensor)
        else np.asarray(values, np.float32)
    )
    a = a.reshape(a.shape[-2:]) if a.ndim > 2 and math.prod(a.shape[:-2]) == 1 else a
    if a.ndim != 2:
        raise ValueError(f"expected one map (H, W), got shape {values.shape}")
    return a


def nice_vmax(values: Tensor | np.ndarray, floor: float = 1.0) -> float:
    """The 99th percentile rounded up to 1, 2, 2.5 or 5 x 10^k, at least ``floor``.

    Outliers saturate rather than squash the rest of the map into the dark end; ``floor``
    (1 level: one quantisation step) keeps a near-zero map from showing noise as structure.
    """
    p = max(float(np.percentile(_as_2d(values), 99)), floor)
    exp = math.floor(math.log10(p))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10**exp >= p * (1 - 1e-9):
            return float(step * 10**exp)
    return p  # unreachable


def colour_map(values: Tensor | np.ndarray, vmax: float) -> np.ndarray:
    """Map values in [0, vmax] to RGB: (H, W) -> (H, W, 3) uint8 (values above vmax saturate)."""
    if not vmax > 0:
        raise ValueError(f"vmax must be > 0, got {vmax}")
    t = np.clip(_as_2d(values) / vmax, 0, 1)
    return _LUT[np.round(t * 255).astype(np.intp)]


def _fmt(v: float) -> str:
    return f"{v:g}" if v >= 0.01 else f"{v:.1e}"


def scale_bar(
    height: int, vmax: float, unit: str = "levels", saturated: bool = True
) -> Image.Image:
    """A vertical colour bar ``height`` pixels high: 0 at the bottom, ``vmax`` at the top, labelled."""
    font_size = max(11, min(32, height // 24))
    font = load_font(font_size)
    pad = font_size // 2
    bar_w = max(10, font_size)
    labels = [(1.0, (">= " if saturated else "") + _fmt(vmax)), (0.5, _fmt(vmax / 2)), (0.0, "0")]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(probe.textlength(t, font=font) for _, t in labels + [(0, unit)])
    canvas = Image.new("RGB", (int(bar_w + 3 * pad + text_w), height), "white")
    draw = ImageDraw.Draw(canvas)
    top, bottom = pad + font_size // 2, height - 2 * pad - font_size  # leaves room for the unit
    ramp = _LUT[np.linspace(255, 0, max(2, bottom - top)).round().astype(np.intp)]
    canvas.paste(Image.fromarray(np.repeat(ramp[:, None], bar_w, axis=1)), (pad, top))
    draw.rectangle([pad - 1, top - 1, pad + bar_w, top + ramp.shape[0]], outline="black")
    for frac, text in labels:
        y = bottom - frac * (bottom - top)
        draw.line([pad + bar_w, y, pad + bar_w + pad // 2 + 1, y], fill="black")
        draw.text((bar_w + 2 * pad, y), text, fill="black", font=font, anchor="lm")
    draw.text((pad, height - pad), unit, fill="black", font=font, anchor="ld")
    return canvas


def _enlarge(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    image = Image.fromarray(rgb)
    return (
        image
        if image.size == (size[1], size[0])
        else image.resize((size[1], size[0]), Image.NEAREST)
    )


def _with_bar(image: Image.Image, vmax: float, unit: str, saturated: bool) -> Image.Image:
    bar = scale_bar(image.height, vmax, unit, saturated)
    canvas = Image.new("RGB", (image.width + bar.width, image.height), "white")
    canvas.paste(image, (0, 0))
    canvas.paste(bar, (image.width, 0))
    return canvas


def heat_map_tensor(values: Tensor | np.ndarray, size: tuple[int, int], vmax: float) -> Tensor:
    """The colour-mapped map enlarged to ``size`` (H, W) as a (3, H, W) float tensor, no bar
    (a panel for ``medsr.figures``)."""
    rgb = np.asarray(_enlarge(colour_map(values, vmax), size))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255)


def heat_map(
    values: Tensor | np.ndarray,
    size: tuple[int, int] | None = None,
    vmax: float | None = None,
    unit: str = "levels",
) -> Image.Image:
    """Colour-mapped ``values`` enlarged to ``size`` (H, W) (nearest), with its scale bar on the right.

    Args:
        values: one map (H, W) (or (1, 1, H, W)), e.g. :func:`medsr.evaluation.consistency.lr_residual`.
        size: output size (H, W); None keeps the map's own.
        vmax: value shown brightest; None = :func:`nice_vmax`.
        unit: the bar's unit label.
    """
    a = _as_2d(values)
    vmax = nice_vmax(a) if vmax is None else float(vmax)
    image = _enlarge(colour_map(a, vmax), size or a.shape)
    return _with_bar(image, vmax, unit, saturated=bool(a.max() > vmax))


def overlay(
    image: Tensor,
    values: Tensor | np.ndarray,
    vmax: float | None = None,
    unit: str = "levels",
    opacity: float = OVERLAY_OPACITY,
) -> Image.Image:
    """``values`` over a grey copy of ``image``, more opaque where larger, with its scale bar.

    Args:
        image: (C, H, W) in [0, 1] (the output the map belongs to).
        values: (H, W) map on the same grid (e.g. the TTA spread).
        vmax: value shown brightest and most opaque; None = :func:`nice_vmax`.
        unit: the bar's unit label.
        opacity: opacity of the colour at ``vmax``.
    """
    a = _as_2d(values)
    if a.shape != tuple(image.shape[-2:]):
        raise ValueError(f"map {a.shape} and image {tuple(image.shape[-2:])} differ in size")
    vmax = nice_vmax(a) if vmax is None else float(vmax)
    grey = image.detach().float().cpu().clamp(0, 1).mean(dim=0).numpy()[..., None] * 255
    alpha = np.clip(a / vmax, 0, 1)[..., None] * opacity
    blended = (1 - alpha) * grey + alpha * colour_map(a, vmax)
    return _with_bar(
        Image.fromarray(blended.round().astype(np.uint8)),
        vmax,
        unit,
        saturated=bool(a.max() > vmax),
    )
