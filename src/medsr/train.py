"""Training entry point: ``python -m medsr.train model=edsr data=df2k scale=2 [key=value ...]``.

Composes and instantiates data, network, LightningModule, callbacks, loggers and trainer, fits
(``resume=auto`` or ``ckpt_path=<file>`` resumes), exports the generator
(``<run>/<run_name>.pth``), then scores the best checkpoint on the held-out set against bicubic
(summary line, ``results.{json,csv,md}``, W&B table). Returns ``optimized_metric``
(``val/psnr_y_best``) for Hydra's optimising sweepers; in a multirun a failed job returns NaN,
is reported, and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from medsr import config as _config  # noqa: F401  (registers the OmegaConf resolvers)
from medsr import tracking
from medsr.callbacks import EMAWeights
from medsr.errors import ConfigError, MedsrError
from medsr.export import export_generator
from medsr.lit import SRModule
from medsr.models import build_model, load_pretrained
from medsr.quiet import quiet_third_party
from medsr.results import protocol_words, write_results
from medsr.resume import resume_checkpoint
from medsr.summary import summary_line, write_comparison_figure
from medsr.sweep import write_job_result

log = logging.getLogger("medsr.train")

SUPPORTED_SCALES = (2, 3, 4)


def check_scale(scale: object) -> int:
    if scale not in SUPPORTED_SCALES:
        raise ConfigError(f"scale={scale} is not supported; set scale=2, scale=3 or scale=4")
    return int(scale)


def build_network(cfg: DictConfig, init: bool = True) -> torch.nn.Module:
    """The network of ``cfg.model``, loaded from ``model.init_from`` when set and ``init``."""
    net = build_model(cfg.model.arch, cfg.scale, **OmegaConf.to_container(cfg.model.net, resolve=True))
    if init and cfg.model.get("init_from"):
        load_pretrained(net, cfg.model.init_from)
        log.info("initialised %s from %s", cfg.model.arch, cfg.model.init_from)
    return net


def build_module(cfg: DictConfig, net: torch.nn.Module) -> pl.LightningModule:
    module_factory = instantiate(cfg.model.lit)
    return module_factory(
        net=net,
        scale=cfg.scale,
        model_spec=getattr(net, "medsr_spec", None),
        channels_last=bool(cfg.get("channels_last", False)),
    )


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); None -> []."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    decay = cfg.model.get("ema_decay")
    # EMA first: the other callbacks' end-of-training hooks see the averaged weights.
    ema = [EMAWeights(decay=decay)] if decay is not None else []
    return ema + instantiate_group(cfg.get("callbacks"))


def compile_networks(module: pl.LightningModule) -> None:
    """``torch.compile`` the generator (and discriminator) in place. Not the LightningModule: its
    training steps hold host-side logic (logging, optimiser calls) that dynamo fails on.
    ``nn.Module.compile`` leaves parameter names, so checkpoints are unchanged."""
    for name in ("net", "net_d"):
        network = getattr(module, name, None)
        if isinstance(network, torch.nn.Module):
            network.compile()


def strategy_for(cfg: DictConfig, module: pl.LightningModule) -> dict:
    """GAN modules (manual optimisation) back-propagate G and D losses separately, each reaching
    only part of the parameters: plain DDP needs ``find_unused_parameters`` for them."""
    if cfg.trainer.get("strategy") == "ddp" and not module.automatic_optimization:
        return {"strategy": "ddp_find_unused_parameters_true"}
    return {}


def train(cfg: DictConfig, out_dir: Path | None = None) -> float:
    """Fit, export, test; returns ``cfg.optimized_metric`` (NaN when it was never logged).

    Args:
        cfg: the composed ``train`` config.
        out_dir: the run folder (default: Hydra's output folder).
    """
    quiet_third_party()
    check_scale(cfg.scale)
    out_dir = Path(out_dir) if out_dir is not None else Path(HydraConfig.get().runtime.output_dir)
    ckpt_path = resume_checkpoint(cfg.get("resume"), cfg.get("ckpt_path"), out_dir, cfg.task_name, cfg.run_name)
    pl.seed_everything(cfg.seed, workers=True)

    # The network first: impossible combinations (RRDBNet x3) fail before any data is read.
    net = build_network(cfg, init=ckpt_path is None)  # a resumed run takes its weights from the checkpoint
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, net)
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=build_callbacks(cfg), logger=loggers or False, **strategy_for(cfg, module)
    )
    tracking.start(trainer.loggers, cfg)
    status = "failed"
    try:
        if cfg.get("compile"):
            compile_networks(module)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        metric = trainer.callback_metrics.get(cfg.get("optimized_metric", "val/psnr_y_best"))
        best = _best_checkpoint(trainer)
        if best and cfg.get("export_weights", True) and trainer.is_global_zero:
            path = export_generator(module.net, best, out_dir / f"{cfg.run_name}.pth")
            log.info("generator weights: %s", path)
        if cfg.get("test_after_fit", True):
            _test(cfg, trainer, module, datamodule, best, out_dir)
        status = "success"
    finally:
        tracking.finish(trainer.loggers, status)
    return float(metric) if metric is not None else math.nan


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The first checkpoint callback's best file (the validation-PSNR one); without one (no
    validation ran) the next callback's, i.e. last.ckpt."""
    for callback in trainer.checkpoint_callbacks:
        if callback.best_model_path or callback.last_model_path:
            return callback.best_model_path or callback.last_model_path
    return None


def _test(cfg: DictConfig, trainer: pl.Trainer, module, datamodule, ckpt: str | None, out_dir: Path) -> None:
    """Best checkpoint vs bicubic on the held-out images: summary line, results files, W&B table."""
    model_scores = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    crop = cfg.model.lit.get("crop_border")
    bicubic = SRModule(build_model("bicubic", cfg.scale), cfg.scale, optimizer=None, crop_border=crop)
    loggers, trainer.loggers = trainer.loggers, []  # the baseline's scores go to the results table only
    try:
        bicubic_scores = trainer.test(bicubic, datamodule=datamodule, verbose=False)[0]
    finally:
        trainer.loggers = loggers
    sets = list(datamodule.eval_set_names)
    counts = {name: len(dl.dataset) for name, dl in zip(sets, _as_list(datamodule.test_dataloader()), strict=True)}
    rows = [
        *_result_rows(f"{cfg.model.tag}_{cfg.model.size_tag}", model_scores, cfg, datamodule, counts, crop),
        *_result_rows("Bicubic", bicubic_scores, cfg, datamodule, counts, crop),
    ]
    tracking.log_results(trainer.loggers, rows)
    if not trainer.is_global_zero:
        return
    write_results(rows, out_dir)
    print(summary_line(cfg, model_scores, bicubic_scores, sum(counts.values())), flush=True)
    if cfg.get("comparison_figure", True):
        path = write_comparison_figure(module, datamodule, out_dir / "comparison.png")
        log.info("comparison figure: %s", path)


def _result_rows(method: str, scores: dict, cfg: DictConfig, datamodule, counts: dict, crop) -> list[dict]:
    """``medsr.results`` rows (one per held-out set) from ``test/<set>/<metric>`` scores."""
    crop = cfg.scale if crop is None else crop
    set_protocols = getattr(datamodule, "set_protocols", {}) or {}
    rows = []
    for name, n in counts.items():
        key = f"test/{name}/" if f"test/{name}/psnr_y" in scores else "test/"
        row = {"method": method, "scale": cfg.scale, "dataset": name, "psnr": scores[key + "psnr_y"],
               "ssim": scores[key + "ssim_y"], "n_images": n}  # fmt: skip
        fov = key + "psnr_y_fov" in scores
        row["protocol"] = protocol_words(
            cfg.scale, crop, set_protocols.get(name, datamodule.protocol), str(cfg.trainer.precision), fov=fov
        )
        if fov:
            row["psnr_fov"], row["ssim_fov"] = scores[key + "psnr_y_fov"], scores[key + "ssim_y_fov"]
        rows.append(row)
    return rows


def _as_list(loaders):
    return loaders if isinstance(loaders, (list, tuple)) else [loaders]


def medsr_error(err: BaseException) -> MedsrError | None:
    """The MedsrError behind ``err`` (Hydra and OmegaConf wrap errors raised while instantiating
    or resolving), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MedsrError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


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
            write_job_result(out_dir, run_name=_run_name(cfg), status="failed", metric=metric, value=None, error=message)
        if multirun:
            return math.nan  # reported in the job's log and the sweep summary; the sweep goes on
        if known is None:
            raise
        raise SystemExit(2) from None
    if rank_zero_only.rank == 0:
        write_job_result(out_dir, run_name=_run_name(cfg), status="ok", metric=metric, value=value, error=None)
    return value


if __name__ == "__main__":
    main()
