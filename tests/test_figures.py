"""Comparison figures (medsr.evaluation.figures): crop choice, layout, panel count, captions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.data.convert import to_float_tensor
from medsr.data.image_io import read_image
from medsr.evaluation.figures import (
    GAP,
    comparison_figure,
    metric_caption,
    most_detailed_box,
    thesis_figure,
)


@pytest.fixture(scope="module")
def photo(samples_dir) -> torch.Tensor:
    return to_float_tensor(read_image(samples_dir / "val" / "chelsea.png"))  # (3, 300, 451)


def count_panels(figure: Image.Image, top: int, height: int) -> int:
    """Runs of columns that are not pure white in the panel band."""
    band = np.asarray(figure.convert("RGB"))[top : top + height]
    filled = (band != 255).any(axis=(0, 2))
    return int(np.count_nonzero(filled[1:] & ~filled[:-1]) + filled[0])


def test_most_detailed_box_finds_the_textured_part(photo):
    flat = photo.clone()
    flat[:, :, :300] = flat[:, :, :300].mean(dim=(1, 2), keepdim=True)  # left part made flat
    top, left, h, w = most_detailed_box(flat, 64)
    assert (h, w) == (64, 64) and left >= 300 - 64 // 4 and top + h <= 300 and left + w <= 451
    assert most_detailed_box(photo[:, :40, :50], 64)[2:] == (40, 40)  # clipped to the image


def test_thesis_figure_layout_and_panel_count(photo, tmp_path):
    box = (100, 200, 48, 64)
    sr = (photo * 0.9).clamp(0, 1)
    panels = [
        ("GT", photo),
        (metric_caption("Bicubic", 25.1234, 0.71234), sr),
        (metric_caption("EDSR", 27.5, 0.8), photo),
    ]
    figure = thesis_figure(photo, panels, box, panel_size=96, title="val / chelsea, x4")
    path = tmp_path / "figure.png"
    figure.save(path)
    saved = Image.open(path)
    title_h = 14 + 8
    overview_w, crop_w = round(451 * 96 / 300), round(64 * 96 / 48)
    assert saved.size[0] == overview_w + 3 * crop_w + 3 * GAP
    assert count_panels(saved, title_h, 96) == 1 + len(panels)  # whole image + one per method
    # the crop panels show the box, enlarged: the GT panel is the HR crop, nearest-upscaled
    gt = np.asarray(saved)[title_h : title_h + 96, overview_w + GAP : overview_w + GAP + crop_w]
    want = (photo[:, 100:148, 200:264] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(gt[::2, ::2], want)
    # the box is outlined in red on the overview
    overview = np.asarray(saved)[title_h : title_h + 96, :overview_w].astype(int)
    assert ((overview[..., 0] > 200) & (overview[..., 1] < 60)).sum() > 50


def test_metric_caption():
    assert metric_caption("EDSR", 32.4567, 0.89684) == "EDSR\n32.46 dB / 0.8968"
    assert metric_caption("GT") == "GT"


def test_comparison_figure_keeps_its_signature(photo):
    figure = comparison_figure([("a", photo), ("b", photo)], (0, 0, 32, 32))
    assert figure.size == (2 * 64 + 4, 64 + 18)
