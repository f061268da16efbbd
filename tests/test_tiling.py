"""Tiled inference and the x8 self-ensemble (medsr.ops.tiling, medsr.ops.ensemble)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image
from medsr.errors import ConfigError, MedsrError
from medsr.models import build_model
from medsr.ops import quantize, receptive_radius, self_ensemble, tiled_forward
from medsr.ops.ensemble import DIHEDRAL, dihedral, dihedral_inverse
from medsr.ops.tiling import FADE_FRACTION, axis_windows, tiled_forward_with_fallback


@pytest.fixture(scope="module")
def image(samples_dir) -> torch.Tensor:
    """A real photograph crop, (1, 3, 90, 130) in [0, 1]."""
    hr = to_float_tensor(read_image(samples_dir / "val" / "chelsea.png"))
    return hr[None, :, 100:190, 150:280].contiguous()


def tiny_edsr(scale: int = 2, num_block: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("edsr", scale, num_feat=8, num_block=num_block).eval()


def nearest(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    return F.interpolate(x.float(), scale_factor=scale, mode="nearest")


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(100, 40, 8), (101, 100, 40), (300, 256, 32), (4000, 256, 32), (50, 20, 15)],
)
def test_axis_windows_cover_the_axis_with_the_requested_overlap(length, tile, overlap):
    windows = axis_windows(length, tile, overlap)
    sizes = {b - a for a, b in windows}
    assert len(sizes) == 1 and sizes.pop() <= tile  # equal windows, never above the tile
    assert windows[0][0] == 0 and windows[-1][1] == length
    for (a0, b0), (a1, _) in zip(windows, windows[1:], strict=False):
        assert a0 < a1 and b0 - a1 >= overlap  # ordered, neighbours share >= overlap
    # the fewest windows: one less could not cover the axis with that overlap
    n = len(windows)
    assert (n - 1) * (tile - overlap) + overlap < length


def test_axis_windows_whole_axis_and_bad_overlap():
    assert axis_windows(60, 0, 32) == [(0, 60)]  # tile=0: whole image
    assert axis_windows(60, 64, 32) == [(0, 60)]  # smaller than the tile: one window
    with pytest.raises(ConfigError, match="tile_overlap"):
        axis_windows(100, 32, 32)


@pytest.mark.parametrize("radius", [0.0, math.inf])  # hard cut and cross-fade
def test_weights_are_a_partition_of_unity(image, radius):
    """A pixel-wise fn gives the same output tiled or not, whichever stitching is used."""
    out = tiled_forward(nearest, image, 2, tile=32, overlap=10, radius=radius)
    assert torch.allclose(out, nearest(image), atol=1e-6)


def test_receptive_radius_matches_the_network(image):
    """The analytic radius bounds where the input gradient of one output pixel is non-zero."""
    net = tiny_edsr(2, num_block=2)
    r = receptive_radius(net)
    # head 1 + 2 blocks x 2 convs + body conv 1 + upsampler conv 1 (LR) + last conv 0.5 (HR grid)
    assert r == math.ceil(1 + 4 + 1 + 1 + 0.5)
    x = torch.rand(1, 3, 41, 41, requires_grad=True)
    net(x)[..., 40:42, 40:42].sum().backward()  # the HR pixels of LR pixel (20, 20)
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    lo, hi = int(rows.min()), int(rows.max())
    assert 20 - r <= lo and hi <= 20 + r  # never sees beyond the radius
    assert hi - 20 >= r - 1  # and the bound is tight


def test_receptive_radius_global_context_and_interpolation():
    torch.manual_seed(0)
    rcan = build_model("rcan", 2, num_feat=8, num_group=1, num_block=1, squeeze_factor=4)
    assert receptive_radius(rcan) == math.inf  # channel attention pools the whole image
    assert receptive_radius(build_model("bicubic", 4)) == 2


@torch.no_grad()
def test_tiled_equals_untiled_when_overlap_covers_the_receptive_field(image):
    net = tiny_edsr(2)
    r = receptive_radius(net)
    full = quantize(net(image))
    tiled = quantize(tiled_forward(net, image, 2, tile=40, overlap=int(2 * r), radius=r))
    assert (tiled - full).abs().max() * 255 <= 1.0 + 1e-4
    # same windows with no overlap: the border effects show up
    cut = quantize(tiled_forward(net, image, 2, tile=40, overlap=0, radius=r))
    assert (cut - full).abs().max() * 255 > 1.0


def test_cross_fade_leaves_no_seam():
    """Windows that disagree (global context) are blended: no step larger than the ramp's."""
    x = torch.linspace(0, 1, 96).repeat(1, 1, 24, 1)  # a horizontal ramp: every window differs

    def per_window_offset(t):  # the output depends on the whole window, like global pooling
        return nearest(torch.zeros_like(t)) + t.mean()

    def biggest_step(out):
        return float(out[0, 0, 0].diff().abs().max())

    overlap, scale = 16, 2
    blended = tiled_forward(per_window_offset, x, scale, tile=40, overlap=overlap, radius=math.inf)
    cut = tiled_forward(per_window_offset, x, scale, tile=40, overlap=overlap, radius=0)
    means = [float(x[..., a:b].mean()) for a, b in axis_windows(96, 40, overlap)]
    jump = max(abs(b - a) for a, b in zip(means, means[1:], strict=False))
    assert biggest_step(cut) == pytest.approx(jump, rel=1e-4)  # a seam
    assert biggest_step(blended) <= jump / (overlap * scale * FADE_FRACTION) + 1e-6  # a ramp


def test_sink_receives_every_row_once_in_bounded_blocks(image):
    net = tiny_edsr(2)
    rows, blocks = [], []

    def sink(first, block):
        rows.extend(range(first, first + block.shape[1]))
        blocks.append(block.clone())

    with torch.no_grad():
        assert tiled_forward(net, image, 2, tile=32, overlap=8, radius=6, sink=sink) is None
        whole = tiled_forward(net, image, 2, tile=32, overlap=8, radius=6)
    assert rows == list(range(image.shape[-2] * 2))
    assert max(b.shape[1] for b in blocks) <= 32 * 2  # one strip of windows at a time
    assert torch.equal(torch.cat(blocks, dim=1)[None], whole)


def test_integer_input_stays_on_host_and_windows_are_converted_by_fn(image):
    levels = (image * 255).round().to(torch.uint8)
    seen = []

    def fn(t):
        seen.append((t.dtype, tuple(t.shape[-2:])))
        return nearest(t.float() / 255)

    out = tiled_forward(fn, levels, 2, tile=48, overlap=8, radius=0)
    assert all(dtype == torch.uint8 and max(hw) <= 48 for dtype, hw in seen)
    assert torch.allclose(out, nearest(levels.float() / 255), atol=1e-6)


def test_out_of_memory_halves_the_tile_and_retries(image):
    def small_memory(t):
        if max(t.shape[-2:]) > 40:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return nearest(t)

    out, used = tiled_forward_with_fallback(small_memory, image, 2, 0, 8, radius=0)
    assert used <= 40 and torch.allclose(out, nearest(image))
    with pytest.raises(MedsrError, match="out of memory even with tile"):
        tiled_forward_with_fallback(small_memory, image, 2, 0, 30, radius=0)


def test_other_errors_are_not_taken_for_out_of_memory(image):
    def broken(t):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        tiled_forward_with_fallback(broken, image, 2, 32, 8)


def test_dihedral_inverse_round_trip():
    x = torch.rand(1, 2, 5, 7)
    outs = set()
    for k, flip in DIHEDRAL:
        y = dihedral(x, k, flip)
        assert torch.equal(dihedral_inverse(y, k, flip), x)
        outs.add(y.numpy().tobytes())
    assert len(outs) == 8  # eight distinct transforms


@torch.no_grad()
def test_self_ensemble_is_equivariant_and_exact_for_equivariant_fns(image):
    net = tiny_edsr(2)
    x = image[..., :40, :48]
    ens = self_ensemble(net, x)
    for k, flip in DIHEDRAL:
        assert torch.allclose(
            self_ensemble(net, dihedral(x, k, flip)), dihedral(ens, k, flip), atol=1e-5
        )
    assert torch.allclose(self_ensemble(nearest, x), nearest(x), atol=1e-6)
    assert not torch.allclose(ens, net(x), atol=1e-4)  # a random net is not equivariant itself


def test_tiled_equals_untiled_on_a_16_bit_like_integer_image():
    """uint16 windows are read straight from the host array (no float copy of the image)."""
    a = np.random.default_rng(0).integers(0, 65536, (1, 1, 37, 53), dtype=np.uint16)
    x = torch.from_numpy(a)
    out = tiled_forward(lambda t: nearest(t.float()), x, 2, tile=16, overlap=4, radius=0)
    assert torch.equal(out, nearest(x.float()))
