"""Test data for the medical readers: pydicom's and nibabel's shipped files, and synthetic DICOMs.

The synthetic writer below builds files with pydicom's own Dataset API (not medsr's writer), so
reading them tests medsr's reader independently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def pydicom_file(name: str) -> Path:
    """A file shipped in pydicom's wheel (CT_small.dcm, MR_small.dcm, ...)."""
    path = get_testdata_file(name)
    assert path is not None, f"{name} is not shipped with this pydicom"
    return Path(path)


def nibabel_file(name: str) -> Path:
    """A file shipped in nibabel's wheel (anatomical.nii, example4d.nii.gz, ...)."""
    from nibabel.testing import data_path

    return Path(data_path) / name


def make_dicom(
    path: Path,
    values: np.ndarray,
    bits_stored: int,
    signed: bool,
    raw_words: np.ndarray | None = None,
    **attrs,
) -> Path:
    """A CT image file of ``values`` ``(F, H, W)`` (or ``(H, W)``), 16 bits allocated.

    Args:
        raw_words: the exact 16-bit words to store (to put garbage in the unused high bits);
            default: ``values`` in two's complement.
        **attrs: extra data elements by keyword (PatientID=..., ImagePositionPatient=...).
    """
    values = np.asarray(values)
    frames = values[None] if values.ndim == 2 else values
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.PatientName = "Test^Patient"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns = frames.shape[1:]
    if frames.shape[0] > 1:
        ds.NumberOfFrames = frames.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024 if not signed else 0
    ds.PixelSpacing = [0.5, 0.75]
    for key, value in attrs.items():
        setattr(ds, key, value)
    words = frames.astype(np.int64).astype(np.uint16) if raw_words is None else raw_words
    ds.PixelData = np.ascontiguousarray(words, dtype="<u2").tobytes()
    ds["PixelData"].VR = "OW"
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
