"""What a run shows a person at its end: the one-line score against bicubic, the comparison picture
of training runs, and the thesis-style figures of ``medsr.evaluate`` (written while scoring)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from medsr.evaluation.consistency import lr_psnr, lr_residual
from medsr.evaluation.figures import (
    comparison_figure,
    metric_caption,
    most_detailed_box,
    stack_rows,
    thesis_figure,
)
from medsr.evaluation.heatmaps import heat_map_tensor, nice_vmax, scale_bar
from medsr.evaluation.results import ImageScore, ResultRow
from medsr.evaluation.scoring import image_scores, weighted_mean
from medsr.files import atomic_write
from medsr.ops import imresize, quantize

BICUBIC = "Bicubic"


def summary_line(task: str, method: str, scale: int, rows: Sequence[ResultRow]) -> str:
    """``<task>: <method> x<s> <psnr> dB vs bicubic <psnr> dB (+<gain> dB) on <n> held-out images``."""
    psnr, base = weighted_mean(rows, method), weighted_mean(rows, BICUBIC)
    n = sum(r.n_images for r in rows if r.method == method)
    return (
        f"{task}: {method} x{scale} {psnr:.2f} dB vs bicubic {base:.2f} dB "
        f"({psnr - base:+.2f} dB) on {n} held-out images"
    )


def save_figure(figure, path: Path) -> Path:
    return atomic_write(path, lambda tmp: figure.save(tmp, format="PNG"), fsync=False)


class ComparisonFigure:
    """Scoring hook: bicubic | SR | HR crops of the first image, each labelled with its Y-PSNR."""

    def __init__(self, method: str, path: Path, crop: int = 96) -> None:
        self.method, self.path, self.crop = method, Path(path), crop
        self.written: Path | None = None

    def __call__(
        self, dataset, index, name, batch, srs: dict[str, Tensor], scores: dict[str, ImageScore]
    ) -> None:
        if self.written is not None:
            return
        hr = batch["hr"][0]
        panels = [
            (f"{label} {scores[key].psnr:.2f} dB", srs[key][0])
            for label, key in (("bicubic", BICUBIC), ("SR", self.method))
        ]
        panels.append(("HR", hr))
        if batch.get("bits", 8) > 8 and hr.shape[0] == 1:  # scanner data: stretch for display
            lo, hi = torch.quantile(
                hr.float().flatten(), torch.tensor([0.005, 0.995], device=hr.device)
            )
            span = max(float(hi - lo), 1e-6)
            panels = [(label, (image - lo) / span) for label, image in panels]
        self.written = save_figure(
            comparison_figure(panels, most_detailed_box(hr, self.crop)), self.path
        )


class ThesisFigures:
    """Scoring hook: per chosen image, GT | bicubic | every other method, the same crop, each
    captioned with PSNR/SSIM (the thesis' figures 5.1 to 5.45), in ``<out_dir>/figures/``; below
    them, each one's LR residual map (where it departs from the measured input) on one scale.

    Args:
        out_dir: the run folder.
        scale, crop: as scored.
        images: image names (or stems) to draw; empty = the first image of every set.
        box: (top, left, height, width) on the HR grid; None = the most detailed ``box_size`` window.
        box_size: side of the automatic crop.
    """

    def __init__(
        self,
        out_dir: Path,
        scale: int,
        crop: int,
        images: Sequence[str] = (),
        box=None,
        box_size: int = 96,
    ) -> None:
        self.out_dir, self.scale, self.crop = Path(out_dir), scale, crop
        self.images = [str(n) for n in images]
        self.box, self.box_size = (tuple(box) if box else None), box_size
        self.paths: list[Path] = []

    def wanted(self, name: str, index: int) -> bool:
        return (
            (Path(name).stem in self.images or name in self.images) if self.images else index == 0
        )

    @torch.no_grad()
    def __call__(
        self, dataset, index, name, batch, srs: dict[str, Tensor], scores: dict[str, ImageScore]
    ) -> None:
        if not self.wanted(name, index):
            return
        hr = batch["hr"][:1]
        bits = batch["bits"]
        box = self.box or most_detailed_box(hr[0].cpu(), self.box_size)
        shown, images = [("GT", hr[0].cpu())], [hr]
        if BICUBIC not in srs:  # bicubic is always shown, even when it is not a row of the table
            sr = quantize(imresize(batch["lr"][:1], self.scale), bits)
            values = image_scores(sr, hr, self.crop, None)
            shown.append((metric_caption(BICUBIC, values["psnr"], values["ssim"]), sr[0].cpu()))
            images.append(sr)
        order = sorted(srs, key=lambda m: m != BICUBIC)  # bicubic first
        shown += [
            (metric_caption(m, scores[m].psnr, scores[m].ssim), srs[m][0].cpu()) for m in order
        ]
        images += [srs[m][:1] for m in order]
        figure = stack_rows(
            [
                thesis_figure(hr[0].cpu(), shown, box, title=f"{dataset} / {name}, x{self.scale}"),
                self.residual_row(hr[0].cpu(), images, batch["lr"][:1], bits, box),
            ]
        )
        path = self.out_dir / "figures" / f"{dataset}_{Path(name).stem}_x{self.scale}.png"
        self.paths.append(save_figure(figure, path))

    def residual_row(self, hr: Tensor, images: list[Tensor], lr: Tensor, bits: int, box):
        """The ``|imresize(SR, 1/s) - LR|`` map of each image, one colour scale (its bar first)."""
        maps = [lr_residual(im, lr, self.scale, bits)[0, 0].cpu() for im in images]
        vmax = nice_vmax(torch.cat([m.flatten() for m in maps[1:] or maps])[None])
        panels = [
            (
                f"LR residual\nLR-PSNR {float(lr_psnr(im, lr, self.scale, bits)[0]):.2f} dB",
                heat_map_tensor(m, tuple(hr.shape[-2:]), vmax),
            )
            for im, m in zip(images, maps, strict=True)
        ]
        return thesis_figure(hr, panels, box, overview=scale_bar(192, vmax, "levels"))
