"""LR consistency, back-projection and TTA uncertainty (medsr.evaluation.consistency) on real images.

The references here are written independently of medsr: quantisation, Y conversion and PSNR
in numpy float64. Only MATLAB's imresize is taken from medsr.ops (tested against MATLAB's
own numbers in test_imresize.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image
from medsr.errors import ConfigError
from medsr.evaluation.consistency import (
    BackProjection,
    back_project,
    downscale_rows,
    lr_psnr,
    lr_residual,
    project,
    projected_radius,
    projecting,
    residual_summary,
    uncertainty_map,
)
from medsr.evaluation.heatmaps import colour_map, heat_map, nice_vmax, overlay
from medsr.metrics import psnr_y
from medsr.models import build_model
from medsr.ops import imresize, mod_crop, receptive_radius, self_ensemble, tiled_forward
from medsr.ops.ensemble import dihedral_outputs, self_ensemble_spread

SET5 = ("baby", "bird", "butterfly", "head", "woman")
SCALE = 4


def levels(x: torch.Tensor, bits: int) -> np.ndarray:
    """Reference rounding to integer levels, halves up, in float64."""
    peak = 2**bits - 1
    return np.floor(np.clip(x.double().numpy(), 0, 1) * peak + 0.5)


def reference_lr_psnr(sr: torch.Tensor, lr: torch.Tensor, bits: int) -> float:
    """The definition: PSNR on Y (grey: its channel) of round(imresize(SR, 1/s)) vs LR, peak =
    the source's full scale, no crop; levels converted to the 0-255 Y scale of rgb2ycbcr."""
    peak = 2**bits - 1
    down = levels(imresize(sr.double(), 1 / SCALE), bits)[0] / peak * 255
    ref = levels(lr, bits)[0] / peak * 255
    if down.shape[0] == 3:
        coef = np.array([65.481, 128.553, 24.966])[:, None, None] / 255
        down, ref = (coef * down).sum(0) + 16, (coef * ref).sum(0) + 16
    mse = np.mean((down - ref) ** 2)
    return 10 * math.log10(255**2 / mse)


def load(shared_data, name: str) -> torch.Tensor:
    path = shared_data / "benchmark" / "Set5" / "HR" / f"{name}.png"
    return mod_crop(to_float_tensor(read_image(path))[None], SCALE)


def degrade(hr: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.from_numpy(levels(imresize(hr, 1 / SCALE), bits) / (2**bits - 1)).float()


@pytest.fixture(scope="module")
def set5(shared_data) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(HR, LR) of Set5 at x4, LR = MATLAB bicubic rounded to 8 bits."""
    return [(hr, degrade(hr, 8)) for hr in (load(shared_data, n) for n in SET5)]


def bicubic(x: torch.Tensor) -> torch.Tensor:
    return imresize(x.float(), SCALE)


def quantize_to(x: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.from_numpy(levels(x, bits) / (2**bits - 1)).float()


def variant(hr: torch.Tensor, kind: str) -> tuple[torch.Tensor, int]:
    """(HR in [0, 1], bits) of an RGB / grey / 16-bit version of a real image."""
    if kind == "grey":
        return hr[:, 1:2], 8
    if kind == "16bit":  # content between the 8-bit levels, away from 0 and 1 (no clipping)
        return 0.1 + 0.8 * imresize(imresize(hr, 0.5), 2).clamp(0, 1), 16
    return hr, 8


@pytest.mark.parametrize("kind", ["rgb", "grey", "16bit"])
def test_lr_psnr_equals_the_definition(set5, kind):
    hr, bits = variant(set5[2][0], kind)
    lr = degrade(hr, bits)
    sr = quantize_to(bicubic(lr), bits)
    got = float(lr_psnr(sr, lr, SCALE, bits=bits)[0])
    assert got == pytest.approx(reference_lr_psnr(sr, lr, bits), abs=1e-6)
    projected = project(bicubic(lr), lr, SCALE, BackProjection(0.0, 30), bits=bits)
    got = float(lr_psnr(projected, lr, SCALE, bits=bits)[0])
    assert got == pytest.approx(reference_lr_psnr(projected, lr, bits), abs=1e-6)
    assert got >= 50
    if kind == "16bit":  # 119.5 dB measured; rounding to 8 bits anywhere would cap it near 66
        assert got >= 100


def test_bicubic_set5_lr_psnr_and_projection(set5):
    """Issue 16's figures: LR-PSNR 38.9 dB; projected >= 50 dB (64 measured); HR PSNR 28.43 -> 29.24 dB."""
    before, after, psnr_before, psnr_after = [], [], [], []
    for hr, lr in set5:
        up = bicubic(lr)
        sr = quantize_to(up, 8)
        before.append(float(lr_psnr(sr, lr, SCALE)[0]))
        psnr_before.append(float(psnr_y(sr, hr, SCALE)[0]))
        result = back_project(up, lr, SCALE, BackProjection(tolerance=0.0, max_iterations=30))
        assert result.iterations == 30 and all(
            b < a for a, b in zip(result.rms, result.rms[1:], strict=False)
        )
        projected = quantize_to(result.image, 8)
        after.append(float(lr_psnr(projected, lr, SCALE)[0]))
        psnr_after.append(float(psnr_y(projected, hr, SCALE)[0]))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(before) == pytest.approx(38.89, abs=0.01)
    assert mean(psnr_before) == pytest.approx(28.43, abs=0.01)
    assert mean(after) >= 50 and min(after) >= 50
    assert mean(psnr_after) >= mean(psnr_before) + 0.5  # 29.24 measured: no PSNR loss, a gain


def test_projection_stops_once_the_residual_stops_falling(set5):
    hr, lr = set5[1]
    up = bicubic(lr)
    loose = back_project(up, lr, SCALE, BackProjection(tolerance=0.05, max_iterations=30))
    assert 1 <= loose.iterations < 30
    assert loose.rms[-2] - loose.rms[-1] < 0.05 <= loose.rms[-3] - loose.rms[-2]
    capped = back_project(up, lr, SCALE, BackProjection(tolerance=0.0, max_iterations=3))
    assert capped.iterations == 3 and capped.rms[:3] == pytest.approx(loose.rms[:3])
    assert float(lr_psnr(project(up, lr, SCALE), lr, SCALE)[0]) >= 50  # default settings


def test_lr_residual_map_in_levels(set5):
    hr, lr = set5[0]
    sr = quantize_to(bicubic(lr), 8)
    residual = lr_residual(sr, lr, SCALE)
    assert residual.shape == (1, 1, *lr.shape[-2:])
    expected = (imresize(sr, 1 / SCALE) - lr).abs().amax(dim=1, keepdim=True) * 255
    assert torch.allclose(residual, expected, atol=1e-4)
    mean, p99 = residual_summary(residual)
    assert 0 < mean < p99 <= float(residual.max())
    assert mean == pytest.approx(float(expected.mean()), rel=1e-5)
    assert p99 == pytest.approx(float(np.percentile(expected.numpy(), 99)), rel=1e-5)
    projected = project(bicubic(lr), lr, SCALE)
    assert residual_summary(lr_residual(projected, lr, SCALE))[1] < 1  # within one level


@pytest.mark.parametrize(("dtype", "peak"), [(np.uint8, 255), (np.uint16, 65535)])
def test_downscale_by_row_blocks_equals_the_whole_image(set5, dtype, peak):
    sr = bicubic(set5[4][1]).clamp(0, 1)
    stored = torch.from_numpy(np.floor(sr.numpy() * peak + 0.5).astype(dtype))
    whole = imresize(stored.double() / peak, 1 / SCALE)
    blocks = downscale_rows(stored, SCALE, max_value=peak, rows=7)
    assert blocks.shape == whole.shape
    assert torch.allclose(blocks, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("network", ["bicubic", "edsr"])
def test_tiled_projection_equals_untiled_within_one_level(set5, network):
    lr = set5[0][1][..., 8:104, 12:132].contiguous()  # 96 x 120 LR pixels of baby
    if network == "bicubic":
        fn, radius = bicubic, 2.0
    else:
        torch.manual_seed(0)
        net = build_model("edsr", SCALE, num_feat=8, num_block=1).eval()
        fn, radius = torch.no_grad()(net), receptive_radius(net)
    settings = BackProjection(tolerance=0.0, max_iterations=10)
    whole = project(fn(lr), lr, SCALE, settings)
    tiled = tiled_forward(
        projecting(fn, SCALE, settings), lr, SCALE, tile=48, overlap=16,
        radius=projected_radius(radius, settings),
    )  # fmt: skip
    assert float((quantize_to(tiled, 8) - whole).abs().max()) * 255 <= 1 + 1e-3
    assert float(lr_psnr(quantize_to(tiled, 8), lr, SCALE)[0]) >= 50


def test_uncertainty_zero_for_an_equivariant_network_not_for_others(set5):
    lr = set5[3][1][..., :40, :48]
    _, std = self_ensemble_spread(bicubic, lr)
    assert float(uncertainty_map(std).max()) < 1e-3  # levels: bicubic commutes with flips and turns
    torch.manual_seed(0)
    net = build_model("edsr", SCALE, num_feat=8, num_block=1).eval()
    with torch.no_grad():
        mean, std = self_ensemble_spread(net, lr)
        outputs = torch.stack(list(dihedral_outputs(net, lr)))
        assert torch.equal(mean, self_ensemble(net, lr))
    assert torch.allclose(std, outputs.double().std(dim=0, unbiased=False).float(), atol=1e-6)
    spread = uncertainty_map(std)
    assert spread.shape == (1, 1, 160, 192) and float(spread.mean()) > 0.5
    expected = outputs.double().var(dim=0, unbiased=False).mean(dim=1, keepdim=True).sqrt() * 255
    assert torch.allclose(spread.double(), expected, rtol=1e-4, atol=1e-4)
    assert float(uncertainty_map(std, bits=16).mean()) == pytest.approx(
        float(spread.mean()) * 257, rel=1e-5
    )


def test_bad_inputs_raise_clear_errors(set5):
    hr, lr = set5[1]
    with pytest.raises(ValueError, match="not x4 of LR"):
        lr_psnr(hr[..., :-4, :], lr, SCALE)
    with pytest.raises(ConfigError, match="8 or 16 bit"):
        lr_psnr(bicubic(lr), lr, SCALE, bits=12)
    with pytest.raises(ConfigError, match="max_iterations"):
        BackProjection(max_iterations=0)
    with pytest.raises(ConfigError, match="tolerance"):
        BackProjection(tolerance=-1.0)


def test_heat_map_colours_enlargement_and_scale_bar():
    values = torch.tensor([[0.0, 1.0], [2.0, 8.0]])
    assert nice_vmax(values) == 10 and nice_vmax(torch.tensor([[0.0, 0.3]])) == 1
    assert nice_vmax(torch.tensor([[0.0, 22.6]])) == 25
    rgb = colour_map(values, vmax=8.0)
    assert tuple(rgb[0, 0]) == (0, 0, 4) and tuple(rgb[1, 1]) == (252, 255, 164)
    assert np.diff(rgb.astype(int).sum(-1).ravel()).min() > 0  # brighter for larger values
    image = heat_map(values, size=(8, 8), vmax=8.0)
    assert image.height == 8 * 1 and image.width > 8  # the map, then the bar beside it
    image = heat_map(values, size=(200, 200), vmax=4.0)
    pixels = np.asarray(image)
    assert image.height == 200 and image.width > 200
    assert (pixels[:100, :100] == (0, 0, 4)).all()  # one LR pixel = one 100 x 100 block
    assert (pixels[100:, 100:200] == (252, 255, 164)).all()  # 8 > vmax saturates
    assert (pixels[:, 200:] == 255).mean() > 0.5  # the bar strip is mostly white (labels, ramp)


def test_overlay_leaves_certain_pixels_grey():
    image = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    values = torch.zeros(20, 30)
    values[5:10, 5:10] = 4.0
    out = np.asarray(overlay(image, values, vmax=4.0)).astype(int)
    grey = (image.mean(0) * 255).round().numpy()
    assert out.shape[:2] == (20, out.shape[1]) and out.shape[1] > 30
    assert np.abs(out[:5, :30, 0] - grey[:5]).max() <= 1  # zero spread: the image, in grey
    assert not np.allclose(out[5:10, 5:10, 0], grey[5:10, 5:10], atol=2)
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, torch.zeros(10, 10))
    assert isinstance(heat_map(torch.zeros(4, 4)), Image.Image)  # all-zero map: vmax 1 level
