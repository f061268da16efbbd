"""PSNR-oriented training (BasicSR's SRModel) as a LightningModule with an injected network."""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MaxMetric

from medsr.metrics import PSNRY, SSIMY
from medsr.ops import quantize
from medsr.training.losses import build_pixel_loss


class SRModule(LightningModule):
    """Trains ``net`` (LR -> SR, [0, 1] tensors) with a pixel loss; validates on Y-channel PSNR/SSIM.

    Args:
        net: the super-resolution network (any ``medsr.models.build_model`` result).
        scale: upscaling factor; also the default ``crop_border`` of the metrics.
        optimizer: partial optimizer constructor, called with the parameters.
        scheduler: partial LR scheduler constructor, stepped every training step.
        pixel_opt: BasicSR-style ``{"type": "L1Loss", "loss_weight": 1.0}``.
        crop_border: pixels removed on each side before metrics (None = scale).
        model_spec: ``{"arch", "scale", "net"}`` stored in checkpoints so files rebuild the net.
        channels_last: run the network in channels_last memory format (faster on GPUs).
        eval_float32: validation and test forward passes in float32 with autocast off, whatever
            the training precision (bf16 costs ~0.1 dB at ~50 dB), so logged PSNR equals
            ``medsr.evaluate``'s; False = in the training precision.
    """

    def __init__(
        self,
        net: nn.Module,
        scale: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        pixel_opt: dict | None = None,
        crop_border: int | None = None,
        model_spec: dict | None = None,
        channels_last: bool = False,
        eval_float32: bool = True,
    ) -> None:
        super().__init__()
        # Plain containers only: checkpoints must load with weights_only=True.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.scale = scale
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.pixel_loss, self.pixel_weight = build_pixel_loss(pixel_opt)
        self.crop_border = scale if crop_border is None else crop_border
        self.channels_last = channels_last
        self.eval_float32 = eval_float32
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.eval_set_names: list[str] = ["val"]
        self.eval_metrics = nn.ModuleDict()
        self.eval_counts: dict[str, int] = {}
        self.val_psnr_best = MaxMetric()
        spec = getattr(net, "medsr_spec", None) or {}
        self.in_channels = int((spec.get("net") or {}).get("num_in_ch", 3))

    # -- network -------------------------------------------------------------------------------
    def forward(self, lr: Tensor) -> Tensor:
        """LR (B, C, h, w) in [0, 1] -> SR (B, C, sh, sw), unclamped; C = 1 into an RGB network
        runs as grey RGB, a one-channel network takes it as it is."""
        gray = lr.shape[1] == 1 and self.in_channels == 3
        x = lr.expand(-1, 3, -1, -1) if gray else lr
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        sr = self.net(x)
        return sr.mean(dim=1, keepdim=True) if gray else sr

    # -- training ------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        sr = self(batch["lr"])
        loss = self.pixel_weight * self.pixel_loss(sr.float(), batch["hr"])
        self.log("train/l_pix", loss)
        return loss

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        # The name labels LearningRateMonitor's column (dashboards: train/lr next to train/l_pix).
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
        }

    # -- evaluation ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        names = list(getattr(datamodule, "eval_set_names", None) or ["val"])
        self.eval_set_names = names
        if hasattr(datamodule, "check_channels"):  # an RGB DICOM cannot feed a grey network
            datamodule.check_channels(self.in_channels)
        # Metric states are created per dataset up front so every DDP rank syncs the same set.
        self.eval_metrics = nn.ModuleDict(
            {
                name: nn.ModuleDict(
                    {
                        "psnr_y": PSNRY(self.crop_border),
                        "ssim_y": SSIMY(self.crop_border),
                        "psnr_y_fov": PSNRY(self.crop_border),
                        "ssim_y_fov": SSIMY(self.crop_border),
                    }
                )
                for name in names
            }
        ).to(self.device)

    def super_resolve(self, lr: Tensor, bits: int = 8) -> Tensor:
        """The evaluation output: clamped and rounded to the HR's levels (8 bits as published
        tables do; 16-bit images and medical sets at their own depth); computed in float32
        (autocast off) under ``eval_float32``."""
        if not self.eval_float32:
            return quantize(self(lr).float(), bits)
        with torch.autocast(lr.device.type, enabled=False):
            return quantize(self(lr.to(next(self.net.parameters()).dtype)).float(), bits)

    def _eval_step(self, batch: dict, dataloader_idx: int) -> Tensor:
        sr = self.super_resolve(batch["lr"], int(batch.get("bits", 8)))
        hr = batch["hr"]
        name = self.eval_set_names[dataloader_idx]
        metrics = self.eval_metrics[name]
        self.eval_counts[name] = self.eval_counts.get(name, 0) + hr.shape[0]
        metrics["psnr_y"].update(sr, hr)
        metrics["ssim_y"].update(sr, hr)
        if "mask" in batch:
            metrics["psnr_y_fov"].update(sr, hr, mask=batch["mask"])
            metrics["ssim_y_fov"].update(sr, hr, mask=batch["mask"])
        return sr

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._eval_step(batch, dataloader_idx)

    def _log_eval(self, stage: str) -> dict[str, float]:
        """Per-dataset means (``<stage>/<set>/psnr_y``) and the image-weighted overall mean.

        The torchmetrics states are already reduced over DDP ranks, so every rank logs the same
        values; ``sync_dist`` (a scalar all-reduce per key) only satisfies Lightning's DDP check.
        """
        total_psnr, total_ssim, total_n = 0.0, 0.0, 0
        for name, metrics in self.eval_metrics.items():
            n = self.eval_counts.pop(name, 0)
            if n == 0:
                continue
            psnr, ssim = metrics["psnr_y"].compute(), metrics["ssim_y"].compute()
            self.log(f"{stage}/{name}/psnr_y", psnr, add_dataloader_idx=False, sync_dist=True)
            self.log(f"{stage}/{name}/ssim_y", ssim, add_dataloader_idx=False, sync_dist=True)
            if metrics["psnr_y_fov"].update_called:
                self.log(
                    f"{stage}/{name}/psnr_y_fov",
                    metrics["psnr_y_fov"].compute(),
                    add_dataloader_idx=False,
                    sync_dist=True,
                )
                self.log(
                    f"{stage}/{name}/ssim_y_fov",
                    metrics["ssim_y_fov"].compute(),
                    add_dataloader_idx=False,
                    sync_dist=True,
                )
            total_psnr += float(psnr) * n
            total_ssim += float(ssim) * n
            total_n += n
            for metric in metrics.values():
                metric.reset()
        if total_n == 0:
            return {}
        overall = {"psnr_y": total_psnr / total_n, "ssim_y": total_ssim / total_n}
        self.log(f"{stage}/psnr_y", overall["psnr_y"], add_dataloader_idx=False, sync_dist=True)
        self.log(f"{stage}/ssim_y", overall["ssim_y"], add_dataloader_idx=False, sync_dist=True)
        return overall

    def on_validation_epoch_end(self) -> None:
        overall = self._log_eval("val")
        if overall:
            self.val_psnr_best.update(torch.tensor(overall["psnr_y"], device=self.device))
            self.log("val/psnr_y_best", self.val_psnr_best.compute(), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")
