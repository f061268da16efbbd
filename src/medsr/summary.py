"""End-of-run report: the one-line score against bicubic and the comparison picture."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.utilities import move_data_to_device
from omegaconf import DictConfig

from medsr.figures import comparison_figure, most_detailed_box
from medsr.metrics import psnr_y
from medsr.ops import imresize, quantize


def summary_line(cfg: DictConfig, model_scores: dict, bicubic_scores: dict, n_images: int) -> str:
    """``<task>: <model> x<s> <psnr> dB vs bicubic <psnr> dB (+<gain> dB) on <n> held-out images``."""
    psnr, base = model_scores["test/psnr_y"], bicubic_scores["test/psnr_y"]
    model = f"{cfg.model.tag}_{cfg.model.size_tag}"
    return (
        f"{cfg.task_name}: {model} x{cfg.scale} {psnr:.2f} dB vs bicubic {base:.2f} dB "
        f"({psnr - base:+.2f} dB) on {n_images} held-out images"
    )


@torch.no_grad()
def write_comparison_figure(module, datamodule, path: Path, crop: int = 96) -> Path:
    """Bicubic | SR | HR crops of the first held-out image, each labelled with its Y-PSNR."""
    loaders = datamodule.test_dataloader()
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    batch = move_data_to_device(next(iter(loader)), module.device)
    batch = datamodule.on_after_batch_transfer(batch, 0)
    module.eval()
    lr, hr = batch["lr"], batch["hr"]
    scale = module.scale
    panels = []
    for label, image in (("bicubic", quantize(imresize(lr, scale))), ("SR", module.super_resolve(lr))):
        panels.append((f"{label} {float(psnr_y(image, hr, scale)[0]):.2f} dB", image[0]))
    panels.append(("HR", hr[0]))
    figure = comparison_figure(panels, most_detailed_box(hr[0], crop))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)
    return path
