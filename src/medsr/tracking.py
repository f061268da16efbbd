"""Experiment tracking around the loggers: the resolved config, W&B summaries of the best
validation scores, the end-of-run results table, and closing W&B runs between sweep jobs."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

RESULT_COLUMNS = ["method", "scale", "dataset", "psnr", "ssim", "psnr_fov", "ssim_fov", "n_images", "protocol"]


def start(loggers: Sequence[Logger], cfg: DictConfig) -> None:
    """Log the resolved config; W&B keeps the best ``val/psnr_y`` / ``val/ssim_y`` in the run summary."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            for key in ("val/psnr_y", "val/ssim_y", "val/psnr_y_best"):
                run.define_metric(key, summary="max")


def log_results(loggers: Sequence[Logger], rows: Sequence[dict], key: str = "test/results") -> None:
    """The evaluation rows (``medsr.results`` format) as a ``wandb.Table`` (and summary values)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            data = [[row.get(c) for c in RESULT_COLUMNS] for row in rows]
            logger.log_table(key=key, columns=RESULT_COLUMNS, data=data)


def finish(loggers: Sequence[Logger], status: str = "success") -> None:
    """Close W&B runs so the next job of a sweep (same process) starts its own run."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):  # rank > 0: a no-op dummy
            logger.experiment.finish(exit_code=0 if status == "success" else 1)
