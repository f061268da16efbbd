"""DICOM reading through pydicom: stored values kept, metadata beside them, one clear error per file.

Pixels come back exactly as stored: integers, signed where ``PixelRepresentation`` is 1, within
``BitsStored`` bits (unused high bits masked). The modality LUT (``RescaleSlope``/``Intercept``)
and the VOI window stay metadata (:class:`medsr.data.medical.MedicalMeta`). Uncompressed, RLE
and every compressed transfer syntax an installed pydicom plugin decodes are read; a file whose
syntax has no installed decoder gets one message naming the syntax and the package to install.
A multi-frame file is a stack of images; a folder of slices is read as one series.
"""

from __future__ import annotations

import logging
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsr.data.medical import MedicalMeta, StoredRange, list_medical
from medsr.errors import DataError

log = logging.getLogger(__name__)

# Words in the names of SOP classes that hold no image to upscale (pydicom's UID names).
_NON_IMAGE = (
    "Plan", "SR Storage", "Structure Set", "Waveform", "ECG", "Presentation State",
    "Key Object", "Encapsulated", "Raw Data", "Spectroscopy", "Registration", "Segmentation",
    "Dose", "Treatment Record", "Measurement", "Report", "Directory",
)  # fmt: skip
# Packages that add decoders to pydicom, by transfer syntax UID prefix / value.
_JPEG = "pylibjpeg and pylibjpeg-libjpeg (GPL-3.0: pip install 'medsr[dicom-jpeg]') or python-gdcm"
_J2K = "pylibjpeg and pylibjpeg-openjpeg (installed with medsr) or python-gdcm"
_PACKAGES = {
    "1.2.840.10008.1.2.4.5": _JPEG,  # JPEG baseline / extended (Pillow also decodes 8-bit)
    "1.2.840.10008.1.2.4.57": _JPEG,  # JPEG lossless
    "1.2.840.10008.1.2.4.70": _JPEG,
    "1.2.840.10008.1.2.4.8": _JPEG,  # JPEG-LS lossless / near-lossless
    "1.2.840.10008.1.2.4.9": _J2K,  # JPEG 2000
    "1.2.840.10008.1.2.4.20": _J2K,  # HTJ2K
    "1.2.840.10008.1.2.5": "pydicom itself (RLE needs no extra package)",
}


@dataclass
class DicomImage:
    """One DICOM file's pixels and header.

    Attributes:
        path: the file.
        frames: ``(F, H, W, C)`` stored values (C = 1 grey, 3 RGB), dtype ``meta.stored.dtype``.
        meta: range, modality LUT, window, spacing, identifiers.
        header: the pydicom Dataset without its pixel data (the writer starts from it).
    """

    path: Path
    frames: np.ndarray
    meta: MedicalMeta
    header: object


def _pydicom():
    try:
        import pydicom
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("reading DICOM needs pydicom: pip install pydicom") from None
    return pydicom


def open_dicom(path: str | Path, lazy: bool = False):
    """The file's pydicom Dataset; DataError naming the file when it is missing, not DICOM or cut.

    ``lazy``: large values (the pixel data) are read only when used.
    """
    pydicom = _pydicom()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"DICOM file {path} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pydicom warns on harmless oddities
            return pydicom.dcmread(path, defer_size="4 KB" if lazy else None)
    except pydicom.errors.InvalidDicomError:
        raise DataError(
            f"{path} is not a DICOM file (no DICM marker); remove it or give the right file."
        ) from None
    except (EOFError, OSError, ValueError, KeyError, struct.error, TypeError) as e:
        raise DataError(f"{path}: truncated or corrupt DICOM file ({e}); re-export it.") from None


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    return getattr(uid, "name", str(uid or "unknown SOP class"))


def check_image(ds, path: Path) -> StoredRange:
    """The stored range of an image object; DataError for anything medsr cannot upscale."""
    sop = _sop_name(ds)
    if any(word in sop for word in _NON_IMAGE):
        raise DataError(
            f"{path} is a {sop} object, not an image; medsr upscales image objects "
            "(CT, MR, CR, DX, MG, US, NM, PT, secondary capture). Remove it from the input."
        )
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        if other:
            why = f"floating-point pixel data ({other[0]}) is not supported"
        elif "Image" in sop or "SOPClassUID" not in ds:
            why = "no pixel data: the file is truncated (cut before its pixels) or was stripped"
        else:
            why = "it holds no pixel data (not an image object)"
        raise DataError(f"{path} ({sop}): {why}; remove it from the input.")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("PALETTE"):
        raise DataError(
            f"{path}: PALETTE COLOR pixels are indices into a colour table, not intensities; "
            "convert it to RGB (e.g. gdcmconv --raw) before upscaling."
        )
    allocated, stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0) or 0)
    if allocated not in (8, 16) or not 1 < stored <= allocated:
        raise DataError(
            f"{path}: BitsAllocated {allocated} / BitsStored {stored} is not supported; medsr "
            "reads 8- and 16-bit images (2 to 16 bits stored; 1-bit masks and 32-bit dose grids "
            "are not images to upscale)."
        )
    return StoredRange(stored, int(ds.get("PixelRepresentation", 0)) == 1)


def _decoder_problem(ds, path: Path) -> str | None:
    """Why the pixel data cannot be decoded here (missing plugin), or None."""
    from pydicom.pixels.decoders.base import get_decoder

    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or (ts.is_transfer_syntax and not ts.is_compressed):
        return None
    name = f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:  # raised for syntaxes pydicom has no decoder for, or unknown ones
        return (
            f"{path}: no Python decoder exists for the transfer syntax {name}; decompress it "
            "first (dcmtk dcmdjpeg/dcmdjp2k, gdcmconv --raw) or install python-gdcm."
        )
    if decoder.is_available:
        return None
    package = next((p for k, p in _PACKAGES.items() if str(ts).startswith(k)), "python-gdcm")
    return (
        f"{path}: pixel data compressed as {name} and no decoder is installed; install {package}."
    )


def _decode(ds, path: Path, index: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    problem = _decoder_problem(ds, path)
    if problem:
        raise DataError(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # One frame: decode it from the file, not the whole (possibly huge) pixel data.
            return pixel_array(ds if index is None else str(path), index=index)
    except (ValueError, EOFError, struct.error) as e:
        text = str(e)
        if "less than expected" in text or "truncat" in text.lower() or isinstance(e, EOFError):
            raise DataError(f"{path}: truncated DICOM file: {text.split(' - ')[0]}.") from None
        raise DataError(f"{path}: cannot decode the pixel data ({text}).") from None
    except (RuntimeError, NotImplementedError, IndexError) as e:
        raise DataError(f"{path}: cannot decode the pixel data ({e}).") from None


def _masked(a: np.ndarray, stored: StoredRange) -> np.ndarray:
    """Keep the ``BitsStored`` low bits (sign-extended when signed): high bits may hold overlays."""
    mask = (1 << stored.bits) - 1
    v = a.astype(np.int32) & mask
    if stored.signed:
        sign = 1 << (stored.bits - 1)
        v = (v ^ sign) - sign
    return v.astype(stored.dtype)


def _floats(ds, keyword: str) -> list[float]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else value
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return []


def _functional(ds, sequence: str, keyword: str) -> list[float]:
    """A value from the enhanced multi-frame shared functional groups (empty when absent)."""
    for group in ds.get("SharedFunctionalGroupsSequence") or []:
        for item in group.get(sequence) or []:
            values = _floats(item, keyword)
            if values:
                return values
    return []


def dicom_meta(ds, path: Path, stored: StoredRange) -> MedicalMeta:
    """Metadata of an image object (values from the shared functional groups when top-level is absent)."""
    spacing = _floats(ds, "PixelSpacing") or _functional(
        ds, "PixelMeasuresSequence", "PixelSpacing"
    )
    spacing = spacing or _floats(ds, "ImagerPixelSpacing")
    slope = _floats(ds, "RescaleSlope") or _functional(
        ds, "PixelValueTransformationSequence", "RescaleSlope"
    )
    intercept = _floats(ds, "RescaleIntercept") or _functional(
        ds, "PixelValueTransformationSequence", "RescaleIntercept"
    )
    center = _floats(ds, "WindowCenter") or _functional(ds, "FrameVOILUTSequence", "WindowCenter")
    width = _floats(ds, "WindowWidth") or _functional(ds, "FrameVOILUTSequence", "WindowWidth")
    return MedicalMeta(
        path=path,
        kind="dicom",
        stored=stored,
        channels=int(ds.get("SamplesPerPixel", 1)),
        slope=slope[0] if slope else 1.0,
        intercept=intercept[0] if intercept else 0.0,
        window=(center[0], width[0]) if center and width else None,
        pixel_spacing=(spacing[0], spacing[1]) if len(spacing) >= 2 else None,
        modality=str(ds.get("Modality", "")),
        patient_id=str(ds.get("PatientID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        frames=int(ds.get("NumberOfFrames", 1) or 1),
    )


def read_dicom(path: str | Path, index: int | None = None) -> DicomImage:
    """Decode a DICOM image file: every frame, or only frame ``index``.

    Args:
        path: a DICOM Part 10 file.
        index: 0-based frame of a multi-frame file (None = all frames).

    Returns:
        A :class:`DicomImage` whose ``frames`` are ``(F, H, W, C)`` stored values.

    Raises:
        DataError: missing, not DICOM, truncated, no pixel data, non-image SOP class, palette
            colour, unsupported bit depth, or a compressed syntax without an installed decoder.
    """
    path = Path(path)
    ds = open_dicom(path, lazy=index is not None)
    stored = check_image(ds, path)
    meta = dicom_meta(ds, path, stored)
    if index is not None and not 0 <= index < meta.frames:
        raise DataError(f"{path} has {meta.frames} frame(s); frame {index} does not exist.")
    a = _decode(ds, path, index)
    channels = meta.channels
    single = index is not None or meta.frames == 1
    a = a.reshape((1 if single else meta.frames, *a.shape[-3 + (channels == 1) :]))
    if channels == 1:
        a = a[..., None]
    if "YBR" in meta.photometric.upper() or "RGB" in meta.photometric.upper():
        meta.photometric = "RGB"  # pydicom converts YBR to RGB on decoding
    frames = _masked(a, stored)
    if "PixelData" in ds:
        del ds.PixelData
    return DicomImage(path, np.ascontiguousarray(frames), meta, ds)


def dicom_info(path: str | Path) -> MedicalMeta:
    """Header-only checks and metadata (no pixel decoding); DataError as :func:`read_dicom`."""
    path = Path(path)
    ds = open_dicom(path, lazy=True)
    stored = check_image(ds, path)
    problem = _decoder_problem(ds, path)
    if problem:
        raise DataError(problem)
    meta = dicom_meta(ds, path, stored)
    meta.extra.update(rows=int(ds.Rows), columns=int(ds.Columns))
    return meta


def read_series(folder: str | Path) -> list[DicomImage]:
    """A folder of single-frame slices, ordered along the slice normal (else InstanceNumber).

    Raises:
        DataError: no DICOM file, more than one series, or slices of different sizes.
    """
    folder = Path(folder)
    files = list_medical(folder, kinds=("dicom",))
    if not files:
        raise DataError(f"{folder} holds no DICOM file (.dcm, .dicom, .ima or DICM-marked files).")
    images = [read_dicom(f) for f in files]
    series = {im.meta.series_uid for im in images}
    if len(series) > 1:
        raise DataError(
            f"{folder} mixes {len(series)} series (SeriesInstanceUID); put each in its own folder."
        )
    shapes = {im.frames.shape[1:] for im in images}
    if len(shapes) > 1:
        raise DataError(f"{folder}: slices of different sizes {sorted(shapes)}; not one series.")
    return sorted(images, key=lambda im: (_position(im.header), im.path.name))


def _position(ds) -> float:
    """Distance along the slice normal (ImagePositionPatient . normal), else InstanceNumber."""
    pos, ori = _floats(ds, "ImagePositionPatient"), _floats(ds, "ImageOrientationPatient")
    if len(pos) == 3 and len(ori) == 6:
        normal = np.cross(ori[:3], ori[3:])
        return float(np.dot(normal, pos))
    return float(ds.get("InstanceNumber", 0) or 0)
