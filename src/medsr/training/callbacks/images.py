"""Validation pictures for the dashboards: LR | SR | HR crops of the first validation images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from medsr.evaluation.figures import comparison_figure, most_detailed_box
from medsr.files import atomic_write
from medsr.metrics import psnr_y


class ValidationImages(Callback):
    """Every ``every_n_validations``-th validation, the first ``num_images`` images of the first
    validation set as one picture each: the LR input (nearest-neighbour enlarged, so its pixels
    show), the SR output labelled with its Y-PSNR, and HR, cropped to the most detailed window.

    Logged as ``val/images`` to W&B (``log_image``) and TensorBoard (``add_image``), with the
    image names as captions; ``save_dir`` also keeps them as PNG files (``step<step>_<name>.png``).

    Args:
        every_n_validations: log at the 1st, (1 + n)-th, (1 + 2n)-th ... validation.
        num_images: validation images per picture set.
        crop: crop side on the HR grid (shown at 2x).
        save_dir: folder for PNG copies (None = none).
    """

    def __init__(
        self,
        every_n_validations: int = 1,
        num_images: int = 2,
        crop: int = 96,
        save_dir: str | None = None,
    ) -> None:
        self.every = max(1, int(every_n_validations))
        self.num_images = int(num_images)
        self.crop = int(crop)
        self.save_dir = Path(save_dir) if save_dir else None
        self._count = 0
        self._active = False
        self._pictures: list[tuple[str, Image.Image]] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pictures = []
        self._active = (
            not trainer.sanity_checking and trainer.is_global_zero and self._count % self.every == 0
        )
        if not trainer.sanity_checking:
            self._count += 1

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._active or dataloader_idx != 0 or len(self._pictures) >= self.num_images:
            return
        if not isinstance(outputs, torch.Tensor) or not isinstance(batch, dict):
            return
        for i in range(min(outputs.shape[0], self.num_images - len(self._pictures))):
            lr, sr, hr = batch["lr"][i].float(), outputs[i].float(), batch["hr"][i].float()
            lr_big = F.interpolate(lr[None], size=hr.shape[-2:], mode="nearest")[0]
            psnr = float(psnr_y(sr[None], hr[None], getattr(pl_module, "crop_border", 0))[0])
            panels = [("LR", lr_big), (f"SR {psnr:.2f} dB", sr), ("HR", hr)]
            name = batch["name"][i] if "name" in batch else f"image{len(self._pictures)}"
            self._pictures.append(
                (Path(str(name)).stem, comparison_figure(panels, most_detailed_box(hr, self.crop)))
            )

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._pictures:
            return
        step = trainer.global_step
        names = [name for name, _ in self._pictures]
        images = [picture for _, picture in self._pictures]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/images", images=images, caption=names, step=step)
            elif isinstance(logger, TensorBoardLogger):
                for name, picture in self._pictures:
                    logger.experiment.add_image(
                        f"val/images/{name}", np.asarray(picture), step, dataformats="HWC"
                    )
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            for name, picture in self._pictures:
                atomic_write(
                    self.save_dir / f"step{step:07d}_{name}.png",
                    lambda tmp, picture=picture: picture.save(tmp, format="PNG"),
                    fsync=False,
                )
        self._pictures = []
