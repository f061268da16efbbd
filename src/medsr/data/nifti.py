"""NIfTI volumes (``.nii``, ``.nii.gz``) as stacks of 2-D slices, and their upscaled rewrite.

A volume ``(X, Y, Z[, T, ...])`` is cut along one spatial axis (``data.slice_axis``, default
2: axial slices of an RAS volume); every slice of every extra index (time points) is an image
whose rows and columns are the two other spatial axes, in order. Voxels keep their stored
integers (``scl_slope``/``scl_inter`` are metadata, like DICOM's modality LUT). The writer
multiplies the two in-plane sizes by the scale and divides their voxel size in the affine,
shifting the origin so the upscaled grid covers the same field of view.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsr.data.medical import MedicalMeta, StoredRange
from medsr.errors import ConfigError, DataError
from medsr.files import atomic_write

SPATIAL_AXES = (0, 1, 2)


@dataclass
class NiftiVolume:
    """One NIfTI file cut into slices.

    Attributes:
        path: the file.
        slices: ``(N, H, W, 1)`` stored values, N = slices along ``axis`` x extra indices.
        meta: range, scaling, spacing of one slice (row, column voxel size in mm).
        image: the nibabel image (header and affine for the writer).
        axis: the spatial axis the slices are cut along.
    """

    path: Path
    slices: np.ndarray
    meta: MedicalMeta
    image: object
    axis: int


def _check_axis(axis: int) -> int:
    if isinstance(axis, bool) or axis not in SPATIAL_AXES:
        raise ConfigError(
            f"data.slice_axis={axis!r} must be 0, 1 or 2 (the axis slices are cut along)."
        )
    return int(axis)


def _load(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"NIfTI file {path} does not exist; check the path.")
    try:
        img = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: not a readable NIfTI file ({e}); re-export it.") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path} is a {type(img).__name__}, not NIfTI-1/2; convert it to .nii.gz.")
    return img


def _stored_range(img, path: Path) -> StoredRange:
    dtype = img.get_data_dtype()
    if dtype.kind == "f":
        raise DataError(
            f"{path} stores floating-point voxels ({dtype}); medsr keeps stored integers. "
            "Save the volume as int16/uint16 (e.g. from the scanner's DICOM with dcm2niix)."
        )
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        raise DataError(
            f"{path}: voxel type {dtype} is not supported; medsr reads 8- and 16-bit integer volumes."
        )
    return StoredRange.of_dtype(dtype)


def _shape3(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape) + (1,) * max(0, 3 - len(shape))


def in_plane_axes(axis: int) -> tuple[int, int]:
    """The two spatial axes that make a slice's rows and columns."""
    rows, cols = (a for a in SPATIAL_AXES if a != axis)
    return rows, cols


def _meta(img, path: Path, axis: int, stored: StoredRange, count: int) -> MedicalMeta:
    zooms = _shape3(img.header.get_zooms())
    rows, cols = in_plane_axes(axis)
    slope, inter = img.dataobj.slope, img.dataobj.inter
    lo, hi = float(img.header["cal_min"]), float(img.header["cal_max"])
    return MedicalMeta(
        path=path,
        kind="nifti",
        stored=stored,
        slope=1.0 if not np.isfinite(slope) or slope == 0 else float(slope),
        intercept=0.0 if not np.isfinite(inter) else float(inter),
        window=((lo + hi) / 2, hi - lo) if hi > lo else None,
        pixel_spacing=(float(zooms[rows]), float(zooms[cols])),
        frames=count,
        extra={"shape": tuple(img.shape), "axis": axis},
    )


def nifti_info(path: str | Path, axis: int = 2) -> MedicalMeta:
    """Header-only metadata: range, spacing, ``frames`` = slices along ``axis`` times the extra
    (time) indices, ``extra["rows"]``/``extra["columns"]`` = a slice's size."""
    path, axis = Path(path), _check_axis(axis)
    img = _load(path)
    shape = _shape3(img.shape)
    meta = _meta(img, path, axis, _stored_range(img, path), shape[axis] * math.prod(shape[3:]))
    rows, cols = in_plane_axes(axis)
    meta.extra.update(rows=shape[rows], columns=shape[cols])
    return meta


def slice_count(path: str | Path, axis: int = 2) -> int:
    """Slices along ``axis`` times the extra (time) indices, from the header alone."""
    return nifti_info(path, axis).frames


def _slices(data: np.ndarray, axis: int) -> np.ndarray:
    """``(X, Y, Z, *extra)`` -> ``(extra x Z_axis, H, W)`` slices, time-major."""
    stack = np.moveaxis(data.reshape(_shape3(data.shape)), axis, 0)  # (A, rows, cols, *extra)
    stack = np.moveaxis(stack.reshape(stack.shape[:3] + (-1,)), 3, 0)  # (E, A, rows, cols)
    return stack.reshape(-1, *stack.shape[2:])


def read_nifti(path: str | Path, axis: int = 2) -> NiftiVolume:
    """Read a NIfTI volume as ``(N, H, W, 1)`` slices of stored integers along ``axis``.

    Raises:
        DataError: missing, unreadable or truncated file, floating-point or >16-bit voxels.
        ConfigError: ``axis`` is not 0, 1 or 2.
    """
    path, axis = Path(path), _check_axis(axis)
    img = _load(path)
    stored = _stored_range(img, path)
    if len(img.shape) < 3 and axis != 2:
        raise ConfigError(f"{path} is a 2-D image: it has one slice, along data.slice_axis=2.")
    try:
        data = np.asanyarray(img.dataobj.get_unscaled())
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: truncated or corrupt NIfTI data ({e}); re-export it.") from None
    slices = stored.check(_slices(np.asarray(data), axis), path)[..., None]
    meta = _meta(img, path, axis, stored, slices.shape[0])
    return NiftiVolume(path, np.ascontiguousarray(slices), meta, img, axis)


_CACHE: dict[tuple, tuple[np.ndarray, StoredRange]] = {}


def _stored_data(path: Path) -> tuple[np.ndarray, StoredRange]:
    """The stored voxels (a memory map for ``.nii``; decompressed once for ``.nii.gz``, the
    last such volume cached in this process) and their range."""
    key = (str(path), path.stat().st_mtime_ns if path.exists() else 0)
    if key not in _CACHE:
        img = _load(path)
        stored = _stored_range(img, path)
        try:
            data = np.asanyarray(img.dataobj.get_unscaled())
        except (OSError, EOFError, ValueError, zlib.error) as e:
            raise DataError(
                f"{path}: truncated or corrupt NIfTI data ({e}); re-export it."
            ) from None
        _CACHE.clear()
        _CACHE[key] = data, stored
    return _CACHE[key]


def read_nifti_slice(path: str | Path, index: int, axis: int = 2) -> np.ndarray:
    """Slice ``index`` (numbered as :func:`read_nifti` numbers them) as ``(H, W, 1)``, reading
    only that slice of an uncompressed volume."""
    path, axis = Path(path), _check_axis(axis)
    data, stored = _stored_data(path)
    shape = _shape3(data.shape)
    extra = shape[3:]
    count = shape[axis] * math.prod(extra)
    if not 0 <= index < count:
        raise DataError(f"{path} has {count} slices along axis {axis}; no slice {index}.")
    time_index, position = divmod(index, shape[axis])
    volume = data.reshape(shape) if data.ndim < 3 else data
    volume = volume[(..., *np.unravel_index(time_index, extra))] if extra else volume
    plane = np.take(volume, position, axis=axis)
    return stored.check(np.ascontiguousarray(plane), path)[..., None]


def upscaled_affine(affine: np.ndarray, axis: int, scale: int) -> np.ndarray:
    """Voxel-to-world affine of the grid upscaled ``scale`` times in the plane normal to ``axis``.

    New voxel ``i'`` has its centre at old index ``(i' + 0.5) / s - 0.5``: the in-plane
    columns are divided by ``s`` and the origin moves by half an old voxel minus half a new one.
    """
    step = np.ones(3)
    step[list(in_plane_axes(axis))] = 1.0 / scale
    to_old = np.eye(4)
    to_old[:3, :3] = np.diag(step)
    to_old[:3, 3] = (step - 1) / 2
    return np.asarray(affine, dtype=np.float64) @ to_old


def write_nifti(path: str | Path, slices: np.ndarray, source: NiftiVolume, scale: int) -> Path:
    """Write the x``scale`` slices of ``source`` as a volume of the same layout and data type.

    Args:
        path: ``.nii`` or ``.nii.gz`` output; written to a temporary file beside it, then renamed.
        slices: ``(N, sH, sW[, 1])`` stored values, in the order :func:`read_nifti` gave them.
        source: the volume they came from (header, affine, slice axis).
        scale: the upscaling factor.
    """
    slices = np.asarray(slices)
    slices = slices[..., 0] if slices.ndim == 4 else slices
    n, h, w = source.slices.shape[:3]
    if slices.shape != (n, h * scale, w * scale):
        raise DataError(
            f"cannot write the x{scale} result of {source.path}: slices are {slices.shape}, "
            f"expected {(n, h * scale, w * scale)}."
        )
    slices = source.meta.stored.check(slices, source.path)
    img, axis = source.image, source.axis
    shape = list(_shape3(img.shape))
    for a in in_plane_axes(axis):
        shape[a] *= scale
    extra = shape[3:]
    stack = slices.reshape(math.prod(extra), shape[axis], h * scale, w * scale)
    stack = np.moveaxis(stack, 0, -1).reshape(shape[axis], h * scale, w * scale, *extra)
    data = np.moveaxis(stack, 0, axis).reshape(shape[: max(len(img.shape), 3)])
    if len(img.shape) < 3:
        data = data.reshape([shape[0], shape[1]])
    affine = upscaled_affine(img.affine, axis, scale)
    header = img.header.copy()
    out = type(img)(data.astype(img.get_data_dtype()), affine, header=header)
    zooms = list(header.get_zooms())
    for a in in_plane_axes(axis):
        if a < len(zooms):
            zooms[a] = zooms[a] / scale
    out.header.set_zooms(zooms)
    out.set_qform(affine, code=int(header["qform_code"]))
    out.set_sform(affine, code=int(header["sform_code"]))
    out.header.set_slope_inter(source.meta.slope, source.meta.intercept)
    raw = out.to_bytes()  # single-file NIfTI; gzip by the name, not by nibabel's suffix rules
    if Path(path).name.lower().endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6)
    atomic_write(path, lambda tmp: tmp.write_bytes(raw))
    return Path(path)
