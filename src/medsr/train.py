"""Training entry point: ``python -m medsr.train model=edsr data=df2k scale=2 [key=value ...]``.

Composes and instantiates data, network, LightningModule, callbacks, loggers and trainer, fits
(``resume=auto`` or ``ckpt_path=<file>`` resumes), exports the generator of the checkpoint that
``checkpoint.select`` chooses (``<run>/<run_name>.pth``; a GAN's discriminator too,
``<run_name>_net_d.pth``), then scores that checkpoint and bicubic on the held-out set
through the same path as ``medsr.evaluate`` (summary line, ``results.{json,csv,md}``, W&B table).
Returns ``optimized_metric`` (``val/psnr_y_best``) for Hydra's optimising sweepers; in a multirun
a failed job returns NaN, is reported, and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import medsr._cli  # noqa: F401  (first: OpenMP's wait policy is read when torch loads)

# isort: split
import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from medsr._cli import USER_ERROR_EXIT, medsr_error, quiet_third_party
from medsr.data.degradations import build_degradation
from medsr.errors import ConfigError
from medsr.evaluation.inference import Upscaler
from medsr.evaluation.report import BICUBIC, ComparisonFigure, summary_line
from medsr.evaluation.results import log_results, write_results
from medsr.evaluation.scoring import Method, Protocol, check_image_sizes, score_sets, weighted_mean
from medsr.models import build_model, load_pretrained
from medsr.models.weights import export_discriminator, export_generator
from medsr.ops import check_scale
from medsr.training import tracking
from medsr.training.factory import (
    build_callbacks,
    build_module,
    build_network,
    checkpoint_selection,
    chosen_checkpoint,
    compile_networks,
    instantiate_group,
    strategy_for,
)
from medsr.training.preflight import check_folders, check_settings
from medsr.training.resume import check_resumable, keep_earlier_metrics, resume_checkpoint
from medsr.training.sweep import write_job_result

log = logging.getLogger("medsr.train")  # not __name__, which is "__main__" under python -m


def train(cfg: DictConfig, out_dir: Path | None = None) -> float:
    """Fit, export, test; returns ``cfg.optimized_metric`` (NaN when it was never logged).

    Args:
        cfg: the composed ``train`` config.
        out_dir: the run folder (default: Hydra's output folder).
    """
    quiet_third_party()
    check_scale(cfg.scale)
    select = checkpoint_selection(cfg)
    check_settings(cfg)
    out_dir = Path(out_dir) if out_dir is not None else Path(HydraConfig.get().runtime.output_dir)
    check_folders(cfg, out_dir)  # now, not at the first checkpoint hours in
    ckpt_path = resume_checkpoint(
        cfg.get("resume"), cfg.get("ckpt_path"), out_dir, cfg.task_name, cfg.run_name
    )
    pl.seed_everything(cfg.seed, workers=True)

    # The network first: impossible combinations (RRDBNet x3) fail before any data is read.
    net = build_network(
        cfg, init=ckpt_path is None
    )  # a resumed run takes its weights from the checkpoint
    # Then the data (data.root is the first thing a new user is asked for), then the rest.
    # Augmentation and degradation draw from generators seeded by the run's seed and the batch.
    degradation = build_degradation(cfg.get("degradation"))
    datamodule = instantiate(cfg.data, degradation=degradation, train_seed=cfg.seed)
    datamodule.setup("fit")
    if getattr(datamodule, "stored", None) is not None:  # the weights say how to normalise
        net.medsr_spec["stored"] = datamodule.stored.as_spec()
    stages = ("val", "test") if cfg.get("test_after_fit", True) else ("val",)
    check_image_sizes(datamodule, stages, _crop(cfg), "model.lit.crop_border")
    module = build_module(cfg, net, init=ckpt_path is None)
    keep_earlier_metrics(out_dir)  # Lightning's CSVLogger would delete an earlier metrics.csv
    if ckpt_path is not None:
        built = (
            f"{cfg.model.arch} x{cfg.scale} {OmegaConf.to_container(cfg.model.net, resolve=True)}"
        )
        check_resumable(module, ckpt_path, "ckpt_path" if cfg.get("ckpt_path") else "resume", built)
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=build_callbacks(cfg, init=ckpt_path is None),
        logger=loggers or False,
        **strategy_for(cfg, module),
    )
    tracking.start(trainer.loggers, cfg)
    status = "failed"
    try:
        if cfg.get("compile"):
            compile_networks(module)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.global_step == 0:  # e.g. trainer.limit_train_batches=0 or max_time reached
            raise ConfigError(
                "training ended before its first optimiser step, so nothing is exported or "
                f"tested (trainer.max_steps={cfg.trainer.max_steps}, max_epochs="
                f"{cfg.trainer.get('max_epochs')}, limit_train_batches="
                f"{cfg.trainer.get('limit_train_batches', 1.0)}, max_time="
                f"{cfg.trainer.get('max_time')}); let it train at least one step"
            )
        metric = trainer.callback_metrics.get(cfg.get("optimized_metric", "val/psnr_y_best"))
        chosen = chosen_checkpoint(trainer, select)
        if chosen and trainer.is_global_zero:
            log.info("checkpoint.select=%s: %s", select, chosen)
            if cfg.get("export_weights", True):
                path = out_dir / f"{cfg.run_name}.pth"
                log.info(
                    "generator weights: %s", export_generator(module.net, chosen, path, select)
                )
                if hasattr(module, "net_d"):
                    path = out_dir / f"{cfg.run_name}_net_d.pth"
                    written = export_discriminator(module.net_d, chosen, path, select)
                    log.info("discriminator weights: %s", written)
            if cfg.get("test_after_fit", True):
                test_after_fit(cfg, chosen, module.device, datamodule, trainer.loggers, out_dir)
        status = "success"
    finally:
        tracking.finish(trainer.loggers, status)
    return float(metric) if metric is not None else math.nan


def test_after_fit(
    cfg: DictConfig, ckpt: str, device: torch.device, datamodule, loggers, out_dir: Path
) -> None:
    """The chosen checkpoint and bicubic on the held-out images, through ``medsr.evaluate``'s
    scoring path in float32: summary line, results files, W&B table, comparison picture."""
    net = load_pretrained(build_network(cfg, init=False), ckpt)
    method = f"{cfg.model.tag}_{cfg.model.size_tag}"
    methods = [
        Method(method, Upscaler(net, cfg.scale, device=device, precision="32")),
        Method(BICUBIC, Upscaler(build_model("bicubic", cfg.scale), cfg.scale, device=device)),
    ]
    crop = _crop(cfg)
    figure = (
        ComparisonFigure(method, out_dir / "comparison.png")
        if cfg.get("comparison_figure", True)
        else None
    )
    datamodule.setup("test")
    scores = score_sets(
        methods, datamodule, cfg.scale, crop, device, Protocol("32"), on_image=figure
    )
    log_results(loggers, scores.rows)
    for logger in loggers:  # the dashboards' headline: the trained model over all held-out images
        logger.log_metrics(
            {f"test/{m}_y": weighted_mean(scores.rows, method, m) for m in ("psnr", "ssim")}
        )
        logger.save()
    write_results(scores.rows, out_dir)
    print(summary_line(cfg.task_name, method, cfg.scale, scores.rows), flush=True)
    if figure is not None and figure.written:
        log.info("comparison figure: %s", figure.written)


def _crop(cfg: DictConfig) -> int:
    crop = cfg.model.lit.get("crop_border")
    return cfg.scale if crop is None else int(crop)


def _run_name(cfg: DictConfig) -> str:
    try:
        return str(cfg.run_name)
    except Exception:  # an unresolvable setting is what the job reports, not this
        return "?"


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    metric = str(cfg.get("optimized_metric", "val/psnr_y_best"))
    try:
        value = train(cfg, out_dir)
    except Exception as err:
        known = medsr_error(err)
        if known is not None:
            log.error("%s", known)
        elif multirun:
            log.exception("job %s failed", hydra_cfg.job.num)
        message = str(known) if known is not None else f"{type(err).__name__}: {err}"
        if rank_zero_only.rank == 0:
            write_job_result(
                out_dir,
                run_name=_run_name(cfg),
                status="failed",
                metric=metric,
                value=None,
                error=message,
            )
        if multirun:
            return math.nan  # reported in the job's log and the sweep summary; the sweep goes on
        if known is None:
            raise
        raise SystemExit(USER_ERROR_EXIT) from None
    if rank_zero_only.rank == 0:
        write_job_result(
            out_dir, run_name=_run_name(cfg), status="ok", metric=metric, value=value, error=None
        )
    return value


if __name__ == "__main__":
    main()
