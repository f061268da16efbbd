"""Decoding a training image for the patch sampler: the array workers crop from, and its FOV mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsr.data.convert import as_uint8, to_rgb
from medsr.data.fov import fov_mask, load_mask
from medsr.data.image_io import read_image
from medsr.data.sources import ImageRecord
from medsr.errors import DataError


@dataclass(frozen=True)
class FovOptions:
    """Field-of-view handling: patches with less than ``min_fraction`` inside are redrawn."""

    enabled: bool = False
    min_fraction: float = 0.5
    threshold: float | None = None
    max_tries: int = 50


def too_small(path: object, shape: tuple[int, int], patch_size: int) -> DataError:
    return DataError(
        f"image {path} is {shape[1]}x{shape[0]}, smaller than the {patch_size}x{patch_size} HR patch; "
        "lower data.patch_size, remove the image, or set data.skip_bad=true to skip such images."
    )


def load_training_image(
    record: ImageRecord, fov: FovOptions
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode one training image as ``(H, W, 3)`` uint8 (gray replicated, alpha dropped, 16 -> 8 bit)
    and its FOV mask (``None`` when FOV handling is off)."""
    image = to_rgb(as_uint8(read_image(record.path)))
    mask = None
    if fov.enabled:
        if record.mask_path is not None:
            mask = load_mask(record.mask_path, image.shape[:2])
        else:
            mask = fov_mask(image, fov.threshold)
    return np.ascontiguousarray(image), mask


NO_FOV = FovOptions()
