"""Field-of-view masks against DRIVE's own masks, and training patches drawn inside the FOV."""

from __future__ import annotations

import numpy as np
import pytest

from medsr.data.decode import FovOptions
from medsr.data.fov import find_mask_file, fov_mask, load_mask, mask_iou
from medsr.data.image_io import read_image
from medsr.data.patches import draw_patches, patch_position


@pytest.fixture(scope="module")
def drive(shared_data):
    """(image, DRIVE mask, name) for all 40 DRIVE images."""
    out = []
    for split in ("train", "test"):
        root = shared_data / "fundus" / "DRIVE" / split
        for path in sorted((root / "images").glob("*.png")):
            mask = load_mask(find_mask_file(root / "mask", path.stem))
            out.append((read_image(path), mask, path.name))
    assert len(out) == 40
    return out


def test_fov_mask_matches_drive_masks(drive):
    ious = {name: mask_iou(fov_mask(image), mask) for image, mask, name in drive}
    worst = min(ious, key=ious.get)
    print(
        f"FOV IoU vs DRIVE masks over {len(ious)} images: min {ious[worst]:.4f} ({worst}), mean {np.mean(list(ious.values())):.4f}"
    )
    assert ious[worst] >= 0.95, f"{worst}: IoU {ious[worst]:.4f}"
    assert np.mean(list(ious.values())) >= 0.98


def test_fov_mask_is_bit_depth_and_gray_independent(drive):
    image, mask, _ = drive[0]
    m8 = fov_mask(image)
    m16 = fov_mask(image.astype(np.uint16) * 257)
    assert mask_iou(m8, m16) > 0.999
    gray = image.max(axis=-1, keepdims=True)  # brightest channel, as fov_mask uses
    assert mask_iou(fov_mask(gray), m8) > 0.999
    assert (
        mask_iou(fov_mask(image[..., :1]), mask) > 0.9
    )  # the red channel alone still finds the disc


def test_fov_mask_fills_dark_lesions_and_drops_specks(drive):
    image, mask, _ = drive[1]
    img = image.copy()
    ys, xs = np.nonzero(mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    img[cy - 30 : cy + 30, cx - 30 : cx + 30] = 0  # a black "lesion" inside the disc
    img[:12, :12] = 255  # a bright speck (burnt-in label) in a corner
    m = fov_mask(img)
    assert m[cy - 30 : cy + 30, cx - 30 : cx + 30].all()
    assert not m[:12, :12].any()
    assert mask_iou(m, mask) >= 0.95


def test_no_dark_surround_gives_full_mask(samples_dir):
    chelsea = read_image(samples_dir / "val" / "chelsea.png")
    assert fov_mask(chelsea).all()
    retina = read_image(samples_dir / "val" / "retina.jpg")  # CC0 fundus photo shipped in medsr
    fraction = fov_mask(retina).mean()
    assert 0.70 < fraction < 0.85  # a disc of diameter ~0.98 of the side covers pi/4 * 0.98^2


def test_load_mask_checks_size(drive, tmp_path):
    from medsr.data.image_io import write_image
    from medsr.errors import DataError

    path = write_image(tmp_path / "m_mask.png", np.zeros((10, 12, 1), np.uint8))
    assert find_mask_file(tmp_path, "m") == path
    with pytest.raises(DataError, match="mask_dir"):
        load_mask(path, (11, 12))


def test_patches_are_redrawn_until_inside_the_fov(drive):
    image, mask, _ = drive[2]
    rng = np.random.default_rng(0)
    p = 96
    fov = FovOptions(True, min_fraction=0.9)
    inside = []
    for _ in range(300):
        y, x = patch_position(mask, mask.shape, p, rng, fov)
        inside.append(mask[y : y + p, x : x + p].mean())
    assert min(inside) >= 0.9
    # Without the FOV rule, many uniform patches would be rejected: the rule is doing work.
    free = []
    for _ in range(300):
        y, x = patch_position(None, mask.shape, p, rng, fov)
        free.append(mask[y : y + p, x : x + p].mean())
    assert np.mean(np.array(free) < 0.9) > 0.2
    patches = draw_patches(image, mask, p, 5, rng, fov)
    assert all(q.shape == (p, p, 3) and q.dtype == np.uint8 for q in patches)


def test_impossible_fraction_keeps_the_best_candidate():
    mask = np.zeros((100, 100), bool)
    mask[:, :30] = True  # no 50x50 patch can be 90% inside
    rng = np.random.default_rng(1)
    y, x = patch_position(
        mask, mask.shape, 50, rng, FovOptions(True, min_fraction=0.9, max_tries=200)
    )
    assert mask[y : y + 50, x : x + 50].mean() >= 0.5  # the leftmost candidates win
