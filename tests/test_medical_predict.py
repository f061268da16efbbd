"""``medsr.predict`` on DICOM and NIfTI, through the entry point (the DESIGN contract of turn 2)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from helpers import run_module
from medical_helpers import nibabel_file, pydicom_file
from medsr.data.dicom import read_dicom
from medsr.models import build_model, save_weights
from medsr.ops import imresize

pytestmark = pytest.mark.slow  # each test runs the entry point


def _matlab_round(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@pytest.fixture(scope="module")
def bicubic_run(tmp_path_factory):
    """One predict run over CT_small, MR_small, a 12-bit MR, an RGB multi-frame file and a NIfTI."""
    root = tmp_path_factory.mktemp("medical_in")
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "SC_rgb_rle_2frame.dcm"):
        shutil.copy(pydicom_file(name), root / name)
    shutil.copy(nibabel_file("anatomical.nii"), root / "anatomical.nii")
    out = tmp_path_factory.mktemp("medical_out")
    result = run_module(
        "medsr.predict", "model=bicubic", "scale=2", f"input={root}", f"output={out}",
        "progress=false", run_dir=out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root, out


@pytest.mark.parametrize("name", ["CT_small", "MR_small"])
def test_contract_bicubic_dicom_out(bicubic_run, name):
    root, out = bicubic_run
    src, ds = pydicom.dcmread(root / f"{name}.dcm"), pydicom.dcmread(out / f"{name}.dcm")
    for keyword in ("BitsAllocated", "BitsStored", "PixelRepresentation", "PatientID",
                    "StudyInstanceUID", "SOPClassUID"):  # fmt: skip
        assert ds[keyword].value == src[keyword].value, keyword
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        assert ds.get(keyword) == src.get(keyword), keyword
    assert (ds.Rows, ds.Columns) == (2 * src.Rows, 2 * src.Columns)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
        [float(v) / 2 for v in src.PixelSpacing]
    )
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert "DERIVED" in ds.ImageType and "x2" in ds.DerivationDescription
    stored = src.pixel_array.astype(np.float64)
    reference = _matlab_round(imresize(torch.from_numpy(stored)[None, None], 2.0)[0, 0].numpy())
    diff = np.abs(ds.pixel_array.astype(np.float64) - reference)
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.99


def test_twelve_bit_rgb_and_nifti_outputs(bicubic_run):
    root, out = bicubic_run
    twelve = read_dicom(out / "examples_overlay.dcm")
    assert twelve.meta.stored.bits == 12 and int(twelve.frames.max()) <= 4095
    assert twelve.frames.shape == (1, 600, 968, 1)
    rgb = read_dicom(out / "SC_rgb_rle_2frame.dcm")
    assert rgb.frames.shape == (2, 200, 200, 3)  # every frame, one file
    src, img = nib.load(root / "anatomical.nii"), nib.load(out / "anatomical.nii")
    assert img.shape == (66, 82, 25) and img.get_data_dtype() == src.get_data_dtype()
    np.testing.assert_allclose(img.header.get_zooms(), [1.0, 1.0, 2.0])


def test_one_channel_network_normalises_as_training_does(tmp_path):
    """A one-channel network's output equals net(stored / range) rounded back to stored values;
    an RGB DICOM into it fails with its name while the other file is written."""
    torch.manual_seed(0)
    net = build_model("edsr", 2, num_feat=8, num_block=1, num_in_ch=1, num_out_ch=1,
                      rgb_mean=[0.5], img_range=4080.0)  # fmt: skip
    ckpt = save_weights(net, tmp_path / "grey.pth")
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), root / "CT_small.dcm")
    shutil.copy(pydicom_file("SC_rgb_rle_2frame.dcm"), root / "colour.dcm")
    out = tmp_path / "out"
    result = run_module(
        "medsr.predict", f"ckpt={ckpt}", f"input={root}", f"output={out}", "progress=false",
        "tile=0", run_dir=out,
    )  # fmt: skip
    assert result.returncode == 1  # one file failed, the other was written
    assert "colour.dcm has 3 channel(s)" in result.stdout + result.stderr
    source = read_dicom(root / "CT_small.dcm")
    r = source.meta.stored
    with torch.no_grad():
        x = r.to_unit(torch.from_numpy(source.frames).permute(0, 3, 1, 2))
        expected = r.from_unit(net.eval()(x).permute(0, 2, 3, 1))
    got = read_dicom(out / "CT_small.dcm").frames
    assert np.abs(got.astype(np.int64) - expected).max() <= 1  # float rounding at most
    assert (got == expected).mean() > 0.99


def test_png_output_only_for_unsigned_single_frames(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), root / "CT_small.dcm")  # signed
    shutil.copy(pydicom_file("examples_overlay.dcm"), root / "mr12.dcm")  # 12-bit unsigned
    out = tmp_path / "out"
    result = run_module(
        "medsr.predict", "model=bicubic", "scale=2", f"input={root}", f"output={out}",
        "format=png", "progress=false", run_dir=out,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot hold signed stored values" in result.stdout + result.stderr
    from medsr.data.image_io import read_image

    png = read_image(out / "mr12.png")
    assert png.dtype == np.uint16 and png.shape == (600, 968, 1) and int(png.max()) <= 4095


def test_the_trained_range_and_window_travel_with_the_weights(tmp_path):
    """A network trained on 16-bit signed values (data.bits=16) normalises a 12-bit file by that
    range, not the file's own; one trained on a CT window gets the window and its inverse back."""
    from medsr.data.medical import StoredRange
    from medsr.evaluation.inference import Upscaler
    from medsr.evaluation.networks import load_network
    from medsr.evaluation.volumes import upscale_stored

    torch.manual_seed(0)
    ct = read_dicom(pydicom_file("CT_small.dcm"))
    mr12 = read_dicom(pydicom_file("examples_overlay.dcm"))  # 12-bit unsigned
    trained_on = {
        "range": (StoredRange(16, signed=True), mr12),
        "window": (StoredRange(16, True, (40.0, 400.0, ct.meta.slope, ct.meta.intercept)), ct),
    }
    for name, (trained, source) in trained_on.items():
        net = build_model("edsr", 2, num_feat=8, num_block=1, num_in_ch=1, num_out_ch=1,
                          rgb_mean=[0.5], img_range=4080.0)  # fmt: skip
        net.medsr_spec["stored"] = trained.as_spec()
        loaded, scale, _ = load_network(str(save_weights(net, tmp_path / f"{name}.pth")), None)
        assert StoredRange.from_spec(loaded.medsr_spec["stored"]) == trained
        frames, own = source.frames[:, :48, :40], source.meta.stored
        got = upscale_stored(Upscaler(loaded, scale), frames, own, source.meta.path)
        with torch.no_grad():
            x = trained.to_unit(torch.from_numpy(frames.astype(np.float64)).permute(0, 3, 1, 2))
            y = net.eval()(x).permute(0, 2, 3, 1)
        expected = np.clip(trained.from_unit(y).astype(np.int64), own.low, own.high)
        assert got.dtype == own.dtype and got.shape == (1, 96, 80, 1)
        assert np.abs(got.astype(np.int64) - expected).max() <= 1, name
        assert (got == expected).mean() > 0.99, name
        del loaded.medsr_spec["stored"]  # a file without it: the file's own range
        own_range = upscale_stored(Upscaler(loaded, scale), frames, own, source.meta.path)
        assert (own_range != got).mean() > 0.5, name
