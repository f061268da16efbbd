"""Experiment tracking around the loggers: the resolved config, W&B summaries of the best
validation scores, and closing W&B runs between sweep jobs (the end-of-run results table is
``medsr.evaluation.results.log_results``, shared with ``medsr.evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf


def start(loggers: Sequence[Logger], cfg: DictConfig) -> None:
    """Log the resolved config; W&B keeps the best ``val/psnr_y`` / ``val/ssim_y`` in the run summary."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            for key in ("val/psnr_y", "val/ssim_y", "val/psnr_y_best"):
                run.define_metric(key, summary="max")


def finish(loggers: Sequence[Logger], status: str = "success") -> None:
    """Close W&B runs so the next job of a sweep (same process) starts its own run."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):  # rank > 0: a no-op dummy
            logger.experiment.finish(exit_code=0 if status == "success" else 1)
