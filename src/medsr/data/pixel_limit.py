"""The image-size guard: a file whose header claims more pixels than it can hold is corrupt; a
genuine image above the pixel limit is refused with the setting that raises the limit.

Pillow's own guard (``Image.MAX_IMAGE_PIXELS``) cannot tell the two apart and calls both a
"decompression bomb"; medsr turns it off for its reads and checks here instead.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

from medsr.errors import DataError

ENV = "MEDSR_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 1_000_000_000  # 1 gigapixel: 3 GB as 8-bit RGB, 6 GB as 16-bit
# Deflate cannot compress better than 1032:1 (a 258-byte match per 2 bits), so a PNG whose
# pixel data would need more than 1032x its file size is lying about its size.
_DEFLATE_MAX_RATIO = 1032
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def max_pixels() -> int | None:
    """The pixel limit: ``$MEDSR_MAX_IMAGE_PIXELS`` (0 = none), else 1 gigapixel."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(
            f"{ENV}={text!r} is not a number; give the largest image size in pixels (0 = no limit)"
        ) from None
    return value if value > 0 else None


def png_raw_bytes(path: Path) -> int | None:
    """Bytes of decompressed pixel data a PNG's header announces (None: not a PNG header)."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    samples = _PNG_SAMPLES.get(colour, 1)
    return height * (math.ceil(width * samples * depth / 8) + 1)  # + the filter byte of each row


def impossible_header(path: Path, width: int, height: int, fmt: str | None) -> str | None:
    """Why the header cannot be true (a PNG claiming more pixels than its bytes can hold), or None."""
    if fmt != "PNG":
        return None
    raw = png_raw_bytes(path)
    size = path.stat().st_size
    if raw is None or raw <= size * _DEFLATE_MAX_RATIO:
        return None
    return f"its header claims {width}x{height} pixels, more than its {size} bytes can hold"


def check_limit(path: Path, width: int, height: int) -> None:
    """Refuse an image above the pixel limit, naming the setting that raises it.

    Raises:
        DataError: ``width * height`` is above :func:`max_pixels`.
    """
    pixels = width * height
    limit = max_pixels()
    if limit is not None and pixels > limit:
        raise DataError(
            f"image {path} is {width}x{height} = {pixels:,} pixels, above medsr's limit of "
            f"{limit:,} (a guard against files that expand to far more memory than their size); "
            f"if you trust the file, raise the limit: "
            f"{ENV}={pixels} (0 = no limit)"
        )
