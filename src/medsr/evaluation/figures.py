"""Comparison figures: the same crop of HR, baselines and models side by side, labelled.

- :func:`comparison_figure`: crops in one row, a label above each (the training summary).
- :func:`thesis_figure`: the layout of the thesis figures (5.1 to 5.45) and the EDSR/RCAN
  papers: the whole HR image with the crop outlined, then the crop of GT, bicubic and each
  model, each captioned with its name and PSNR/SSIM.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from medsr.ops.quantize import to_integer

Box = tuple[int, int, int, int]  # top, left, height, width on the HR grid

GAP = 6  # white pixels between panels
BOX_COLOUR = (230, 30, 30)


def most_detailed_box(hr: Tensor, size: int) -> Box:
    """The ``size`` x ``size`` window of (C, H, W) ``hr`` with the largest gradient energy."""
    gray = hr.float().mean(dim=0, keepdim=True)
    grad = torch.zeros_like(gray)  # full size, so the box may be as large as the image
    grad[:, :-1, :-1] = (gray[:, 1:, :-1] - gray[:, :-1, :-1]).abs() + (
        gray[:, :-1, 1:] - gray[:, :-1, :-1]
    ).abs()
    h, w = grad.shape[-2:]
    size = min(size, h, w)
    stride = max(1, size // 4)
    energy = torch.nn.functional.avg_pool2d(grad[None], size, stride=stride)[0, 0]
    idx = int(energy.argmax())
    top, left = divmod(idx, energy.shape[-1])
    return top * stride, left * stride, size, size


def _to_pil(image: Tensor) -> Image.Image:
    array = to_integer(image.detach().cpu(), 8)  # halves up, as every image medsr writes
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L").convert("RGB")
    return Image.fromarray(array[:3].permute(1, 2, 0).numpy(), mode="RGB")


def load_font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def comparison_figure(
    panels: list[tuple[str, Tensor]], box: Box, zoom: int = 2, label_height: int = 18
) -> Image.Image:
    """Crop ``box`` from each (label, (C, H, W) image) and tile them left to right, labelled."""
    top, left, height, width = box
    crops = [_to_pil(img[:, top : top + height, left : left + width]) for _, img in panels]
    crops = [c.resize((width * zoom, height * zoom), Image.NEAREST) for c in crops]
    gap = 4
    canvas = Image.new(
        "RGB", (len(crops) * (width * zoom + gap) - gap, height * zoom + label_height), "white"
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, ((label, _), crop) in enumerate(zip(panels, crops, strict=True)):
        x = i * (width * zoom + gap)
        canvas.paste(crop, (x, label_height))
        draw.text((x + 2, 2), label, fill="black", font=font)
    return canvas


def metric_caption(name: str, psnr: float | None = None, ssim: float | None = None) -> str:
    """``"EDSR\\n32.46 dB / 0.8968"`` (the name alone when no metric is given)."""
    if psnr is None:
        return name
    return f"{name}\n{psnr:.2f} dB / {ssim:.4f}" if ssim is not None else f"{name}\n{psnr:.2f} dB"


def thesis_figure(
    hr: Tensor,
    panels: list[tuple[str, Tensor]],
    box: Box,
    panel_size: int = 192,
    font_size: int = 14,
    title: str | None = None,
    overview: Image.Image | None = None,
) -> Image.Image:
    """Whole HR image with ``box`` outlined, then the ``box`` crop of every panel, captioned.

    Args:
        hr: (C, H, W) ground truth in [0, 1], shown whole (scaled to ``panel_size`` high).
        panels: (caption, (C, H, W) image on the HR grid) in display order, e.g. GT, bicubic,
            models; captions may hold a second line (see :func:`metric_caption`).
        box: (top, left, height, width) of the crop on the HR grid.
        panel_size: height in pixels of every panel (crops are enlarged with nearest
            neighbour so single pixels stay visible).
        font_size: caption size.
        title: optional line above the panels (e.g. ``"Set5 / butterfly, x4"``).
        overview: shown instead of the whole HR image (e.g. a scale bar), centred in its place.

    Returns:
        The figure; its panels are separated by white columns ``GAP`` pixels wide.
    """
    top, left, height, width = box
    replacement = overview
    font = load_font(font_size)
    crop_w = max(1, round(width * panel_size / height))
    crops = [
        _to_pil(img[:, top : top + height, left : left + width]).resize(
            (crop_w, panel_size), Image.NEAREST
        )
        for _, img in panels
    ]
    h_full, w_full = hr.shape[-2:]
    overview_w = max(1, round(w_full * panel_size / h_full))
    overview = _to_pil(hr).resize((overview_w, panel_size), Image.BICUBIC)
    f = panel_size / h_full
    line = max(2, panel_size // 96)
    if replacement is None:
        ImageDraw.Draw(overview).rectangle(
            [left * f, top * f, (left + width) * f - 1, (top + height) * f - 1],
            outline=BOX_COLOUR,
            width=line,
        )
    else:  # same width as the HR thumbnail, so the columns of stacked rows line up
        overview = Image.new("RGB", (max(overview_w, replacement.width), panel_size), "white")
        overview.paste(replacement, ((overview.width - replacement.width) // 2, 0))
    captions = [title or "", *(label for label, _ in panels)]
    n_lines = max(c.count("\n") + 1 for c in captions[1:]) if panels else 1
    caption_h = n_lines * (font_size + 4) + 4
    title_h = font_size + 8 if title else 0
    images = [overview, *crops]
    total_w = sum(im.width for im in images) + GAP * (len(images) - 1)
    canvas = Image.new("RGB", (total_w, title_h + panel_size + caption_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((2, 2), title, fill="black", font=font)
    x = 0
    for i, im in enumerate(images):
        canvas.paste(im, (x, title_h))
        caption = ("HR" if replacement is None else "") if i == 0 else panels[i - 1][0]
        draw.multiline_text(
            (x + im.width / 2, title_h + panel_size + 3),
            caption,
            fill="black",
            font=font,
            anchor="ma",
            align="center",
        )
        x += im.width + GAP
    return canvas


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Figures one above the other, left-aligned, ``GAP`` white pixels apart."""
    canvas = Image.new(
        "RGB",
        (max(r.width for r in rows), sum(r.height for r in rows) + GAP * (len(rows) - 1)),
        "white",
    )
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height + GAP
    return canvas
