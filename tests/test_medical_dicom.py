"""medsr.data.dicom: stored values as the scanner wrote them, metadata, multi-frame, series, bad files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels.decoders.base import Decoder

from medical_helpers import make_dicom, pydicom_file
from medsr.data.dicom import dicom_info, read_dicom, read_series
from medsr.data.medical import StoredRange, apply_window, list_medical, medical_kind
from medsr.errors import DataError

RNG = np.random.default_rng(7)


def test_ct_small_keeps_signed_stored_values_and_metadata():
    path = pydicom_file("CT_small.dcm")
    image = read_dicom(path)
    reference = pydicom.dcmread(path).pixel_array
    assert image.frames.shape == (1, 128, 128, 1) and image.frames.dtype == np.int16
    np.testing.assert_array_equal(image.frames[0, ..., 0], reference)
    meta = image.meta
    assert meta.stored == StoredRange(16, signed=True)
    assert (meta.slope, meta.intercept) == (1.0, -1024.0)  # HU = stored - 1024, not applied
    assert meta.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert (meta.patient_id, meta.modality) == ("1CT1", "CT")
    np.testing.assert_array_equal(meta.physical(image.frames), image.frames - 1024.0)
    assert "PixelData" not in image.header  # the writer's template holds no stale pixels


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("MR_small_RLE.dcm", None),
        ("MR_small_jp2klossless.dcm", "pylibjpeg-openjpeg"),
        ("MR_small_jpeg_ls_lossless.dcm", "pylibjpeg-libjpeg"),
    ],
)
def test_lossless_compressed_files_decode_to_the_uncompressed_values(name, package):
    plain = read_dicom(pydicom_file("MR_small.dcm")).frames
    ts = pydicom.dcmread(pydicom_file(name), stop_before_pixels=True).file_meta.TransferSyntaxUID
    from pydicom.pixels.decoders.base import get_decoder

    if get_decoder(ts).is_available:
        np.testing.assert_array_equal(read_dicom(pydicom_file(name)).frames, plain)
    else:  # the environment lacks the plugin: the message must say which one
        with pytest.raises(DataError, match=package):
            read_dicom(pydicom_file(name))


@pytest.mark.parametrize(("bits", "signed"), [(12, False), (12, True), (16, False), (16, True)])
def test_stored_values_round_trip_exactly(tmp_path, bits, signed):
    r = StoredRange(bits, signed)
    values = RNG.integers(r.low, r.high + 1, (2, 5, 7))
    values[0, 0, :2] = r.low, r.high  # both ends of the range
    image = read_dicom(make_dicom(tmp_path / "a.dcm", values, bits, signed))
    assert image.meta.stored == r and image.frames.dtype == r.dtype
    np.testing.assert_array_equal(image.frames[..., 0], values)


@pytest.mark.parametrize("signed", [False, True])
def test_unused_high_bits_are_masked_and_sign_extended(tmp_path, signed):
    values = np.array([[0, 1, 2047, 4095 if not signed else -1, -2048 if signed else 3000]])
    words = (values & 0x0FFF) | 0xA000  # garbage (e.g. overlay bits) above bit 11
    path = make_dicom(tmp_path / "a.dcm", values, 12, signed, raw_words=words.astype(np.uint16))
    np.testing.assert_array_equal(read_dicom(path).frames[0, ..., 0], values)


def test_multi_frame_each_frame_an_image(tmp_path):
    values = RNG.integers(-1000, 3000, (3, 6, 5))
    path = make_dicom(tmp_path / "mf.dcm", values, 16, True)
    image = read_dicom(path)
    assert image.frames.shape == (3, 6, 5, 1) and image.meta.frames == 3
    np.testing.assert_array_equal(read_dicom(path, index=2).frames[0, ..., 0], values[2])
    with pytest.raises(DataError, match="3 frame"):
        read_dicom(path, index=3)
    rgb = read_dicom(pydicom_file("SC_rgb_rle_2frame.dcm"))
    assert rgb.frames.shape == (2, 100, 100, 3) and rgb.meta.channels == 3
    second = read_dicom(pydicom_file("SC_rgb_rle_2frame.dcm"), index=1).frames
    np.testing.assert_array_equal(second[0], rgb.frames[1])  # one RLE frame decoded alone


def test_folder_of_slices_sorted_along_the_normal(tmp_path):
    series = pydicom.uid.generate_uid()
    z_order = [5.0, -2.5, 1.0]
    for i, z in enumerate(z_order):
        name = f"IM{i:04d}"  # scanners often write no suffix: found by the DICM marker
        make_dicom(
            tmp_path / name, np.full((4, 4), i), 16, True, SeriesInstanceUID=series,
            ImagePositionPatient=[0, 0, z], ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        )  # fmt: skip
    (tmp_path / "notes.txt").write_text("not an image")
    assert (
        medical_kind(tmp_path / "IM0000") == "dicom"
        and medical_kind(tmp_path / "notes.txt") is None
    )
    assert len(list_medical(tmp_path)) == 3
    slices = read_series(tmp_path)
    assert [int(s.frames[0, 0, 0, 0]) for s in slices] == [1, 2, 0]  # z = -2.5, 1, 5
    make_dicom(tmp_path / "other.dcm", np.zeros((4, 4)), 16, True)  # another series
    with pytest.raises(DataError, match="mixes 2 series"):
        read_series(tmp_path)


def test_window_is_metadata_applied_only_when_asked():
    meta = read_dicom(pydicom_file("MR_small.dcm")).meta
    assert meta.window == (600.0, 1600.0)
    center, width = meta.window
    y = apply_window(
        np.array([-1e6, center - 0.5, 1e6, center - 0.5 + (width - 1) / 4]), center, width
    )
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0, 0.75])  # DICOM PS3.3 C.11.2.1.2.1


# -- bad input: one clear DataError naming the file ---------------------------------------------
def _cut(tmp_path, name: str, keep: int):
    data = pydicom_file(name).read_bytes()
    path = tmp_path / f"cut_{name}"
    path.write_bytes(data[:keep])
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: pydicom_file("rtplan.dcm"), "RT Plan Storage object, not an image"),
        (lambda t: pydicom_file("test-SR.dcm"), "SR Storage object, not an image"),
        (lambda t: pydicom_file("MR_truncated.dcm"), "truncated DICOM file"),
        (lambda t: _cut(t, "CT_small.dcm", 20000), "truncated DICOM file"),
        (lambda t: _cut(t, "CT_small.dcm", 1000), "truncated"),
        (lambda t: pydicom_file("examples_palette.dcm"), "PALETTE COLOR"),
        (lambda t: pydicom_file("rtdose.dcm"), "not an image"),
    ],
    ids=["rt-plan", "sr", "truncated-pixels", "cut-in-pixels", "cut-in-header", "palette", "dose"],
)
def test_bad_files_get_one_clear_error_naming_them(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as err:
        read_dicom(path)
    assert str(path) in str(err.value)


def test_no_pixel_data_and_not_dicom(tmp_path):
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    del ds.PixelData
    stripped = tmp_path / "stripped.dcm"
    ds.save_as(stripped)
    with pytest.raises(DataError, match=f"{stripped}.*no pixel data"):
        read_dicom(stripped)
    with pytest.raises(DataError, match=f"{stripped}.*no pixel data"):
        dicom_info(stripped)
    text = tmp_path / "report.dcm"
    text.write_text("hello")
    with pytest.raises(DataError, match=f"{text} is not a DICOM file"):
        read_dicom(text)
    with pytest.raises(DataError, match="does not exist"):
        read_dicom(tmp_path / "absent.dcm")


def test_compressed_without_a_decoder_names_the_syntax_and_the_package(monkeypatch):
    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    path = pydicom_file("MR_small_jp2klossless.dcm")
    with pytest.raises(DataError) as err:
        read_dicom(path)
    message = str(err.value)
    assert str(path) in message and "JPEG 2000 Image Compression (Lossless Only)" in message
    assert "pylibjpeg-openjpeg" in message and message.count("\n") == 0


def test_a_syntax_no_python_decoder_handles(tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"
    ds.save_as(tmp_path / "htj2k.dcm")
    # JPEG XL lossless (DICOM 2024), unknown to pydicom 3.0: same UID length, so swap the bytes.
    data = (
        (tmp_path / "htj2k.dcm")
        .read_bytes()
        .replace(b"1.2.840.10008.1.2.4.201", b"1.2.840.10008.1.2.4.110")
    )
    path = tmp_path / "jxl.dcm"
    path.write_bytes(data)
    with pytest.raises(DataError, match=f"{path}: no Python decoder.*1.2.840.10008.1.2.4.110"):
        read_dicom(path)


def test_info_reads_the_header_only():
    meta = dicom_info(pydicom_file("examples_overlay.dcm"))
    assert meta.stored == StoredRange(12, signed=False)
    assert (meta.extra["rows"], meta.extra["columns"]) == (300, 484)


@pytest.mark.parametrize(("bits", "signed"), [(8, False), (12, True), (16, False), (16, True)])
def test_stored_range_maps_every_level_to_unit_and_back(bits, signed):
    import torch

    r = StoredRange(bits, signed)
    levels = torch.arange(r.low, r.high + 1, dtype=torch.int64)
    unit = r.to_unit(levels)
    assert float(unit.min()) == 0.0 and float(unit.max()) == 1.0
    np.testing.assert_array_equal(r.from_unit(unit), levels.numpy())
    assert torch.equal(r.quantize(unit + 0.4 / r.peak), unit)  # within half a level: unchanged
    assert r.peak == 2**bits - 1
