"""Reading, writing and listing images: every kind users have (8/16-bit, gray, palette, alpha, EXIF).

Arrays are ``(H, W, C)`` ``uint8`` or ``uint16`` with ``C`` in {1, 3, 4} (gray, RGB, RGBA).
Pillow reads PNG/JPEG/BMP (EXIF orientation applied); tifffile reads TIFF (Pillow as a fallback).
Pillow silently truncates 16-bit RGB(A) PNGs to 8 bits, so those are decoded twice by Pillow's own
C decoder, once for the high and once for the low byte of each sample (see ``medsr.data.png16``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medsr.data.pixel_limit import check_limit, impossible_header
from medsr.data.png16 import png_bit_depth, read_png16_color, write_png16_color
from medsr.errors import DataError
from medsr.files import atomic_write

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
_TIFF = frozenset({".tif", ".tiff"})
# Pillow's guard calls every large image a "decompression bomb"; medsr.data.pixel_limit tells a
# corrupt header from a large genuine image and names the setting that raises the limit.
Image.MAX_IMAGE_PIXELS = None


class UnreadableImageError(DataError):
    """An image file that cannot be decoded (corrupt, truncated, or not an image)."""


# What Pillow raises for corrupt, truncated or hostile files.
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
)


def _unreadable(path: Path, reason: object) -> UnreadableImageError:
    return UnreadableImageError(
        f"cannot read image {path}: {reason}. The file is corrupt, truncated or not an image: "
        "re-download or re-export it, or remove it."
    )


def _checked_open(path: Path) -> Image.Image:
    """``Image.open`` (header only), refusing impossible headers and images above the limit."""
    im = Image.open(path)
    w, h = im.size
    reason = impossible_header(path, w, h, im.format)
    if reason is not None:
        im.close()
        raise _unreadable(path, reason)
    try:
        check_limit(path, w, h)
    except DataError:
        im.close()
        raise
    return im


# -- reading ---------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an ``(H, W, C)`` uint8 or uint16 array, ``C`` in {1, 3, 4}.

    Args:
        path: PNG, JPEG, BMP or TIFF file. 8- and 16-bit, gray, palette (-> RGB, or RGBA when the
            palette has transparency), RGB, RGBA. JPEG EXIF orientation is applied.

    Raises:
        DataError: the file is missing, or (``UnreadableImageError``) cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {path} does not exist; check the path or the dataset folder.")
    if path.suffix.lower() in _TIFF:
        try:
            return _read_tiff(path)
        except DataError:
            raise
        except Exception:  # noqa: BLE001 - e.g. a compression tifffile cannot decode: try Pillow
            pass
    try:
        with _checked_open(path) as im:
            if im.format == "PNG" and im.mode in ("RGB", "RGBA") and png_bit_depth(path) == 16:
                return read_png16_color(path)
            im = ImageOps.exif_transpose(im)
            return _pil_to_array(im, path)
    except DataError:
        raise
    except _DECODE_ERRORS as e:
        raise _unreadable(path, e) from None


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "LA":
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im)
        if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
            raise DataError(
                f"{path}: 32-bit integer samples outside 0..65535 are not supported; "
                "save it as an 8- or 16-bit image."
            )
        return a.astype(np.uint16)[..., None]
    elif mode == "F":
        raise DataError(
            f"{path}: floating-point images are not supported; save it as an 8- or 16-bit image."
        )
    a = np.asarray(im)
    if a.dtype != np.uint8:
        raise DataError(
            f"{path}: unsupported Pillow mode {mode}; save it as 8- or 16-bit gray/RGB."
        )
    return a[..., None] if a.ndim == 2 else a


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        if "Y" in axes and "X" in axes:
            check_limit(path, series.shape[axes.index("X")], series.shape[axes.index("Y")])
        a = series.asarray()
    # Keep the first plane of any extra axes (pages, time, z) and put samples last.
    for ax in list(axes):
        if ax not in "YXS":
            i = axes.index(ax)
            a = a.take(0, axis=i)
            axes = axes.replace(ax, "")
    if "S" in axes and axes.index("S") == 0:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype not in (np.uint8, np.uint16):
        raise DataError(
            f"{path}: TIFF sample type {a.dtype} is not supported; save it as 8- or 16-bit unsigned."
        )
    if a.shape[-1] == 2:  # gray + alpha
        a = np.concatenate([a[..., :1]] * 3 + [a[..., 1:]], axis=-1)
    if a.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{path}: {a.shape[-1]} channels are not supported; save it as gray, RGB or RGBA."
        )
    return np.ascontiguousarray(a)


def image_info(path: str | Path) -> tuple[int, int, int, int]:
    """``(height, width, channels, bits)`` from the header only (after EXIF rotation), no decoding.

    Raises:
        UnreadableImageError: the header cannot be parsed.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF:
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                c = page.samplesperpixel
                c = 4 if c == 2 else c
                info = page.imagelength, page.imagewidth, c, page.bitspersample
        except Exception:  # noqa: BLE001 - Pillow may still read it
            pass
        else:
            check_limit(path, info[1], info[0])
            return info
    try:
        with _checked_open(path) as im:
            w, h = im.size
            # Pillow's PNG getexif() decodes the whole image to look for a trailing eXIf chunk;
            # only an eXIf before the pixels (already parsed) is consulted here.
            if im.format != "PNG" or "exif" in im.info:
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientation with a transpose
                    w, h = h, w
            mode = im.mode
            bits = 16 if mode.startswith("I") else 8
            if im.format == "PNG" and mode in ("RGB", "RGBA"):
                bits = png_bit_depth(path)
    except _DECODE_ERRORS as e:
        raise _unreadable(path, e) from None
    channels = {
        "1": 1,
        "L": 1,
        "I": 1,
        "I;16": 1,
        "I;16B": 1,
        "I;16L": 1,
        "LA": 4,
        "RGBA": 4,
        "PA": 4,
    }
    c = channels.get(mode, 3)
    if mode == "P":
        c = 4 if "transparency" in im.info else 3
    return h, w, c, bits


# -- writing ---------------------------------------------------------------------------------
def write_image(path: str | Path, array: np.ndarray, quality: int = 95) -> Path:
    """Write an ``(H, W)`` or ``(H, W, C)`` uint8/uint16 array; the format follows the suffix.

    Args:
        path: ``.png`` (8/16-bit, 1/3/4 channels), ``.tif``/``.tiff`` (8/16-bit), ``.jpg``/``.jpeg``
            (8-bit gray/RGB only), ``.bmp`` (8-bit). Parent folders are created. Written to a
            temporary name in the same folder and renamed: a kill never leaves a partial file.
        array: the image; C in {1, 3, 4}.
        quality: JPEG quality.
    """
    path = Path(path)
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or a.dtype not in (np.uint8, np.uint16):
        raise DataError(
            f"cannot write {path}: expected an (H, W, C) uint8/uint16 array with C in 1/3/4, "
            f"got shape {a.shape} and dtype {a.dtype}."
        )
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg") and (a.dtype != np.uint8 or a.shape[-1] == 4):
        raise DataError(
            f"cannot write {path}: JPEG holds 8-bit gray or RGB only; use .png or .tif."
        )
    if suffix not in _TIFF | {".jpg", ".jpeg", ".png", ".bmp"}:
        raise DataError(f"cannot write {path}: unknown image suffix; use .png, .tif, .jpg or .bmp.")
    if suffix == ".bmp" and a.dtype == np.uint16:
        raise DataError(f"cannot write {path}: BMP holds 8-bit images only; use .png or .tif.")
    # A temporary name in the same folder, renamed when complete: never a truncated image.
    return atomic_write(path, lambda tmp: _encode(tmp, a, suffix, quality))


def _encode(path: Path, a: np.ndarray, suffix: str, quality: int) -> None:
    if suffix in _TIFF:
        import tifffile

        tifffile.imwrite(
            path,
            a[..., 0] if a.shape[-1] == 1 else a,
            photometric="minisblack" if a.shape[-1] == 1 else "rgb",
            compression="zlib",
        )
    elif suffix in (".jpg", ".jpeg"):
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path, quality=quality)
    elif a.dtype == np.uint16 and a.shape[-1] == 1:
        Image.fromarray(a[..., 0]).save(path)  # mode I;16
    elif a.dtype == np.uint16:
        write_png16_color(path, a)
    else:
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path)


# -- listing ---------------------------------------------------------------------------------
def list_images(
    folder: str | Path,
    recursive: bool = False,
    *,
    key: str | None = None,
    hint: str | None = None,
) -> list[Path]:
    """Image files in ``folder``, sorted by relative path (independent of the file system order).

    Args:
        folder: the folder to list.
        recursive: include sub-folders.
        key: the config key that sets this folder (named in errors), e.g. ``data.root``.
        hint: where the dataset can be downloaded / how it should be laid out (named in errors).

    Raises:
        DataError: the folder is missing or holds no image (png, jpg, jpeg, tif, tiff, bmp).
    """
    folder = Path(folder)
    fix = f" Set {key}=<folder>." if key else ""
    fix += f" {hint}" if hint else ""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist.{fix}")
    pattern = "**/*" if recursive else "*"
    files = [
        p
        for p in folder.glob(pattern)
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    if not files:
        exts = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
        raise DataError(f"image folder {folder} holds no image ({exts}).{fix}")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())
