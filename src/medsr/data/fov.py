"""Field-of-view (FOV) masks of retinal fundus photographs: the bright disc on a dark surround.

The surround is black but not exactly zero (sensor noise, JPEG ringing, a faint halo), and the
retina can be dark near its rim, so a fixed threshold is fragile. ``fov_mask`` estimates the
surround level from the image corners (outside the disc in every fundus camera's framing) and the
retina level from the centre, thresholds the brightest channel between the two, keeps the largest
connected region (dust or burnt-in text outside the disc is dropped) and fills it row- and
column-wise (the FOV is convex: a disc, possibly clipped at the top and bottom), which also fills
dark lesions and vessels touching nothing but retina.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from medsr.data.image_io import IMAGE_EXTENSIONS, read_image

# Fraction of the way from the surround level to the retina level where the threshold sits.
_LEVEL = 0.3
# Below this retina-surround contrast (fraction of full scale) there is no dark surround.
_MIN_CONTRAST = 0.08
_WORK_SIDE = 160  # side of the low-resolution grid used to find the largest region


def fov_mask(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` field-of-view mask of a fundus photograph.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8/uint16 array (C = 1, 3 or 4; alpha ignored).
        threshold: absolute threshold on the brightest channel, as a fraction of full scale
            (e.g. 0.08); ``None`` chooses it from the corner and centre levels of the image.

    Returns:
        True inside the field of view. An image without a dark surround (not a fundus photograph,
        or a crop inside the disc) gives an all-True mask.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] >= 3:
        # Elementwise maximum: numpy's reduction over a length-3 last axis is ~10x slower.
        v = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
    else:
        v = a[..., 0] if a.ndim == 3 else a
    full = 65535.0 if v.dtype == np.uint16 else 255.0
    h, w = v.shape
    if threshold is None:
        c = max(2, min(h, w) // 20)
        corners = np.concatenate(
            [v[:c, :c].ravel(), v[:c, -c:].ravel(), v[-c:, :c].ravel(), v[-c:, -c:].ravel()]
        )
        cy, cx = h // 4, w // 4
        centre = v[cy : h - cy, cx : w - cx]
        surround, retina = float(np.median(corners)), float(np.median(centre))
        if retina - surround < _MIN_CONTRAST * full:
            return np.ones((h, w), dtype=bool)
        t = surround + _LEVEL * (retina - surround)
    else:
        t = threshold * full
    raw = v > t
    region = _largest_region(raw)
    return _fill_convex(raw & region)


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """Full-resolution mask of the neighbourhood of the largest 4-connected region.

    Found on a coarse grid (a cell is set when most of its pixels are), dilated by one cell so
    the full-resolution boundary is decided by the threshold, not by the grid.
    """
    h, w = mask.shape
    step = max(1, int(np.ceil(max(h, w) / _WORK_SIDE)))
    gh, gw = -(-h // step), -(-w // step)
    padded = np.zeros((gh * step, gw * step), dtype=np.float32)
    padded[:h, :w] = mask
    grid = padded.reshape(gh, step, gw, step).mean(axis=(1, 3)) > 0.5
    labels = _label(grid)
    if labels.max() == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = labels == sizes.argmax()
    grown = keep.copy()  # one-cell dilation (8-neighbourhood)
    grown[1:] |= keep[:-1]
    grown[:-1] |= keep[1:]
    g2 = grown.copy()
    g2[:, 1:] |= grown[:, :-1]
    g2[:, :-1] |= grown[:, 1:]
    return np.repeat(np.repeat(g2, step, axis=0), step, axis=1)[:h, :w]


def _label(grid: np.ndarray) -> np.ndarray:
    """4-connected component labels (0 = background) of a small boolean grid, by flood fill."""
    labels = np.zeros(grid.shape, dtype=np.int32)
    gh, gw = grid.shape
    current = 0
    for y0, x0 in zip(*np.nonzero(grid), strict=True):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < gh and 0 <= nx < gw and grid[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = current
                    queue.append((ny, nx))
    return labels


def _fill_rows(mask: np.ndarray) -> np.ndarray:
    any_row = mask.any(axis=1)
    first = mask.argmax(axis=1)
    last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
    cols = np.arange(mask.shape[1])
    return any_row[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])


def _fill_convex(mask: np.ndarray) -> np.ndarray:
    """Fill every row and then every column between its first and last set pixel."""
    return _fill_rows(_fill_rows(mask).T).T


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image (e.g. DRIVE's ``mask/*_mask.png``, 0/255 or a palette) as bool (H, W).

    Args:
        path: the mask file; any pixel above half of full scale (any channel) is inside.
        shape: when given, the image's ``(H, W)``; a mask of another size raises ``DataError``.
    """
    from medsr.errors import DataError

    m = read_image(path)
    full = 65535 if m.dtype == np.uint16 else 255
    mask = (m[..., :3] if m.shape[-1] >= 3 else m[..., :1]).max(axis=-1) > full // 2
    if shape is not None and mask.shape != tuple(shape):
        raise DataError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}; "
            "replace it with a mask of the image's size (data.mask_dir=<folder of such masks>), "
            "or set data.mask_dir=computed to compute the field of view from the images."
        )
    return mask


def find_mask_file(mask_dir: Path, stem: str) -> Path | None:
    """The mask of image ``stem`` in ``mask_dir``: ``<stem>_mask.*`` (DRIVE, HRF) or ``<stem>.*``."""
    for name in (f"{stem}_mask", stem):
        for p in sorted(mask_dir.glob(f"{name}.*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS | {".gif"}:
                return p
    return None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
