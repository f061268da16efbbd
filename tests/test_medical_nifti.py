"""medsr.data.nifti: volumes as slices of stored integers; the upscaled volume's affine."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from medical_helpers import nibabel_file
from medsr.data.medical import StoredRange
from medsr.data.nifti import (
    read_nifti,
    read_nifti_slice,
    slice_count,
    upscaled_affine,
    write_nifti,
)
from medsr.errors import ConfigError, DataError


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_along_each_axis_hold_the_stored_values(axis):
    path = nibabel_file("anatomical.nii")
    volume = read_nifti(path, axis)
    data = np.asanyarray(nib.load(path).dataobj.get_unscaled())
    assert volume.slices.shape[0] == data.shape[axis] == slice_count(path, axis)
    for i in (0, data.shape[axis] // 2):
        np.testing.assert_array_equal(volume.slices[i, ..., 0], np.take(data, i, axis=axis))
    assert volume.meta.stored == StoredRange(16, signed=True) and volume.slices.dtype == np.int16
    np.testing.assert_array_equal(read_nifti_slice(path, 3, axis), volume.slices[3])


def test_four_d_volume_gives_every_slice_of_every_time_point():
    path = nibabel_file("example4d.nii.gz")
    volume = read_nifti(path, 2)
    data = np.asanyarray(nib.load(path).dataobj.get_unscaled())  # (128, 96, 24, 2)
    assert volume.slices.shape == (48, 128, 96, 1)
    np.testing.assert_array_equal(volume.slices[24 + 5, ..., 0], data[:, :, 5, 1])  # time-major
    for index in (0, 29, 47):  # one slice read alone is the same slice
        np.testing.assert_array_equal(read_nifti_slice(path, index, 2), volume.slices[index])
    np.testing.assert_array_equal(read_nifti_slice(path, 100, 0), read_nifti(path, 0).slices[100])
    assert volume.meta.pixel_spacing == pytest.approx((2.0, 2.0))


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


@pytest.mark.parametrize(
    ("name", "axis"), [("anatomical.nii", 2), ("anatomical.nii", 0), ("example4d.nii.gz", 2)]
)
def test_write_divides_the_in_plane_voxel_size_and_keeps_the_field_of_view(tmp_path, name, axis):
    volume = read_nifti(nibabel_file(name), axis)
    up = np.repeat(np.repeat(volume.slices, 2, axis=1), 2, axis=2)
    out = write_nifti(tmp_path / name, up, volume, 2)
    src, img = nib.load(nibabel_file(name)), nib.load(out)
    expected_size = np.array(src.shape[:3]) * np.where(np.arange(3) == axis, 1, 2)
    assert img.shape[:3] == tuple(expected_size) and img.shape[3:] == src.shape[3:]
    ratio = _voxel_sizes(src.affine) / _voxel_sizes(img.affine)
    np.testing.assert_allclose(ratio, np.where(np.arange(3) == axis, 1, 2))
    # The outer corner of the grid (voxel index -0.5) stays at the same world position.
    corner = np.array([-0.5, -0.5, -0.5, 1.0])
    np.testing.assert_allclose(img.affine @ corner, src.affine @ corner, atol=1e-5)
    assert img.get_data_dtype() == src.get_data_dtype()
    assert int(img.header["sform_code"]) == int(src.header["sform_code"])
    np.testing.assert_array_equal(read_nifti(out, axis).slices, up)


def test_slope_and_intercept_are_kept_not_applied(tmp_path):
    src = nib.load(nibabel_file("anatomical.nii"))
    raw = np.asanyarray(src.dataobj.get_unscaled())
    scaled = nib.Nifti1Image(raw, src.affine, header=src.header.copy())
    scaled.header.set_slope_inter(2.0, -100.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(scaled, path)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.slices[..., 0], np.moveaxis(raw, 2, 0))
    assert (volume.meta.slope, volume.meta.intercept) == (2.0, -100.0)
    out = nib.load(
        write_nifti(
            tmp_path / "up.nii.gz", np.repeat(np.repeat(volume.slices, 2, 1), 2, 2), volume, 2
        )
    )
    assert (out.dataobj.slope, out.dataobj.inter) == (2.0, -100.0)


def test_upscaled_affine_maps_new_voxel_centres_onto_the_old_grid():
    affine = np.array([[-2.0, 0, 0, 32], [0, 2, 0, -40], [0, 0, 3, -16], [0, 0, 0, 1]])
    new = upscaled_affine(affine, 2, 4)
    # New voxel (0, 0, k) is centred at old index (0.5 / 4 - 0.5) in-plane, k through-plane.
    np.testing.assert_allclose(new @ [0, 0, 5, 1], affine @ [0.125 - 0.5, 0.125 - 0.5, 5, 1])


def test_bad_volumes(tmp_path):
    with pytest.raises(DataError, match="floating-point voxels"):
        read_nifti(nibabel_file("reoriented_anat_moved.nii"))
    data = gzip.decompress(nibabel_file("example4d.nii.gz").read_bytes())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(data[: len(data) // 2]))
    with pytest.raises(DataError, match=f"{cut}: .*(truncated|not a readable)"):
        read_nifti(cut)
    with pytest.raises(ConfigError, match="data.slice_axis=3"):
        read_nifti(nibabel_file("anatomical.nii"), 3)
    with pytest.raises(DataError, match="does not exist"):
        read_nifti(tmp_path / "absent.nii")
    volume = read_nifti(nibabel_file("anatomical.nii"))
    with pytest.raises(DataError, match="expected"):
        write_nifti(tmp_path / "x.nii", volume.slices, volume, 2)
