"""Y-channel PSNR/SSIM: protocol values, an independent numpy SSIM, masks, errors, torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from medsr.metrics import PSNRY, SSIMY, psnr_y, ssim_y
from medsr.ops import rgb_to_y
from medsr.ops.color import rgb_to_y as rgb_to_y_color


def _pair(shape, seed=0, noise=0.05):
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(shape, generator=gen, dtype=torch.float64)
    sr = (hr + noise * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return sr, hr


# --- independent numpy references ---------------------------------------------------------------


def np_y(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> Y on 0-255 (BT.601 studio range for RGB; x255 for gray)."""
    if img.shape[0] == 1:
        return img[0] * 255.0
    r, g, b = img
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def np_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al. SSIM map with an explicit 11x11 window over every valid position."""
    r = np.arange(11) - 5
    window = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def filt(x):
        return np.einsum("ijkl,kl->ij", sliding_window_view(x, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


# --- colour ------------------------------------------------------------------------------------


def test_rgb_to_y_is_matlab_rgb2ycbcr_luma():
    colours = torch.tensor(
        [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.25, 1]], dtype=torch.float64
    )
    y = rgb_to_y(colours.view(1, 6, 3).permute(2, 0, 1).unsqueeze(0)).flatten()
    expected = torch.tensor(
        [
            16.0,
            235.0,
            16 + 65.481,
            16 + 128.553,
            16 + 24.966,
            16 + 0.5 * 65.481 + 0.25 * 128.553 + 24.966,
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    assert rgb_to_y is rgb_to_y_color
    assert rgb_to_y(torch.rand(3, 4, 5)).shape == (1, 4, 5)
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(torch.rand(1, 4, 5, 5))


# --- PSNR --------------------------------------------------------------------------------------


def test_identical_images_give_inf_psnr_and_unit_ssim():
    x = torch.rand(2, 3, 24, 24)
    assert torch.isinf(psnr_y(x, x, 2)).all()
    torch.testing.assert_close(
        ssim_y(x, x, 2), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_psnr_of_a_known_error_on_grayscale():
    hr = torch.full((1, 1, 20, 20), 0.5, dtype=torch.float64)
    sr = hr + 2 / 255  # every pixel off by 2 levels: MSE 4 on the 0-255 scale
    torch.testing.assert_close(
        psnr_y(sr, hr, 0), torch.tensor([10 * math.log10(255**2 / 4)], dtype=torch.float64)
    )


def test_gray_rgb_image_equals_its_studio_range_single_channel():
    # R = G = B = v has Y = 16 + 219 v (the coefficients sum to 219), so the RGB path must equal
    # the single-channel path (no offset, x255) fed (16 + 219 v) / 255.
    sr1, hr1 = _pair((2, 1, 30, 26), seed=1)
    to_studio = lambda v: (16 + 219 * v) / 255  # noqa: E731
    rgb = psnr_y(sr1.expand(-1, 3, -1, -1), hr1.expand(-1, 3, -1, -1), 3)
    gray = psnr_y(to_studio(sr1), to_studio(hr1), 3)
    torch.testing.assert_close(rgb, gray, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        ssim_y(sr1.expand(-1, 3, -1, -1), hr1.expand(-1, 3, -1, -1), 3),
        ssim_y(to_studio(sr1), to_studio(hr1), 3),
        rtol=0,
        atol=1e-12,
    )


def test_psnr_matches_numpy_on_y_with_crop():
    sr, hr = _pair((3, 3, 21, 17), seed=2)
    got = psnr_y(sr, hr, 4)
    for i in range(3):
        d = np_y(sr[i].numpy())[4:-4, 4:-4] - np_y(hr[i].numpy())[4:-4, 4:-4]
        assert got[i].item() == pytest.approx(10 * np.log10(255**2 / np.mean(d**2)), abs=1e-10)


def test_batch_gives_per_image_values():
    sr, hr = _pair((3, 3, 32, 28), seed=3)
    sr[1] = hr[1] + 0.2 * (sr[1] - hr[1])  # a much closer second pair
    batch_p, batch_s = psnr_y(sr, hr, 2), ssim_y(sr, hr, 2)
    assert batch_p.shape == batch_s.shape == (3,) and batch_p.dtype == torch.float64
    for i in range(3):
        torch.testing.assert_close(batch_p[i : i + 1], psnr_y(sr[i : i + 1], hr[i : i + 1], 2))
        torch.testing.assert_close(batch_s[i : i + 1], ssim_y(sr[i : i + 1], hr[i : i + 1], 2))
    assert batch_p[1] > batch_p[0] + 10 and batch_s[1] > batch_s[0]


def test_border_pixels_are_ignored():
    sr, hr = _pair((1, 3, 30, 30), seed=4)
    changed = sr.clone()
    changed[..., :3, :] = 0.0
    changed[..., :, -3:] = 1.0
    torch.testing.assert_close(psnr_y(changed, hr, 3), psnr_y(sr, hr, 3))
    torch.testing.assert_close(ssim_y(changed, hr, 3), ssim_y(sr, hr, 3))
    assert psnr_y(changed, hr, 2) < psnr_y(sr, hr, 2)


def test_float32_inputs_accumulate_in_float64():
    sr, hr = _pair((2, 3, 40, 40), seed=5, noise=1e-3)
    torch.testing.assert_close(
        psnr_y(sr.float(), hr.float(), 4), psnr_y(sr.float().double(), hr.float().double(), 4)
    )


# --- SSIM --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "crop"), [(3, 0), (3, 2), (1, 3)])
def test_ssim_matches_independent_numpy(channels, crop):
    sr, hr = _pair((2, channels, 25, 19), seed=6, noise=0.1)
    got = ssim_y(sr, hr, crop)
    for i in range(2):
        a = np_y(sr[i].numpy())[crop : 25 - crop, crop : 19 - crop]
        b = np_y(hr[i].numpy())[crop : 25 - crop, crop : 19 - crop]
        assert got[i].item() == pytest.approx(np_ssim_map(a, b).mean(), abs=1e-10)
    assert 0.1 < got.min() and got.max() < 0.99  # a case where the value means something


def test_ssim_falls_with_noise():
    values = [ssim_y(*_pair((1, 3, 40, 40), seed=7, noise=n), 0).item() for n in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2]


# --- masks -------------------------------------------------------------------------------------


def _disc_mask(b, h, w, radius):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < radius**2
    return disc.expand(b, 1, h, w).clone()


def test_psnr_mask_uses_only_pixels_inside():
    sr, hr = _pair((2, 3, 36, 40), seed=8)
    mask = _disc_mask(2, 36, 40, 14)
    got = psnr_y(sr, hr, 2, mask=mask)
    for i in range(2):
        m = mask[i, 0, 2:-2, 2:-2].numpy()
        d = (np_y(sr[i].numpy()) - np_y(hr[i].numpy()))[2:-2, 2:-2][m]
        assert got[i].item() == pytest.approx(10 * np.log10(255**2 / np.mean(d**2)), abs=1e-10)
    # Damage outside the field of view: the masked value does not move, the plain one does.
    outside = torch.where(mask, sr, torch.zeros_like(sr))
    torch.testing.assert_close(psnr_y(outside, hr, 2, mask=mask), got)
    assert (psnr_y(outside, hr, 2) < psnr_y(sr, hr, 2)).all()
    full = torch.ones_like(mask)
    torch.testing.assert_close(psnr_y(sr, hr, 2, mask=full), psnr_y(sr, hr, 2))


def test_ssim_mask_averages_windows_centred_inside():
    sr, hr = _pair((2, 3, 36, 40), seed=9, noise=0.1)
    mask = _disc_mask(2, 36, 40, 12)
    mask[1, 0, :, :20] = False  # different masks per image
    crop = 3
    got = ssim_y(sr, hr, crop, mask=mask)
    for i in range(2):
        a = np_y(sr[i].numpy())[crop:-crop, crop:-crop]
        b = np_y(hr[i].numpy())[crop:-crop, crop:-crop]
        centres = mask[i, 0, crop:-crop, crop:-crop].numpy()[5:-5, 5:-5]
        assert got[i].item() == pytest.approx(np_ssim_map(a, b)[centres].mean(), abs=1e-10)
    torch.testing.assert_close(
        ssim_y(sr, hr, crop, mask=torch.ones_like(mask)), ssim_y(sr, hr, crop)
    )


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [psnr_y, ssim_y])
@pytest.mark.parametrize(
    ("sr_shape", "hr_shape", "crop", "match"),
    [
        ((1, 3, 20, 20), (1, 3, 20, 22), 0, "shapes differ"),
        ((1, 2, 20, 20), (1, 2, 20, 20), 0, "RGB"),
        ((3, 20, 20), (3, 20, 20), 0, "RGB"),
        ((1, 3, 20, 20), (1, 3, 20, 20), 10, "removes all"),
        ((1, 3, 20, 20), (1, 3, 20, 20), -1, "crop_border"),
    ],
)
def test_bad_inputs_raise(fn, sr_shape, hr_shape, crop, match):
    with pytest.raises(ValueError, match=match):
        fn(torch.rand(sr_shape), torch.rand(hr_shape), crop)


@pytest.mark.parametrize("fn", [psnr_y, ssim_y])
def test_bad_masks_raise(fn):
    sr, hr = _pair((2, 3, 30, 30))
    empty = torch.zeros(2, 1, 30, 30, dtype=torch.bool)
    empty[0, 0, 10:20, 10:20] = True  # image 1 has nothing inside
    with pytest.raises(ValueError, match=r"no pixel of image\(s\) \[1\]"):
        fn(sr, hr, 2, mask=empty)
    with pytest.raises(ValueError, match="mask must be a bool"):
        fn(sr, hr, 2, mask=torch.ones(2, 1, 30, 30))
    with pytest.raises(ValueError, match="mask must be a bool"):
        fn(sr, hr, 2, mask=torch.ones(2, 1, 30, 29, dtype=torch.bool))


def test_ssim_needs_a_full_window_after_cropping():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_y(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), 3)


# --- torchmetrics wrappers ---------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "fn"), [(PSNRY, psnr_y), (SSIMY, ssim_y)])
def test_metric_class_is_the_mean_over_all_images(cls, fn):
    a_sr, a_hr = _pair((3, 3, 24, 24), seed=10)
    b_sr, b_hr = _pair((2, 3, 24, 24), seed=11, noise=0.02)
    metric = cls(crop_border=2)
    metric.update(a_sr, a_hr)
    metric.update(b_sr, b_hr)
    expected = torch.cat([fn(a_sr, a_hr, 2), fn(b_sr, b_hr, 2)]).mean()
    torch.testing.assert_close(metric.compute(), expected)
    metric.reset()
    metric.update(b_sr, b_hr)
    torch.testing.assert_close(metric.compute(), fn(b_sr, b_hr, 2).mean())


@pytest.mark.parametrize(("cls", "fn"), [(PSNRY, psnr_y), (SSIMY, ssim_y)])
def test_metric_class_merges_like_ddp_and_passes_masks(cls, fn):
    # merge_state applies dist_reduce_fx, as the all-gather under DDP does: sum + count, so the
    # result is the mean over images, not the mean of per-process means.
    a_sr, a_hr = _pair((3, 3, 24, 24), seed=12)
    b_sr, b_hr = _pair((1, 3, 24, 24), seed=13, noise=0.01)
    mask_a = _disc_mask(3, 24, 24, 9)
    rank0, rank1 = cls(crop_border=2), cls(crop_border=2)
    rank0.update(a_sr, a_hr, mask=mask_a)
    rank1.update(b_sr, b_hr)
    rank0.merge_state(rank1)
    expected = torch.cat([fn(a_sr, a_hr, 2, mask=mask_a), fn(b_sr, b_hr, 2)]).mean()
    torch.testing.assert_close(rank0.compute(), expected)


def test_metric_class_rejects_bad_crop():
    with pytest.raises(ValueError, match="crop_border"):
        PSNRY(crop_border=-1)
