"""The header check of a training set before any patch is cut."""

from __future__ import annotations

from medsr.data.decode import skippable, too_small
from medsr.data.image_io import UnreadableImageError, image_info
from medsr.data.rank_zero import info
from medsr.data.sources import ImageRecord
from medsr.errors import DataError, warn_files


def check_training_images(
    records: list[ImageRecord], patch_size: int, skip_bad: bool
) -> list[ImageRecord]:
    """Training records after a header check: unreadable or smaller than the patch -> error
    (or skipped with one warning naming them, under ``skip_bad``); alpha/16-bit noted once."""
    kept, unreadable, small, alpha, deep = [], [], [], [], []
    for r in records:
        try:
            h, w, c, bits = image_info(r.path)
        except UnreadableImageError as err:
            if not skip_bad:
                raise skippable(err) from None
            unreadable.append(r.path)
            continue
        if min(h, w) < patch_size:
            if not skip_bad:
                raise too_small(r.path, (h, w), patch_size)
            small.append(r.path)
            continue
        if c == 4:
            alpha.append(r.path)
        if bits > 8:
            deep.append(r.path)
        kept.append(r)
    warn_files("skipping unreadable training images (data.skip_bad=true)", unreadable)
    warn_files(
        f"skipping training images smaller than the {patch_size}px patch (data.skip_bad=true)",
        small,
    )
    if alpha:
        info(
            "%d training image(s) have an alpha channel; it is dropped (e.g. %s)",
            len(alpha),
            alpha[0],
        )
    if deep:
        info(
            "%d training image(s) are 16-bit; training patches are rounded to 8 bits (e.g. %s)",
            len(deep),
            deep[0],
        )
    if not kept:
        raise DataError("no training image left after skipping unreadable and too small ones.")
    return kept
