"""Medical images as scanners store them: integer stored values, their range and their metadata.

Shared by the DICOM and NIfTI readers and writers, the training data path (which normalises by
the stored range) and the metrics' protocol words (whose peak is that range).

The range of a file is its *declared* one: ``BitsStored`` and ``PixelRepresentation`` for
DICOM, the integer data type for NIfTI. It is known from the header alone, so one slice at
prediction time is normalised exactly as the training set was, and PSNR's peak
(``2**bits - 1``) means the same on every data set of that bit depth.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from medsr.errors import DataError
from medsr.ops.quantize import quantize, to_integer

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_DICM_OFFSET = 128  # the Part 10 preamble precedes the b"DICM" magic


@dataclass(frozen=True)
class StoredRange:
    """The integer range of stored values: ``bits`` bits, two's complement when ``signed``.

    ``to_unit`` maps ``low .. high`` onto [0, 1] (the networks' range); ``peak`` is the number
    of level steps, the PSNR peak on the stored scale. With ``window`` (``data.window``:
    ``(center, width, slope, intercept)``) ``to_unit`` instead takes the stored values through
    the modality LUT (``slope``, ``intercept``) and the DICOM linear window onto [0, 1], so
    training and scores see only that window (e.g. CT soft tissue, 40/400 HU).
    """

    bits: int
    signed: bool = False
    window: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise DataError(f"{self.bits}-bit stored values are not supported (1 to 16 bits).")

    @property
    def low(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def high(self) -> int:
        return self.low + self.peak

    @property
    def peak(self) -> int:
        return (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        """The array type that holds these values without loss (uint8, uint16 or int16)."""
        if self.signed:
            return np.dtype(np.int16)
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    def describe(self) -> str:
        kind = "signed" if self.signed else "unsigned"
        words = f"{self.bits}-bit {kind} ({self.low}..{self.high})"
        if self.window is not None:
            center, width, slope, intercept = self.window
            words += (
                f", window {center:g}/{width:g} (center/width in modality units, "
                f"stored * {slope:g} + {intercept:g})"
            )
        return words

    def to_unit(self, x: Tensor) -> Tensor:
        """Stored values (any integer or float tensor) -> float32 in [0, 1]."""
        if self.window is not None:
            center, width, slope, intercept = self.window
            return apply_window(x.float() * slope + intercept, center, width)
        return (x.float() - self.low).div_(self.peak)

    def quantize(self, x: Tensor) -> Tensor:
        """[0, 1] floats clamped and rounded to this range's levels (``ops.quantize``'s rule)."""
        return quantize(x, self.bits)

    def from_unit(self, x: Tensor) -> np.ndarray:
        """[0, 1] floats -> stored values as a numpy array of ``dtype`` (clamped, rounded).
        Through a window: its inverse, so 0 and 1 come back as the window's edges."""
        if self.window is not None:
            center, width, slope, intercept = self.window
            unit = x.detach().double().clamp(0, 1)
            stored = ((unit - 0.5) * (width - 1) + center - 0.5 - intercept) / slope
            stored = stored.round().clamp(self.low, self.high)
            return stored.cpu().numpy().astype(self.dtype)
        levels = to_integer(x.detach().double(), self.bits, dtype=torch.int32)
        return (levels + self.low).cpu().numpy().astype(self.dtype)

    def as_spec(self) -> dict:
        """What a weights file records of the range its network was trained on."""
        return {"bits": self.bits, "signed": self.signed, "window": self.window}

    @classmethod
    def from_spec(cls, spec: dict) -> StoredRange:
        window = spec.get("window")
        return cls(int(spec["bits"]), bool(spec["signed"]), tuple(window) if window else None)

    def check(self, array: np.ndarray, path: object) -> np.ndarray:
        """``array`` as ``dtype``; DataError naming ``path`` when a value lies outside the range."""
        if array.size and (int(array.min()) < self.low or int(array.max()) > self.high):
            raise DataError(
                f"{path}: stored values {int(array.min())}..{int(array.max())} lie outside the "
                f"declared {self.describe()} range; the header's bit depth is wrong for this data."
            )
        return array.astype(self.dtype, copy=False)

    @classmethod
    def of_dtype(cls, dtype: np.dtype | type) -> StoredRange:
        """The full range of an integer array type (NIfTI, PNG): int16 -> 16-bit signed."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "iu" or dtype.itemsize > 2:
            raise DataError(f"no stored range for {dtype} data (8- or 16-bit integers only).")
        return cls(8 * dtype.itemsize, dtype.kind == "i")


@dataclass
class MedicalMeta:
    """What a medical image says about its pixels, kept beside the stored values.

    The modality LUT (``slope``, ``intercept``: Hounsfield units for CT) and the display
    ``window`` are metadata: nothing applies them unless asked (``physical``, ``apply_window``).
    """

    path: Path
    kind: str  # "dicom" or "nifti"
    stored: StoredRange
    channels: int = 1
    slope: float = 1.0
    intercept: float = 0.0
    window: tuple[float, float] | None = None  # (center, width)
    pixel_spacing: tuple[float, float] | None = None  # (row, column) in mm
    modality: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    photometric: str = "MONOCHROME2"
    frames: int = 1
    extra: dict = field(default_factory=dict)

    def physical(self, stored: np.ndarray) -> np.ndarray:
        """Stored values through the modality LUT (``stored * slope + intercept``), float64."""
        return stored.astype(np.float64) * self.slope + self.intercept

    @property
    def group(self) -> str:
        """The patient a slice belongs to (split groups): PatientID; without one, the folder of a
        DICOM file (a series) or the NIfTI file itself (one volume)."""
        return self.patient_id or str(self.path if self.kind == "nifti" else self.path.parent)


def apply_window(values: np.ndarray | Tensor, center: float, width: float):
    """DICOM linear VOI window (PS3.3 C.11.2.1.2.1) onto [0, 1]; ``values`` in modality units.

    Below ``center - 0.5 - (width - 1) / 2``: 0; above ``center - 0.5 + (width - 1) / 2``: 1.
    """
    if not width >= 1:
        raise DataError(f"window width {width} must be at least 1 (data.window=[center,width]).")
    y = (values - (center - 0.5)) / (width - 1) + 0.5
    return y.clamp(0, 1) if isinstance(y, Tensor) else np.clip(y, 0, 1)


# -- files -----------------------------------------------------------------------------------
def medical_kind(path: str | Path) -> str | None:
    """``"dicom"``, ``"nifti"`` or None, from the suffix (or the DICM magic for names without one)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if path.suffix.lower() in DICOM_SUFFIXES:
        return "dicom"
    if path.suffix == "" and path.is_file():  # scanners often write slices without a suffix
        with contextlib.suppress(OSError), open(path, "rb") as f:
            f.seek(_DICM_OFFSET)
            if f.read(4) == b"DICM":
                return "dicom"
    return None


def medical_stem(path: str | Path) -> str:
    """The file name without ``.nii.gz`` / ``.nii`` / ``.dcm``: the output's name."""
    name = Path(path).name
    for suffix in (".nii.gz", *NIFTI_SUFFIXES, *DICOM_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_medical(
    folder: str | Path, kinds: tuple[str, ...] = ("dicom", "nifti"), recursive: bool = False
) -> list[Path]:
    """DICOM / NIfTI files of ``folder`` (hidden files skipped), sorted by relative path."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    files = [
        p
        for p in folder.glob(pattern)
        if not p.name.startswith(".") and p.is_file() and medical_kind(p) in kinds
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())
