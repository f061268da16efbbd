"""16-bit colour PNG, which Pillow reads and writes only as 8 bits.

Pillow's unfilter is right but its unpacker keeps the high byte of each 16-bit RGB(A) sample, and
it cannot write such files at all. Reading decodes twice with Pillow's own C decoder (high bytes,
then low bytes); writing emits the chunks directly (big-endian samples, the 'Up' row filter).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bit_depth(path: Path) -> int:
    # IHDR follows the 8-byte signature and an 8-byte chunk header; the bit depth is byte 24.
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 else 8


def read_png16_color(path: Path) -> np.ndarray:
    """(H, W, 3|4) uint16 array of a 16-bit RGB/RGBA PNG.

    Decoding once with the big-endian unpacker (high bytes) and once with the little-endian one
    (which, applied to big-endian samples, picks the low bytes) recovers all 16 bits.
    """
    halves = []
    for suffix in (";16B", ";16L"):
        with Image.open(path) as im:
            im.tile = [im.tile[0]._replace(args=im.mode + suffix)]
            halves.append(np.asarray(im, dtype=np.uint16))
    return (halves[0] << 8) | halves[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_png16_color(path: Path, a: np.ndarray) -> None:
    """Write an (H, W, 3|4) uint16 array as a 16-bit RGB/RGBA PNG."""
    h, w, c = a.shape
    rows = np.frombuffer(a.astype(">u2").tobytes(), np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the filter requires
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
    path.write_bytes(png + _chunk(b"IEND", b""))
