"""The results table: ``python -m medsr.evaluate model=<name> ckpt=<file> data=benchmark scale=<s>``.

Every image of every evaluation set goes once through every method (interpolation baselines and
networks alike) on the one scoring path that training also uses (``medsr.evaluation.scoring``).
Writes ``results.json``, ``results.csv``, ``results.md``, ``per_image.csv`` (and
``figures/*.png`` with ``figures=true``) into the run folder and prints the Markdown table with
the protocol in words.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medsr._cli import run_cli
from medsr.data.datamodules import plain_target
from medsr.data.degradations import build_degradation
from medsr.errors import whole_number
from medsr.evaluation.consistency_report import parse_mode, projection_settings
from medsr.evaluation.inference import parse_tta
from medsr.evaluation.methods import build_methods
from medsr.evaluation.networks import resolve_device
from medsr.evaluation.report import ThesisFigures
from medsr.evaluation.results import (
    ResultRow,
    log_results,
    markdown_report,
    write_per_image,
    write_results,
)
from medsr.evaluation.scoring import Protocol, check_image_sizes, score_sets
from medsr.host import tune_host
from medsr.ops import check_scale

log = logging.getLogger("medsr.evaluate")  # not __name__, which is "__main__" under python -m


def evaluate(cfg: DictConfig, out_dir: Path) -> list[dict]:
    """Run the evaluation described by ``cfg``; write the results into ``out_dir``; return the rows
    (as in ``results.json``)."""
    scale = check_scale(cfg.scale)
    crop = (
        scale
        if cfg.get("crop_border") is None
        else whole_number("crop_border", cfg.crop_border, minimum=0)
    )
    device = resolve_device(cfg.get("device"))
    consistency = parse_mode(cfg.get("consistency"))
    projection = projection_settings(consistency, cfg.get("projection"))
    degradation = (cfg.get("degradation") or {}).get("name", "bicubic")
    if consistency != "false" and degradation != "bicubic":
        log.warning(
            "consistency=%s checks the SR against the bicubic model of the LR; with "
            "degradation=%s lr_psnr also measures how far that model is from the degradation",
            consistency,
            degradation,
        )
    methods = build_methods(cfg, scale, device, projection)
    # A realistic degradation makes each test image's LR with the image's own seeded generator.
    # The plain data class: evaluation needs no Lightning (2 s of imports).
    datamodule = instantiate(
        cfg.data,
        _target_=plain_target(cfg.data._target_),
        degradation=build_degradation(cfg.get("degradation")),
    )
    datamodule.setup("test")
    check_image_sizes(datamodule, ["test"], crop, "crop_border")
    figures = None
    if cfg.get("figures"):
        figures = ThesisFigures(
            out_dir,
            scale,
            crop,
            cfg.get("figure_images") or [],
            cfg.get("figure_box"),
            int(cfg.figure_crop),
        )
    protocol = Protocol(
        str(cfg.precision),
        whole_number("tile", cfg.tile),
        whole_number("tile_overlap", cfg.tile_overlap),
        parse_tta(cfg.get("tta")),
        consistency,
        projection,
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not cfg.get("progress", True)) as bar:
        loaders = datamodule.test_dataloader()
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        total = sum(len(dl.dataset) for dl in loaders)
        tune_host(workers=max(dl.num_workers for dl in loaders))
        task = bar.add_task(f"evaluating {len(methods)} method(s)", total=total)
        scores = score_sets(
            methods,
            datamodule,
            scale,
            crop,
            device,
            protocol,
            on_image=figures,
            on_progress=lambda: bar.advance(task),
        )
    write_results(scores.rows, out_dir)
    write_per_image(scores.per_image, out_dir / "per_image.csv")
    rows = [r.as_dict() for r in scores.rows]
    print(markdown_report(rows), end="", flush=True)
    log.info("results: %s", out_dir)
    _log_to_loggers(cfg, methods[-1].name, scores.rows, figures.paths if figures else [])
    return rows


def _log_to_loggers(
    cfg: DictConfig, last_method: str, rows: list[ResultRow], figures: list[Path]
) -> None:
    """W&B (and any logger with ``log_image``/``log_table``): the config, the table, the figures."""
    group = cfg.get("logger")
    if not group:
        return
    with open_dict(cfg):
        if cfg.get("model") is None:  # logger configs name the run after model.tag
            cfg.model = {"tag": last_method, "size_tag": "", "arch": "eval"}
    loggers = [
        instantiate(node) for node in group.values() if node is not None and "_target_" in node
    ]
    log_results(loggers, rows, key="results")
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if figures and hasattr(logger, "log_image"):
            logger.log_image(
                key="figures", images=[str(p) for p in figures], caption=[p.stem for p in figures]
            )
        logger.finalize("success")
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "finish"):
            experiment.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_cli(lambda: evaluate(cfg, Path(HydraConfig.get().runtime.output_dir)), log)


if __name__ == "__main__":
    main()
