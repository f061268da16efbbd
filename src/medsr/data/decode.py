"""Decoding a training image for the patch sampler: the array workers crop from, and its FOV mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsr.data.convert import as_uint8, to_rgb
from medsr.data.fov import fov_mask, load_mask
from medsr.data.image_io import UnreadableImageError, image_info, read_image
from medsr.data.medical_sources import SliceRecord, read_slice
from medsr.data.sources import ImageRecord
from medsr.errors import DataError


@dataclass(frozen=True)
class FovOptions:
    """Field-of-view handling: patches with less than ``min_fraction`` inside are redrawn."""

    enabled: bool = False
    min_fraction: float = 0.5
    threshold: float | None = None
    max_tries: int = 50


COMPUTED_MASKS = "computed"  # data.mask_dir=computed: FOV masks from the images themselves


def mask_setting(mask_dir: str | None) -> tuple[bool, Path | None]:
    """``data.mask_dir`` as (compute the masks from the images, mask folder)."""
    if str(mask_dir) == COMPUTED_MASKS:
        return True, None
    return False, Path(mask_dir).expanduser() if mask_dir else None


SKIP_BAD = "Or set data.skip_bad=true to skip such files with a warning."


def skippable(err: DataError) -> DataError:
    """``err`` with the ``data.skip_bad`` advice: for the DataModules' reads, where it applies
    (``medsr.predict`` reports and skips a bad file itself)."""
    return type(err)(f"{err} {SKIP_BAD}")


def too_small(path: object, shape: tuple[int, int], patch_size: int) -> DataError:
    return DataError(
        f"image {path} is {shape[1]}x{shape[0]}, smaller than the {patch_size}x{patch_size} HR patch; "
        "lower data.patch_size, remove the image, or set data.skip_bad=true to skip such images."
    )


def record_size(record: ImageRecord) -> tuple[int, int]:
    """``(height, width)`` of a record from its header alone (a medical slice: listed with it)."""
    if isinstance(record, SliceRecord):
        return record.size
    return image_info(record.path)[:2]


def read_record(record: ImageRecord) -> np.ndarray:
    """A record's pixels: a medical slice's stored values, else the decoded image file."""
    return read_slice(record) if isinstance(record, SliceRecord) else read_image(record.path)


def load_training_image(
    record: ImageRecord, fov: FovOptions
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode one training image as ``(H, W, 3)`` uint8 (gray replicated, alpha dropped, 16 -> 8 bit)
    and its FOV mask (``None`` when FOV handling is off). Medical slices keep their channels
    and stored values (uint16/int16: no 8-bit rounding)."""
    if isinstance(record, SliceRecord):
        return np.ascontiguousarray(read_slice(record)), None
    try:
        image = to_rgb(as_uint8(read_image(record.path)))
    except UnreadableImageError as err:
        raise skippable(err) from None
    mask = None
    if fov.enabled:
        if record.mask_path is not None:
            mask = load_mask(record.mask_path, image.shape[:2])
        else:
            mask = fov_mask(image, fov.threshold)
    return np.ascontiguousarray(image), mask


NO_FOV = FovOptions()
