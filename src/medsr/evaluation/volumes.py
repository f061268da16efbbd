"""Upscaling DICOM and NIfTI files (``medsr.predict``): every frame or slice through the Upscaler.

Stored values go in and come out: a frame's values are offset to levels ``0 .. 2**bits - 1``
of the range the network was trained on (its weights record it; else the file's own), upscaled
(normalised by that range, as training normalises), rounded to the same levels, offset back and
clipped to the file's range. A network trained on a window (``data.window``) gets the window
and its output goes back through the window's inverse (values outside come back at its edges). A DICOM becomes a derived DICOM of the same representation
(``medsr.data.dicom_writer``), a NIfTI volume a volume with the in-plane voxel size divided by
the scale. Slices of one source series share one new SeriesInstanceUID per run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medsr.data.dicom import read_dicom
from medsr.data.dicom_writer import new_uid, write_dicom
from medsr.data.image_io import write_image
from medsr.data.medical import StoredRange, medical_kind, medical_stem
from medsr.data.nifti import read_nifti, write_nifti
from medsr.errors import DataError
from medsr.evaluation.inference import Upscaler, upscale_array
from medsr.ops.quantize import to_integer

MIN_SIDE = 2  # reflection padding (RRDBNet x2) needs two pixels per side


def medical_target(src: Path, rel_parent: Path, out_dir: Path, fmt: str) -> Path:
    """``<out>/<stem>.dcm`` / ``.nii(.gz)`` for ``format=same`` (or auto), else ``<stem>.<fmt>``."""
    stem = medical_stem(src)
    if fmt in ("same", "auto"):
        kind = medical_kind(src)
        suffix = ".dcm" if kind == "dicom" else src.name[len(stem) :]
    else:
        suffix = {"tiff": ".tiff", "jpeg": ".jpg"}.get(fmt, f".{fmt}")
    return out_dir / rel_parent / f"{stem}{suffix}"


def upscale_stored(
    upscaler: Upscaler,
    frames: np.ndarray,
    stored: StoredRange,
    path: Path,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``(F, H, W, C)`` stored values -> ``(F, sH, sW, C)`` stored values of the same range."""
    f, h, w, c = frames.shape
    if min(h, w) < MIN_SIDE:
        raise DataError(f"{path} is {w}x{h}: too small to upscale (needs {MIN_SIDE} px per side)")
    need = upscaler.in_channels
    if need is not None and need != c:
        raise DataError(
            f"{path} has {c} channel(s) ({'RGB' if c == 3 else 'grey'}) but the network takes "
            f"{need} (model.net.num_in_ch={need}); use a {c}-channel network or model=bicubic."
        )
    s = upscaler.scale
    model = trained_range(upscaler) or stored
    out = np.empty((f, h * s, w * s, c), dtype=stored.dtype)
    for i in range(f):
        if model.window is not None:  # the window's [0, 1] carried at 16-bit levels
            unit = model.to_unit(torch.from_numpy(frames[i].astype(np.float64)))
            levels = to_integer(unit, 16, dtype=torch.int32).numpy().astype(np.uint16)
            up = upscale_array(upscaler, levels, on_tile=on_tile, bits=16)
            values = model.from_unit(torch.from_numpy(up.astype(np.float64) / 65535))
        else:
            offset = frames[i].astype(np.int32) - model.low
            if offset.min() < 0 or offset.max() > model.peak:
                raise DataError(
                    f"{path}: stored values {int(frames[i].min())}..{int(frames[i].max())} lie "
                    f"outside the {model.describe()} range the network was trained on; use a "
                    "network trained on such data (or model=bicubic)"
                )
            levels = offset.astype(np.uint8 if model.bits <= 8 else np.uint16)
            up = upscale_array(upscaler, levels, on_tile=on_tile, bits=model.bits)
            values = up.astype(np.int32) + model.low
        out[i] = np.clip(values, stored.low, stored.high).astype(stored.dtype)
    return out


def trained_range(upscaler: Upscaler) -> StoredRange | None:
    """The stored range (and window) the network was trained on, when its file records one."""
    spec = getattr(upscaler.net, "medsr_spec", None) or {}
    return StoredRange.from_spec(spec["stored"]) if spec.get("stored") else None


def upscale_medical(
    upscaler: Upscaler,
    src: Path,
    dst: Path,
    method: str,
    series_uids: dict[str, str],
    slice_axis: int = 2,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Upscale one DICOM or NIfTI file into ``dst`` (its format follows ``dst``'s suffix).

    Args:
        upscaler: the network, scale and tiling.
        src: the input file.
        dst: ``.dcm`` (DICOM in), ``.nii``/``.nii.gz`` (NIfTI in), or ``.png``/``.tif`` for
            one unsigned frame (its stored values, no metadata).
        method: what made the pixels, for the DICOM ``DerivationDescription``.
        series_uids: source SeriesInstanceUID -> derived one, shared by the run's files.
        slice_axis: NIfTI axis the slices are cut along.
    """
    kind = medical_kind(src)
    if kind == "nifti":
        volume = read_nifti(src, slice_axis)
        source, frames, stored = volume, volume.slices, volume.meta.stored
    else:
        image = read_dicom(src)
        source, frames, stored = image, image.frames, image.meta.stored
    out = upscale_stored(upscaler, frames, stored, src, on_tile)
    name = dst.name.lower()
    if name.endswith((".nii", ".nii.gz")) and kind == "nifti":
        return write_nifti(dst, out, source, upscaler.scale)
    if dst.suffix.lower() == ".dcm" and kind == "dicom":
        uid = series_uids.setdefault(source.meta.series_uid, new_uid())
        return write_dicom(dst, out, source, upscaler.scale, method, series_uid=uid)
    if stored.signed or out.shape[0] != 1:
        raise DataError(
            f"{src}: format={dst.suffix[1:]} cannot hold {'signed stored values' if stored.signed else 'several frames'}"
            " and drops the scanner metadata; use format=same (a DICOM or NIfTI output)."
        )
    return write_image(dst, out[0])
