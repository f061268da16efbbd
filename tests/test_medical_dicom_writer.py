"""medsr.data.dicom_writer: a derived DICOM that pydicom reads, with the source's representation."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch

from medical_helpers import make_dicom, pydicom_file
from medsr.data import dicom_writer
from medsr.data.dicom import read_dicom
from medsr.data.dicom_writer import write_dicom
from medsr.data.medical import StoredRange
from medsr.errors import DataError
from medsr.ops import imresize

RNG = np.random.default_rng(3)


def _bicubic_stored(frames: np.ndarray, stored: StoredRange, scale: int) -> np.ndarray:
    """The medsr path: stored -> [0, 1] by the stored range -> imresize -> stored levels."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    return stored.from_unit(imresize(stored.to_unit(x), float(scale)).permute(0, 2, 3, 1))


def test_derived_ct_keeps_representation_and_identity(tmp_path):
    source = read_dicom(pydicom_file("CT_small.dcm"))
    pixels = _bicubic_stored(source.frames, source.meta.stored, 2)
    out = write_dicom(tmp_path / "CT_small.dcm", pixels, source, 2, "bicubic")
    src, ds = pydicom.dcmread(pydicom_file("CT_small.dcm")), pydicom.dcmread(out)
    # pydicom decodes what medsr wrote, value for value.
    np.testing.assert_array_equal(ds.pixel_array, pixels[0, ..., 0])
    assert (ds.Rows, ds.Columns) == (2 * src.Rows, 2 * src.Columns)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
        [float(v) / 2 for v in src.PixelSpacing]
    )
    for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope",
                    "RescaleIntercept", "PatientID", "PatientName", "StudyInstanceUID", "Modality",
                    "SOPClassUID", "SliceThickness", "ImagePositionPatient"):  # fmt: skip
        assert ds[keyword].value == src[keyword].value, keyword
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert "x2" in ds.DerivationDescription and "bicubic" in ds.DerivationDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # not the temp file's private mode


@pytest.mark.parametrize(("bits", "signed"), [(12, False), (12, True), (16, False), (16, True)])
def test_stored_values_survive_write_and_read(tmp_path, bits, signed):
    r = StoredRange(bits, signed)
    values = RNG.integers(r.low, r.high + 1, (2, 3, 4))
    source = read_dicom(make_dicom(tmp_path / "src.dcm", values, bits, signed))
    up = np.repeat(np.repeat(source.frames, 2, axis=1), 2, axis=2)  # any x2 result
    out = write_dicom(tmp_path / "out" / "up.dcm", up, source, 2, "nearest")
    back = read_dicom(out)
    np.testing.assert_array_equal(back.frames, up)
    assert back.meta.stored == r and back.meta.frames == 2
    ds = pydicom.dcmread(out)
    np.testing.assert_array_equal(ds.pixel_array, up[..., 0])  # pydicom agrees
    assert ds.NumberOfFrames == 2 and ds.PixelSpacing == [0.25, 0.375]


def test_one_series_uid_for_the_slices_of_one_series(tmp_path):
    source = read_dicom(pydicom_file("MR_small.dcm"))
    up = np.repeat(np.repeat(source.frames, 2, axis=1), 2, axis=2)
    uid = dicom_writer.new_uid()
    a = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", up, source, 2, "m", series_uid=uid))
    b = pydicom.dcmread(write_dicom(tmp_path / "b.dcm", up, source, 2, "m", series_uid=uid))
    assert a.SeriesInstanceUID == b.SeriesInstanceUID == uid
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_big_endian_and_overlay_sources(tmp_path):
    source = read_dicom(pydicom_file("MR_small_expb.dcm"))
    up = _bicubic_stored(source.frames, source.meta.stored, 2)
    np.testing.assert_array_equal(
        read_dicom(write_dicom(tmp_path / "be.dcm", up, source, 2, "b")).frames, up
    )
    overlay = read_dicom(pydicom_file("examples_overlay.dcm"))
    assert any(t.group == 0x6000 for t in overlay.header.keys())
    up = np.repeat(np.repeat(overlay.frames, 2, axis=1), 2, axis=2)
    ds = pydicom.dcmread(write_dicom(tmp_path / "ov.dcm", up, overlay, 2, "n"))
    assert not any(t.group == 0x6000 for t in ds.keys())  # drawn on the old grid: dropped
    assert ds.BitsStored == 12 and int(ds.pixel_array.max()) <= 4095


def test_rejects_wrong_shape_and_out_of_range_values(tmp_path):
    source = read_dicom(pydicom_file("CT_small.dcm"))
    with pytest.raises(DataError, match="expected \\(1, 256, 256, 1\\)"):
        write_dicom(tmp_path / "a.dcm", source.frames, source, 2, "m")
    twelve = read_dicom(make_dicom(tmp_path / "s.dcm", np.zeros((2, 2)), 12, False))
    with pytest.raises(DataError, match="outside the declared 12-bit unsigned"):
        write_dicom(tmp_path / "b.dcm", np.full((4, 4), 5000, np.uint16), twelve, 2, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dcm"]


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    source = read_dicom(pydicom_file("MR_small.dcm"))
    up = np.repeat(np.repeat(source.frames, 2, axis=1), 2, axis=2)
    target = tmp_path / "out.dcm"
    target.write_bytes(b"previous result")

    def killed(path, *args, **kwargs):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pydicom.filewriter, "dcmwrite", killed)
    with pytest.raises(KeyboardInterrupt):
        write_dicom(target, up, source, 2, "m")
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.dcm"]  # no temporary file left


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_contract_bicubic_x2_equals_imresize_of_the_stored_values(tmp_path, name):
    """DESIGN contract: bicubic x2 of the stored values, written and re-read by pydicom, equals
    MATLAB-bicubic imresize of the stored values (>= 99 % equal, none off by more than 1)."""
    source = read_dicom(pydicom_file(name))
    out = write_dicom(
        tmp_path / name, _bicubic_stored(source.frames, source.meta.stored, 2), source, 2, "bicubic"
    )
    stored = pydicom.dcmread(pydicom_file(name)).pixel_array.astype(np.float64)
    reference = imresize(torch.from_numpy(stored)[None, None], 2.0)[0, 0].numpy()
    reference = np.sign(reference) * np.floor(np.abs(reference) + 0.5)  # MATLAB round()
    lo, hi = source.meta.stored.low, source.meta.stored.high
    reference = np.clip(reference, lo, hi)
    diff = np.abs(pydicom.dcmread(out).pixel_array.astype(np.float64) - reference)
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.99
