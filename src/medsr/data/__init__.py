"""Data: image I/O, dataset listings, FOV masks, datasets, device-side degradation, DataModules.

The DataModules (``FolderDataModule``, ``DF2KDataModule``, ``MessidorDataModule``,
``BenchmarkDataModule``, ``MedicalDataModule``) import Lightning; they are loaded on first use
so that ``medsr.data.image_io`` stays light for scripts that only read and write images.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SRDataModule": "medsr.data.datamodules",
    "FolderDataModule": "medsr.data.datamodules",
    "DF2KDataModule": "medsr.data.datamodules",
    "MessidorDataModule": "medsr.data.datamodules",
    "BenchmarkDataModule": "medsr.data.datamodules",
    "MedicalDataModule": "medsr.data.datamodules",
    "read_dicom": "medsr.data.dicom",
    "write_dicom": "medsr.data.dicom_writer",
    "read_nifti": "medsr.data.nifti",
    "write_nifti": "medsr.data.nifti",
    "read_image": "medsr.data.image_io",
    "write_image": "medsr.data.image_io",
    "list_images": "medsr.data.image_io",
    "fov_mask": "medsr.data.fov",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsr.data' has no attribute {name!r}")
