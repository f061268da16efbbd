"""End-to-end check of imresize + Y metrics: the published bicubic baselines (issue 2, point 5).

HR mod-cropped to the scale, LR = quantize(imresize(HR, 1/s)), SR = quantize(imresize(LR, s)),
PSNR/SSIM on Y with crop_border = s, averaged over the set. Published values as in the
EDSR/RCAN papers' bicubic rows (MATLAB).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.metrics import psnr_y, ssim_y
from medsr.ops import imresize, mod_crop, quantize
from published import N_IMAGES, PUBLISHED

PSNR_TOL, SSIM_TOL = 0.025, 0.0012
BATCH = 25  # B100 has two image shapes; batching keeps the test to a few dozen tensor ops


@lru_cache(maxsize=3)
def load_set(folder: Path) -> tuple[torch.Tensor, ...]:
    """HR images as float32 (1, C, H, W) in [0, 1]; mode L stays one channel (Set14 bridge)."""
    images = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as im:
            assert im.mode in ("RGB", "L"), f"{path.name}: unexpected mode {im.mode}"
            array = np.asarray(im)
        t = torch.from_numpy(array.copy())
        t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
        images.append(t.unsqueeze(0).float() / 255)
    return tuple(images)


def per_image_scores(
    images: tuple[torch.Tensor, ...], scale: int
) -> tuple[list[float], list[float]]:
    """Y-PSNR and Y-SSIM of bicubic down-and-up per image; same-shape images run as one batch."""
    groups: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for hr in images:
        hr = mod_crop(hr, scale)
        groups.setdefault(tuple(hr.shape), []).append(hr)
    psnrs, ssims = [], []
    for group in groups.values():
        for start in range(0, len(group), BATCH):
            hr = torch.cat(group[start : start + BATCH])
            lr = quantize(imresize(hr, 1 / scale))
            sr = quantize(imresize(lr, scale))
            assert sr.shape == hr.shape
            psnrs += psnr_y(sr, hr, scale).tolist()
            ssims += ssim_y(sr, hr, scale).tolist()
    return psnrs, ssims


@pytest.mark.parametrize(("name", "scale"), list(PUBLISHED))
def test_bicubic_baseline_reproduces_published_numbers(shared_data, name, scale):
    images = load_set(shared_data / "benchmark" / name / "HR")
    assert len(images) == N_IMAGES[name]
    psnrs, ssims = per_image_scores(images, scale)
    assert len(psnrs) == len(ssims) == N_IMAGES[name]
    psnr, ssim = float(np.mean(psnrs)), float(np.mean(ssims))
    want_psnr, want_ssim = PUBLISHED[(name, scale)]
    assert abs(psnr - want_psnr) <= PSNR_TOL, (
        f"{name} x{scale}: PSNR {psnr:.4f} vs published {want_psnr}"
    )
    assert abs(ssim - want_ssim) <= SSIM_TOL, (
        f"{name} x{scale}: SSIM {ssim:.5f} vs published {want_ssim}"
    )


def test_set14_bridge_is_compared_on_its_own_channel(shared_data):
    with Image.open(shared_data / "benchmark" / "Set14" / "HR" / "bridge.png") as im:
        assert im.mode == "L"
    bridge = [im for im in load_set(shared_data / "benchmark" / "Set14" / "HR") if im.shape[1] == 1]
    assert len(bridge) == 1
