"""Write an upscaled DICOM image as a derived instance of its source.

The output keeps the source's stored representation (``BitsAllocated``, ``BitsStored``,
``PixelRepresentation``, ``RescaleSlope``/``Intercept``, window) and its patient and study
identifiers; it is a new instance in a new, derived series (``ImageType`` DERIVED/SECONDARY,
a ``DerivationDescription`` naming the method and scale, the source in
``SourceImageSequence``), with ``Rows``/``Columns`` times the scale and every in-plane pixel
spacing divided by it. Pixels are written uncompressed (Explicit VR Little Endian).
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import numpy as np

from medsr.data.dicom import DicomImage
from medsr.errors import DataError
from medsr.files import atomic_path

# Attributes that describe the source pixels and would be wrong for the new ones.
_STALE = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries", "IconImageSequence", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "PixelDataProviderURL",
)  # fmt: skip
_SPACINGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


def new_uid() -> str:
    """A fresh DICOM UID (pydicom's root): one per derived series, one per instance."""
    from pydicom.uid import generate_uid

    return str(generate_uid())


def _ds(value: float) -> object:
    from pydicom.valuerep import DS

    return DS(value, auto_format=True)


def _divide_spacing(item, scale: int) -> None:
    for keyword in _SPACINGS:
        value = item.get(keyword)
        if value is not None and value != "" and len(value) == 2:
            setattr(item, keyword, [_ds(float(v) / scale) for v in value])


def _rescale_geometry(ds, scale: int) -> None:
    ds.Rows = int(ds.Rows) * scale
    ds.Columns = int(ds.Columns) * scale
    _divide_spacing(ds, scale)
    # Enhanced multi-frame objects keep the spacing in functional groups.
    groups = list(ds.get("SharedFunctionalGroupsSequence") or [])
    groups += list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    for group in groups:
        for item in group.get("PixelMeasuresSequence") or []:
            _divide_spacing(item, scale)


def _mark_derived(ds, source_uid: str, method: str, scale: int, series_uid: str) -> None:
    from pydicom.dataset import Dataset

    image_type = list(ds.get("ImageType") or [])
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    ds.DerivationDescription = f"medsr super-resolution x{scale} ({method})"[:1024]
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = source_uid
    ds.SourceImageSequence = [ref]
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} medsr x{scale}".strip()[:64]
    now = datetime.datetime.now()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")


def _pixel_bytes(frames: np.ndarray, source: DicomImage, scale: int) -> bytes:
    """``(F, sH, sW, C)`` stored values -> the uncompressed little-endian Pixel Data value."""
    meta, ref = source.meta, source.frames
    want = (ref.shape[0], ref.shape[1] * scale, ref.shape[2] * scale, ref.shape[3])
    if frames.shape != want:
        raise DataError(
            f"cannot write the x{scale} result of {source.path}: pixels are {frames.shape}, "
            f"expected {want} (frames, rows, columns, samples)."
        )
    frames = meta.stored.check(frames, source.path)
    allocated = int(source.header.BitsAllocated)
    data = frames.astype({8: "u1", 16: "<i2" if meta.stored.signed else "<u2"}[allocated])
    raw = data.tobytes()
    return raw + b"\0" if len(raw) % 2 else raw  # DICOM values have even length


def write_dicom(
    path: str | Path,
    frames: np.ndarray,
    source: DicomImage,
    scale: int,
    method: str,
    series_uid: str | None = None,
) -> Path:
    """Write ``frames`` (the x``scale`` result for ``source``) as a derived DICOM image.

    Args:
        path: output file; written to a temporary file in its folder and renamed.
        frames: ``(F, sH, sW, C)`` (or ``(sH, sW)`` / ``(sH, sW, C)`` for one frame) stored
            values in the source's range and array type.
        source: the image read by :func:`medsr.data.dicom.read_dicom` (all frames).
        scale: the upscaling factor.
        method: what made the pixels (model and weights), for ``DerivationDescription``.
        series_uid: the derived series' UID; pass one UID for every slice of one source
            series (None = a new one, right for a single file).

    Returns:
        The path written.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRLittleEndian

    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[..., None]
    if frames.ndim == 3:
        frames = frames[None]
    raw = _pixel_bytes(frames, source, scale)
    ds = copy.deepcopy(source.header)
    for keyword in _STALE:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in [t for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0]:
        del ds[tag]  # overlays are drawn on the source grid
    source_uid = str(ds.SOPInstanceUID)
    _mark_derived(ds, source_uid, method, scale, series_uid or new_uid())
    _rescale_geometry(ds, scale)
    ds.SOPInstanceUID = new_uid()
    if source.meta.channels == 3:
        ds.PhotometricInterpretation = "RGB"  # decoded colour is RGB, stored interleaved
        ds.PlanarConfiguration = 0
    ds.add_new(0x7FE00010, "OB" if int(ds.BitsAllocated) == 8 else "OW", raw)
    meta = FileMetaDataset(getattr(ds, "file_meta", FileMetaDataset()))
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    with atomic_path(path) as tmp:
        # dcmwrite (not save_as) re-encodes a big-endian source as little endian.
        dcmwrite(tmp, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return Path(path)
