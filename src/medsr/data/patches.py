"""Where training patches are cut, and how: random positions (field-of-view aware) and crops that
carry a margin for the degradation, with the whole image's own symmetric padding at its borders.

A training LR patch must equal the crop of the whole image's LR at the patch position (the LR that
evaluation and the published LR files see). ``imresize`` of a bare HR patch mirrors the patch at
its edges, so its outer LR pixels would differ; cutting the patch with a margin of the kernel's
support (``LR_MARGIN`` LR pixels) and cropping the LR interior after the degradation gives exactly
the whole image's LR, when patches sit on the LR grid (positions multiples of the scale) of the
mod-cropped image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medsr.data.decode import NO_FOV, FovOptions

# MATLAB's bicubic kernel spans 4 LR pixels (2 on each side of an LR pixel's centre) whatever the
# downscaling factor: 2 LR pixels of margin give every interior LR pixel all its HR inputs.
LR_MARGIN = 2


@dataclass(frozen=True)
class PatchGeometry:
    """HR patch side ``size``, placed on the grid of ``scale``, cut with ``margin`` LR pixels.

    ``scale=1, margin=0`` is a plain crop anywhere in the image.
    """

    size: int
    scale: int = 1
    margin: int = 0

    @property
    def pad(self) -> int:
        """The margin in HR pixels."""
        return self.margin * self.scale

    @property
    def shipped(self) -> int:
        """Side of the array a worker ships: the patch and its margin on both sides."""
        return self.size + 2 * self.pad

    def extent(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The part of an image whose LR is the reference: its size mod-cropped to the scale."""
        return shape[0] - shape[0] % self.scale, shape[1] - shape[1] % self.scale


def patch_position(
    mask: np.ndarray | None,
    shape: tuple[int, int],
    patch_size: int,
    rng: np.random.Generator,
    fov: FovOptions,
    step: int = 1,
) -> tuple[int, int]:
    """Top-left corner (multiples of ``step``) of a random ``patch_size`` square inside ``shape``;
    with a mask, one with at least ``fov.min_fraction`` of its pixels inside (redrawn up to
    ``fov.max_tries`` times, then the candidate with the largest fraction is kept).
    ``fov.min_fraction=0`` keeps the first draw: uniform sampling, as the thesis."""
    p = patch_size
    ny, nx = (shape[0] - p) // step + 1, (shape[1] - p) // step + 1
    if mask is None:
        return step * int(rng.integers(ny)), step * int(rng.integers(nx))
    need = math.ceil(fov.min_fraction * p * p)
    best, best_inside = (0, 0), -1
    for _ in range(fov.max_tries):
        y, x = step * int(rng.integers(ny)), step * int(rng.integers(nx))
        inside = int(np.count_nonzero(mask[y : y + p, x : x + p]))
        if inside >= need:
            return y, x
        if inside > best_inside:
            best, best_inside = (y, x), inside
    return best


def symmetric_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices ``start .. stop-1`` folded into ``0 .. n-1`` as MATLAB's symmetric padding does
    (... 1 0 | 0 1 ... n-1 | n-1 n-2 ...)."""
    idx = np.mod(np.arange(start, stop), 2 * n)
    return np.where(idx < n, idx, 2 * n - 1 - idx)


def crop_with_margin(image: np.ndarray, y: int, x: int, geometry: PatchGeometry) -> np.ndarray:
    """The patch at ``(y, x)`` with its margin, from an ``(H, W, C)`` array of any dtype.

    Inside the image a view; where the margin leaves the mod-cropped image, a copy padded with the
    image's symmetric padding, exactly as ``imresize`` of the whole image pads it.
    """
    h, w = geometry.extent(image.shape)
    pad, side = geometry.pad, geometry.shipped
    y0, x0 = y - pad, x - pad
    if y0 >= 0 and x0 >= 0 and y0 + side <= h and x0 + side <= w:
        return image[y0 : y0 + side, x0 : x0 + side]
    # The mirrored rows/columns lie inside the clipped region: take them from it, one axis at a
    # time (a 2-D fancy index costs ~100x more).
    cy0, cx0 = max(y0, 0), max(x0, 0)
    region = image[cy0 : min(y0 + side, h), cx0 : min(x0 + side, w)]
    rows = symmetric_indices(y0, y0 + side, h) - cy0
    cols = symmetric_indices(x0, x0 + side, w) - cx0
    return np.take(np.take(region, rows, axis=0), cols, axis=1)


def draw_positioned(
    image: np.ndarray,
    mask: np.ndarray | None,
    geometry: PatchGeometry,
    count: int,
    rng: np.random.Generator,
    fov: FovOptions = NO_FOV,
) -> list[tuple[np.ndarray, int, int]]:
    """``count`` random patches (with margins, contiguous copies) and their top-left corners."""
    extent = geometry.extent(image.shape)
    out = []
    for _ in range(count):
        y, x = patch_position(mask, extent, geometry.size, rng, fov, geometry.scale)
        out.append((np.ascontiguousarray(crop_with_margin(image, y, x, geometry)), y, x))
    return out


def draw_patches(
    image: np.ndarray,
    mask: np.ndarray | None,
    patch_size: int,
    count: int,
    rng: np.random.Generator,
    fov: FovOptions = NO_FOV,
) -> list[np.ndarray]:
    """``count`` random ``(P, P, C)`` patches of an ``(H, W, C)`` image (see ``patch_position``)."""
    return [
        p for p, _, _ in draw_positioned(image, mask, PatchGeometry(patch_size), count, rng, fov)
    ]
