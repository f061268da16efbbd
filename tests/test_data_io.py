"""medsr.data.image_io: every image kind users have, corrupt files, sorted listings, conversions."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from medsr.data.convert import to_float_tensor, to_uint8
from medsr.data.decode import FovOptions, load_training_image
from medsr.data.image_io import (
    UnreadableImageError,
    image_info,
    list_images,
    read_image,
    write_image,
)
from medsr.data.sources import ImageRecord
from medsr.errors import DataError

RNG = np.random.default_rng(0)


def _u16(shape) -> np.ndarray:
    # Values that differ in both bytes, so a reader that keeps one byte fails.
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode_png16(a: np.ndarray) -> bytes:
    """Independent 16-bit RGB(A) PNG encoder using all five row filters (row i uses filter i % 5)."""
    h, w, c = a.shape
    raw = np.frombuffer(a.astype(">u2").tobytes(), np.uint8).reshape(h, w * c * 2).astype(int)
    bpp = 2 * c
    rows = []
    for i in range(h):
        ft, out = i % 5, []
        for x in range(raw.shape[1]):
            left = raw[i, x - bpp] if x >= bpp else 0
            up = raw[i - 1, x] if i else 0
            up_left = raw[i - 1, x - bpp] if i and x >= bpp else 0
            pred = (0, left, up, (left + up) // 2, _paeth(left, up, up_left))[ft]
            out.append((raw[i, x] - pred) % 256)
        rows.append(bytes([ft]) + bytes(out))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _png_chunk(b"IEND", b"")
    )


def _decode_png_up_only(data: bytes) -> np.ndarray:
    """Minimal independent decoder for our writer's output (filter 0 or 2 rows, 16-bit)."""
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos : pos + 4])[0]
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        ihdr = body if kind == b"IHDR" else ihdr
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", ihdr[:10])
    c = {2: 3, 6: 4}[ctype]
    assert depth == 16
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c * 2)
    rows = np.zeros((h, w * c * 2), np.uint8)
    for i in range(h):
        assert raw[i, 0] in (0, 2)
        rows[i] = raw[i, 1:] + (rows[i - 1] if raw[i, 0] == 2 and i else 0)
    return rows.view(">u2").reshape(h, w, c).astype(np.uint16)


# -- image kinds -----------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_png_read_with_every_row_filter(tmp_path, channels):
    a = _u16((12, 9, channels))
    path = tmp_path / "deep.png"
    path.write_bytes(_encode_png16(a))
    b = read_image(path)
    assert b.dtype == np.uint16 and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert image_info(path) == (12, 9, channels, 16)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_png_written_losslessly(tmp_path, channels):
    a = _u16((17, 23, channels))
    path = write_image(tmp_path / "out.png", a)
    np.testing.assert_array_equal(_decode_png_up_only(path.read_bytes()), a)  # independent decoder
    np.testing.assert_array_equal(read_image(path), a)


def test_16bit_gray_png_round_trip(tmp_path):
    a = _u16((20, 31, 1))
    path = write_image(tmp_path / "g16.png", a)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    b = read_image(path)
    assert b.dtype == np.uint16 and b.shape == (20, 31, 1)
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(
    ("dtype", "channels"), [(np.uint8, 1), (np.uint8, 3), (np.uint16, 1), (np.uint16, 3)]
)
def test_tiff_read_from_independent_writer(tmp_path, dtype, channels):
    a = RNG.integers(0, np.iinfo(dtype).max + 1, (15, 11, channels)).astype(dtype)
    path = tmp_path / "x.tif"
    tifffile.imwrite(
        path,
        a[..., 0] if channels == 1 else a,
        photometric="minisblack" if channels == 1 else "rgb",
    )
    b = read_image(path)
    assert b.dtype == dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "y.tiff", a)), a)


def test_planar_tiff_is_returned_channels_last(tmp_path):
    a = _u16((3, 10, 14))  # samples first, as planarconfig=separate stores them
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, a, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(path), np.moveaxis(a, 0, -1))


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_8bit_png_and_bmp_round_trip(tmp_path, mode, channels):
    a = RNG.integers(0, 256, (9, 13, channels), dtype=np.uint8)
    for suffix in (".png", ".bmp") if mode != "RGBA" else (".png",):
        b = read_image(write_image(tmp_path / f"x{suffix}", a))
        assert b.dtype == np.uint8 and b.shape == a.shape
        np.testing.assert_array_equal(b, a)
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == mode


def test_palette_png_becomes_rgb_and_rgba_with_transparency(tmp_path):
    idx = RNG.integers(0, 3, (8, 10), dtype=np.uint8)
    palette = [10, 20, 30, 200, 100, 50, 0, 255, 7]
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette + [0] * (768 - len(palette)))
    im.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(rgb, np.array(palette, np.uint8).reshape(3, 3)[idx])
    im.save(tmp_path / "pt.png", transparency=1)
    rgba = read_image(tmp_path / "pt.png")
    assert rgba.shape == (8, 10, 4)
    np.testing.assert_array_equal(rgba[..., 3], np.where(idx == 1, 0, 255))


def test_bilevel_and_gray_alpha_images(tmp_path):
    bits = RNG.integers(0, 2, (6, 7)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[..., 0], bits * 255)
    la = RNG.integers(0, 256, (6, 7, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (6, 7, 4)
    np.testing.assert_array_equal(out[..., :3], np.repeat(la[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(out[..., 3], la[..., 1])


def test_exif_rotated_jpeg_is_upright(tmp_path):
    # A smooth pattern (JPEG-friendly) that is not symmetric under any rotation.
    y, x = np.mgrid[0:48, 0:80]
    stored = np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=100, exif=exif)
    out = read_image(path).astype(int)
    expected = np.rot90(stored, k=-1).astype(int)
    assert out.shape == expected.shape == (80, 48, 3)
    assert np.abs(out - expected).mean() < 2.0
    assert image_info(path)[:2] == (80, 48)  # the header-only size is the upright one


def test_gray_jpeg_and_rgb_with_equal_channels_keep_their_channel_count(tmp_path):
    g = RNG.integers(0, 256, (16, 16, 1), dtype=np.uint8)
    assert read_image(write_image(tmp_path / "g.jpg", g)).shape == (16, 16, 1)
    assert read_image(write_image(tmp_path / "rgb_gray.png", np.repeat(g, 3, axis=-1))).shape == (
        16,
        16,
        3,
    )


def test_write_rejects_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="JPEG holds 8-bit"):
        write_image(tmp_path / "x.jpg", _u16((4, 4, 3)))
    with pytest.raises(DataError, match="expected an"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(DataError, match="unknown image suffix"):
        write_image(tmp_path / "x.webp", np.zeros((4, 4, 3), np.uint8))


# -- corrupt and missing files ---------------------------------------------------------------
def _truncated(tmp_path: Path, suffix: str) -> Path:
    a = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    good = write_image(tmp_path / f"good{suffix}", a)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_file_gives_one_clear_error(tmp_path, suffix):
    bad = _truncated(tmp_path, suffix)
    with pytest.raises(UnreadableImageError) as err:
        read_image(bad)
    message = str(err.value)
    # A plain read (predict's) gives no training advice; the DataModules add data.skip_bad.
    assert str(bad) in message and "re-export" in message and "skip_bad" not in message
    assert "\n" not in message
    with pytest.raises(UnreadableImageError, match=r"data\.skip_bad=true") as err:
        load_training_image(ImageRecord(bad, bad.stem), FovOptions())
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_not_an_image_and_missing_file(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a PNG at all")
    with pytest.raises(UnreadableImageError, match="junk.png"):
        read_image(junk)
    with pytest.raises(UnreadableImageError, match="junk.png"):
        image_info(junk)
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_worker_reraised_message_is_the_original_one():
    # DataLoader workers re-raise as type(e)("Caught ... Original Traceback ... Name: message").
    wrapped = (
        "Caught UnreadableImageError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nmedsr.data.image_io.UnreadableImageError: cannot read image a.png: truncated.'
    )
    assert str(UnreadableImageError(wrapped)) == "cannot read image a.png: truncated."


# -- listing ---------------------------------------------------------------------------------
def test_list_images_sorted_case_insensitive_and_recursive(tmp_path):
    names = ["b.PNG", "a.jpg", "C.JPEG", "d.tif", "e.TIFF", "f.bmp"]
    for n in names + ["notes.txt", ".hidden.png"]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "0.png").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == sorted(names)
    assert [
        p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)
    ] == sorted(names + ["sub/0.png"])


def test_list_images_errors_name_the_folder_key_and_download_page(tmp_path):
    with pytest.raises(DataError) as err:
        list_images(
            tmp_path / "DF2K",
            key="data.root",
            hint="Download DIV2K from https://example.org/div2k.",
        )
    message = str(err.value)
    assert (
        str(tmp_path / "DF2K") in message
        and "data.root=" in message
        and "https://example.org/div2k" in message
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no image"):
        list_images(tmp_path / "empty")


# -- conversions -----------------------------------------------------------------------------
def test_float_and_uint8_conversions():
    a16 = np.array([[[0], [257], [65535]]], np.uint16)
    t = to_float_tensor(a16)
    assert t.shape == (1, 1, 3) and t.dtype == torch.float32
    assert t.flatten().tolist() == pytest.approx([0.0, 257 / 65535, 1.0])
    np.testing.assert_array_equal(to_uint8(a16)[..., 0], [[0, 1, 255]])
    t8 = to_float_tensor(np.array([[[0, 128, 255]]], np.uint8))
    assert t8.shape == (3, 1, 1) and t8.flatten().tolist() == pytest.approx([0, 128 / 255, 1])
    # Rounding (not truncation) and clamping on the way back.
    back = to_uint8(torch.tensor([[[0.5 / 255, 1.49 / 255, 1.2, -0.1]]]))
    np.testing.assert_array_equal(back[..., 0], [[1, 1, 255, 0]])
