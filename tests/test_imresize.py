"""medsr.ops.imresize / quantize / mod_crop against hand-worked values and an independent loop port."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsr.ops import imresize, mod_crop, quantize

imresize_module = importlib.import_module(
    "medsr.ops.imresize"
)  # the name `imresize` is the function


# --- independent reference: MATLAB's algorithm written out pixel by pixel ---------------------


def _keys(d: float) -> float:
    a = abs(d)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _resize_axis0(a: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    n = a.shape[0]
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros((out_len, *a.shape[1:]))
    for i in range(out_len):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based MATLAB coordinates
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        ws = [scale * _keys(scale * (u - t)) if scale < 1 else _keys(u - t) for t in taps]
        total = sum(ws)
        for t, wt in zip(taps, ws, strict=True):
            j = (t - 1) % (2 * n)  # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
            j = j if j < n else 2 * n - 1 - j
            out[i] += wt / total * a[j]
    return out


def matlab_loop(
    img: np.ndarray, scales: tuple[float, float], out_hw: tuple[int, int]
) -> np.ndarray:
    """(C, H, W) float64 -> resized, rows first unless the column scale is smaller (MATLAB)."""
    x = np.moveaxis(img, 0, -1)  # (H, W, C)
    if scales[0] <= scales[1]:
        x = _resize_axis0(x, out_hw[0], scales[0])
        x = np.swapaxes(_resize_axis0(np.swapaxes(x, 0, 1), out_hw[1], scales[1]), 0, 1)
    else:
        x = np.swapaxes(_resize_axis0(np.swapaxes(x, 0, 1), out_hw[1], scales[1]), 0, 1)
        x = _resize_axis0(x, out_hw[0], scales[0])
    return np.moveaxis(x, -1, 0)


# --- hand-worked values -------------------------------------------------------------------------


def test_downscale_by_two_hand_computed():
    # Length 4 -> 2: u = 1.5, 3.5; kernel 0.5 * keys(0.5 d) over d = +-0.5 .. +-3.5 gives
    # 0.43359375, 0.11328125, -0.03515625, -0.01171875 (already summing to 1); mirroring the
    # taps at -2, -1, 0 onto 3, 2, 1 and 5 onto 4 folds them into these four weights.
    x = torch.tensor([1.0, 2.0, 7.0, -3.0], dtype=torch.float64)
    w = torch.tensor([0.546875, 0.3984375, 0.1015625, -0.046875], dtype=torch.float64)
    expected = torch.stack([(w * x).sum(), (w.flip(0) * x).sum()])
    along_w = imresize(x.view(1, 1, 1, 4), size=(1, 2)).flatten()
    along_h = imresize(x.view(1, 1, 4, 1), size=(2, 1)).flatten()
    torch.testing.assert_close(along_w, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(along_h, expected, rtol=0, atol=1e-15)


def test_upscale_by_two_hand_computed():
    # Length 2 -> 4: u = 0.75, 1.25, 1.75, 2.25; Keys taps -0.0234375, 0.2265625, 0.8671875,
    # -0.0703125; the mirror folds the outside taps onto the two pixels.
    a, b = 0.25, 0.75
    expected = torch.tensor(
        [
            1.09375 * a - 0.09375 * b,
            0.796875 * a + 0.203125 * b,
            0.203125 * a + 0.796875 * b,
            -0.09375 * a + 1.09375 * b,
        ],
        dtype=torch.float64,
    )
    x = torch.tensor([a, b], dtype=torch.float64).view(1, 1, 1, 2)
    torch.testing.assert_close(imresize(x, 2).flatten()[:4], expected, rtol=0, atol=1e-15)
    assert imresize(x, 2).shape == (1, 1, 2, 4)  # H = 1 becomes 2: ceil(1 * 2)


# --- agreement with the loop port ---------------------------------------------------------------

LOOP_CASES = [
    ((2, 7, 9), 1 / 2, None),
    ((2, 7, 9), 1 / 3, None),
    ((2, 7, 9), 1 / 4, None),
    ((2, 7, 9), 0.7, None),
    ((2, 7, 9), 2, None),
    ((2, 7, 9), 3, None),
    ((2, 7, 9), 4, None),
    ((2, 7, 9), 1.5, None),
    ((2, 7, 9), (0.5, 2.0), None),  # columns scale larger: rows first
    ((2, 7, 9), (3.0, 0.4), None),  # columns scale smaller: columns first
    ((1, 12, 10), None, (5, 13)),
    ((1, 12, 10), None, (20, 4)),
    ((1, 3, 2), 1 / 4, None),  # input shorter than the kernel: repeated mirroring
    ((1, 1, 5), 3, None),
    ((1, 300, 6), 1 / 3, None),  # long dimension: several chunks, chunk seams
    ((1, 6, 160), 3, None),
    ((1, 257, 5), 0.37, None),
]


@pytest.mark.parametrize(("shape", "scale", "size"), LOOP_CASES)
def test_matches_matlab_loop_port(shape, scale, size):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    got = imresize(x, scale, size=size)
    h, w = shape[1:]
    if size is None:
        sh, sw = (scale, scale) if isinstance(scale, int | float) else scale
        out_hw = (math.ceil(h * sh - 1e-9), math.ceil(w * sw - 1e-9))
    else:
        (sh, sw), out_hw = (size[0] / h, size[1] / w), size
    want = torch.from_numpy(matlab_loop(x.numpy(), (sh, sw), out_hw))
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4])
def test_interior_matches_torch_antialiased_bicubic(scale):
    # torch's antialiased bicubic uses the same Keys a = -0.5 kernel, widened alike; only the
    # border handling differs (it renormalises truncated taps instead of mirroring).
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    ours = imresize(x, scale)
    theirs = F.interpolate(
        x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False
    )
    m = 3  # output pixels whose kernel reaches the border
    torch.testing.assert_close(ours[..., m:-m, m:-m], theirs[..., m:-m, m:-m], rtol=0, atol=2e-6)
    assert (ours - theirs).abs().amax() > 1e-4  # and the borders do differ: not torch's rule


# --- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.63, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 13, 17), 0.3)
    torch.testing.assert_close(
        imresize(x, scale), torch.full_like(imresize(x, scale), 0.3), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    ("hw", "scale", "size", "expected"),
    [
        ((5, 7), 1 / 2, None, (3, 4)),  # ceil(2.5), ceil(3.5)
        ((5, 7), 1 / 3, None, (2, 3)),
        ((5, 7), 3, None, (15, 21)),
        ((321, 481), 1 / 3, None, (107, 161)),
        ((15, 10), 0.2, None, (3, 2)),  # 15 * 0.2 = 3.0000000000000004 in floats: still 3
        ((5, 7), (0.5, 2), None, (3, 14)),
        ((5, 7), None, (10, 3), (10, 3)),
    ],
)
def test_output_size_follows_matlab(hw, scale, size, expected):
    out = imresize(torch.rand(1, 2, *hw), scale, size=size)
    assert out.shape == (1, 2, *expected)


def test_identity_scale_returns_input_values():
    x = torch.rand(1, 3, 9, 11)
    torch.testing.assert_close(imresize(x, 1), x, rtol=0, atol=0)
    torch.testing.assert_close(imresize(x, size=(9, 11)), x, rtol=0, atol=0)


def test_three_dim_input_and_batch_independence():
    x = torch.rand(4, 3, 20, 18, generator=torch.Generator().manual_seed(2))
    batched = imresize(x, 1 / 3)
    for i in range(4):
        torch.testing.assert_close(imresize(x[i], 1 / 3), batched[i], rtol=0, atol=1e-6)
    assert imresize(x[0], 1 / 3).shape == (3, 7, 6)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 4])
def test_float32_agrees_with_float64(scale):
    x = torch.rand(2, 3, 40, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out64 = imresize(x, scale)
    out32 = imresize(x.float(), scale)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_round_trip_their_dtype(dtype):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    out = imresize(x.to(dtype), 1 / 2)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), imresize(x.to(dtype).float(), 1 / 2), rtol=0, atol=1e-2)


@pytest.mark.parametrize("scale", [1 / 2, 3])
def test_gradient_is_the_transposed_resize(scale):
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale), (x,))


def test_first_call_under_inference_mode_does_not_poison_the_cache():
    shape = (1, 1, 23, 29)  # sizes no other test uses, so this call builds the weights
    with torch.inference_mode():
        imresize(torch.rand(shape), 0.5)
    x = torch.rand(shape, requires_grad=True)
    imresize(x, 0.5).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_weights_are_cached():
    x = torch.rand(1, 1, 37, 41)
    imresize(x, 1 / 3)
    hits = imresize_module._chunks.cache_info().hits
    imresize(x, 1 / 3)
    assert imresize_module._chunks.cache_info().hits == hits + 2  # one per dimension


@pytest.mark.parametrize(
    ("x", "kwargs", "error"),
    [
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), {"scale": 0.5}, TypeError),
        (torch.zeros(8, 8), {"scale": 0.5}, ValueError),
        (torch.zeros(1, 1, 3, 8, 8), {"scale": 0.5}, ValueError),
        (torch.zeros(1, 3, 8, 8), {}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": 0.5, "size": (4, 4)}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": 0}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": -2}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": float("nan")}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": torch.tensor(0.5)}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"scale": (0.5, 0.5, 0.5)}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"size": (4, 0)}, ValueError),
        (torch.zeros(1, 3, 8, 8), {"size": (4,)}, ValueError),
    ],
)
def test_bad_arguments_raise(x, kwargs, error):
    with pytest.raises(error, match="imresize"):
        imresize(x, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stays_on_device_and_matches_cpu():
    x = torch.rand(4, 3, 64, 64, dtype=torch.float64)
    out = imresize(x.cuda(), 1 / 3)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), imresize(x, 1 / 3), rtol=0, atol=1e-12)


# --- quantize, mod_crop -------------------------------------------------------------------------


def test_quantize_clamps_and_rounds_to_8bit_levels():
    x = torch.tensor(
        [-0.2, 0.0, 0.4 / 255, 0.6 / 255, 2.49 / 255, 0.5, 254.7 / 255, 1.0, 1.3],
        dtype=torch.float64,
    )
    expected = torch.tensor([0, 0, 0, 1, 2, 128, 255, 255, 255], dtype=torch.float64) / 255
    torch.testing.assert_close(quantize(x), expected, rtol=0, atol=1e-15)
    q = quantize(torch.rand(1000, generator=torch.Generator().manual_seed(5)))
    assert q.dtype == torch.float32
    torch.testing.assert_close(q * 255, (q * 255).round(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_quantize_keeps_every_8bit_level_in_every_float_type(dtype):
    levels = (torch.arange(256, dtype=torch.float64) / 255).to(dtype)
    out = quantize(levels)
    assert out.dtype == dtype
    assert torch.equal(out, levels)


def test_mod_crop_keeps_top_left_multiple_of_scale():
    x = torch.arange(7 * 10).view(1, 1, 7, 10)
    out = mod_crop(x, 3)
    assert out.shape == (1, 1, 6, 9)
    assert torch.equal(out, x[..., :6, :9])
    assert mod_crop(torch.zeros(3, 8, 8), 4).shape == (3, 8, 8)


@pytest.mark.parametrize("scale", [0, -2, 2.0, True])
def test_mod_crop_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="mod_crop"):
        mod_crop(torch.zeros(1, 1, 8, 8), scale)


def test_mod_crop_rejects_image_smaller_than_scale():
    with pytest.raises(ValueError, match="smaller than the scale"):
        mod_crop(torch.zeros(1, 1, 3, 8), 4)
