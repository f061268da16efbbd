"""The results table: ``python -m medsr.evaluate model=<name> ckpt=<file> data=benchmark scale=<s>``.

Every image of every evaluation set goes once through every method (interpolation baselines
and networks alike): SR is clamped and rounded to the HR bit depth (8 bits for the benchmarks,
as published tables), then PSNR/SSIM on Y with ``crop_border = scale``; fundus sets are also
scored inside the field of view. Writes ``results.json``, ``results.csv``, ``results.md``,
``per_image.csv`` (and ``figures/*.png`` with ``figures=true``) into the run folder and prints
the Markdown table with the protocol in words.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.utilities import move_data_to_device
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from medsr import config as _config  # noqa: F401  (registers the OmegaConf resolvers)
from medsr.errors import ConfigError, MedsrError
from medsr.figures import metric_caption, most_detailed_box, thesis_figure
from medsr.inference import Upscaler, load_network, model_config, resolve_device
from medsr.metrics import psnr_y, ssim_y
from medsr.models import build_model
from medsr.models.interpolation import INTERPOLATION_MODES
from medsr.predict import parse_tta
from medsr.results import markdown_report, protocol_words, write_per_image, write_results

log = logging.getLogger("medsr.evaluate")

SUPPORTED_SCALES = (2, 3, 4)


@dataclass
class Method:
    """One row group of the table: a name and the Upscaler that produces its SR images."""

    name: str
    upscaler: Upscaler
    baseline: bool


def _model_entries(cfg: DictConfig) -> list[tuple[Mapping | None, str | None, str | None]]:
    """(model config, weights file, label) of every method, baselines first, duplicates dropped."""
    entries: list[tuple[Mapping | None, str | None, str | None]] = []
    for mode in cfg.get("baselines") or []:
        if mode not in INTERPOLATION_MODES:
            raise ConfigError(f"baselines=[..., {mode}, ...]: use interpolation modes {', '.join(INTERPOLATION_MODES)}")
        entries.append((model_config(mode), None, None))
    model = cfg.get("model")
    if model is not None and model.get("arch") in INTERPOLATION_MODES:
        entries.append((model, None, None))
    elif model is not None or cfg.get("ckpt"):
        entries.append((model, cfg.get("ckpt"), None))
    for label, value in (cfg.get("ckpts") or {}).items():
        if isinstance(value, Mapping):
            name = value.get("model", label)
            conf = model_config(name)
            if conf is not None and value.get("net") is not None:
                conf.net = value["net"]
            if conf is not None and value.get("tag") is not None:
                conf.tag = value["tag"]
            entries.append((conf, value.get("ckpt"), str(label)))
        else:
            entries.append((model_config(str(label)), str(value), str(label)))
    unique, seen = [], set()
    for conf, ckpt, label in entries:
        key = ((conf or {}).get("arch"), ckpt)
        if ckpt is None and key in seen:
            continue
        seen.add(key)
        unique.append((conf, ckpt, label))
    if not unique:
        raise ConfigError("nothing to evaluate: give model=<name> ckpt=<file>, ckpts={<name>: <file>} or baselines=[bicubic]")
    return unique


def build_methods(cfg: DictConfig, scale: int, device: torch.device) -> list[Method]:
    tta = parse_tta(cfg.get("tta"))
    methods: list[Method] = []
    for conf, ckpt, label in _model_entries(cfg):
        net, _, tag = load_network(ckpt, scale, conf)
        baseline = ckpt is None
        name = tag or label
        if any(m.name == name for m in methods):  # e.g. EDSR baseline and EDSR in one table
            size = (conf or {}).get("size_tag") or label or ckpt
            name = f"{name}_{size}"
        upscaler = Upscaler(
            net, scale, device=device, precision=str(cfg.precision), tta=tta and not baseline,
            tile=int(cfg.tile), tile_overlap=int(cfg.tile_overlap),
        )  # fmt: skip
        methods.append(Method(name + ("+" if tta and not baseline else ""), upscaler, baseline))
    return methods


def _quantize(x: Tensor, bits: int) -> Tensor:
    levels = float(2**bits - 1)
    return torch.floor(x.clamp(0, 1) * levels + 0.5) / levels


def _scores(sr: Tensor, hr: Tensor, crop: int, mask: Tensor | None) -> dict[str, float]:
    """Y-PSNR/SSIM of one image, and inside the field of view when a mask is given."""
    scores = {"psnr": float(psnr_y(sr, hr, crop)[0]), "ssim": float(ssim_y(sr, hr, crop)[0])}
    if mask is not None:
        scores["psnr_fov"] = float(psnr_y(sr, hr, crop, mask=mask)[0])
        scores["ssim_fov"] = float(ssim_y(sr, hr, crop, mask=mask)[0])
    return scores


def _figure_wanted(cfg: DictConfig, name: str, first: bool) -> bool:
    if not cfg.get("figures"):
        return False
    chosen = [str(n) for n in cfg.get("figure_images") or []]
    return (Path(name).stem in chosen or name in chosen) if chosen else first


def evaluate(cfg: DictConfig, out_dir: Path) -> list[dict]:
    """Run the evaluation described by ``cfg``; write the results into ``out_dir``; return the rows."""
    scale = cfg.scale
    if scale not in SUPPORTED_SCALES:
        raise ConfigError(f"scale={scale} is not supported; set scale=2, scale=3 or scale=4")
    crop = scale if cfg.get("crop_border") is None else int(cfg.crop_border)
    device = resolve_device(cfg.get("device"))
    methods = build_methods(cfg, scale, device)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    loaders = datamodule.test_dataloader()
    loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
    names = list(datamodule.eval_set_names)
    set_protocols = getattr(datamodule, "set_protocols", {}) or {}

    per_image: list[dict] = []
    depths: dict[str, set[int]] = defaultdict(set)
    figures: list[Path] = []
    bicubic = next((m for m in methods if getattr(m.upscaler.net, "mode", None) == "bicubic"), None)
    n_total = sum(len(dl.dataset) for dl in loaders)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not cfg.get("progress", True)) as bar:
        task = bar.add_task(f"evaluating {len(methods)} method(s)", total=n_total)
        for dataset, loader in zip(names, loaders, strict=True):
            for index, batch in enumerate(loader):
                bits = 16 if batch["hr"].dtype == torch.uint16 else 8
                depths[dataset].add(bits)
                batch = datamodule.on_after_batch_transfer(move_data_to_device(batch, device), 0)
                name = str(batch["name"][0])
                lr, hr, mask = batch["lr"], batch["hr"], batch.get("mask")
                figure = _figure_wanted(cfg, name, index == 0)
                panels = []
                for method in methods:
                    sr = _quantize(method.upscaler(lr).to(device), bits)
                    row = {"method": method.name, "scale": scale, "dataset": dataset, "image": name}
                    row.update(_scores(sr, hr, crop, mask))
                    per_image.append(row)
                    if figure:
                        panels.append((method, sr[0].cpu(), row))
                if figure:
                    figures.append(_write_figure(cfg, out_dir, dataset, name, scale, crop, lr, hr, panels, bicubic, bits))
                bar.advance(task)

    def protocol(dataset: str) -> str:
        fov = any("psnr_fov" in r for r in per_image if r["dataset"] == dataset)
        bits = "/".join(str(b) for b in sorted(depths[dataset])) or "8"
        return protocol_words(
            scale, crop, set_protocols.get(dataset, datamodule.protocol), str(cfg.precision), bits=bits,
            tile=int(cfg.tile), tile_overlap=int(cfg.tile_overlap), tta=parse_tta(cfg.get("tta")), fov=fov,
        )  # fmt: skip

    rows = _aggregate(per_image, methods, names, protocol)
    write_results(rows, out_dir)
    write_per_image(per_image, out_dir / "per_image.csv")
    print(markdown_report(rows), end="", flush=True)
    log.info("results: %s", out_dir)
    _log_to_loggers(cfg, methods, rows, figures)
    return rows


def _aggregate(per_image: list[dict], methods: list[Method], datasets: list[str], protocol) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in per_image:
        groups[(r["method"], r["dataset"])].append(r)
    rows = []
    for m in methods:
        for d in datasets:
            items = groups.get((m.name, d), [])
            if not items:
                continue
            row = {
                "method": m.name, "scale": items[0]["scale"], "dataset": d,
                "psnr": _mean(items, "psnr"), "ssim": _mean(items, "ssim"),
                "n_images": len(items), "protocol": protocol(d),
            }  # fmt: skip
            if "psnr_fov" in items[0]:
                row["psnr_fov"], row["ssim_fov"] = _mean(items, "psnr_fov"), _mean(items, "ssim_fov")
            rows.append(row)
    return rows


def _mean(items: list[dict], key: str) -> float:
    return math.fsum(r[key] for r in items) / len(items)


@torch.no_grad()
def _write_figure(cfg, out_dir, dataset, name, scale, crop, lr, hr, panels, bicubic, bits) -> Path:
    """GT | bicubic | every other method, the same crop, each captioned with PSNR/SSIM."""
    hr0 = hr[0].cpu()
    box = tuple(cfg.figure_box) if cfg.get("figure_box") else most_detailed_box(hr0, int(cfg.figure_crop))
    shown = [("GT", hr0)]
    if bicubic is None:  # bicubic is always shown, even when it is not a row of the table
        sr = _quantize(Upscaler(build_model("bicubic", scale), scale)(lr.cpu()), bits)
        scores = _scores(sr, hr.cpu(), crop, None)
        shown.append((metric_caption("Bicubic", scores["psnr"], scores["ssim"]), sr[0]))
    ordered = sorted(panels, key=lambda item: item[0] is not bicubic)  # bicubic first
    shown += [(metric_caption(m.name, row["psnr"], row["ssim"]), sr) for m, sr, row in ordered]
    figure = thesis_figure(hr0, shown, box, title=f"{dataset} / {name}, x{scale}")
    path = out_dir / "figures" / f"{dataset}_{Path(name).stem}_x{scale}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)
    return path


def _log_to_loggers(cfg: DictConfig, methods: list[Method], rows: list[dict], figures: list[Path]) -> None:
    """W&B (and any logger with ``log_image``/``log_table``): the figures and the table."""
    group = cfg.get("logger")
    if not group:
        return
    with open_dict(cfg):
        if cfg.get("model") is None:  # logger configs name the run after model.tag
            cfg.model = {"tag": methods[-1].name, "size_tag": "", "arch": "eval"}
    for node in group.values():
        if node is None or "_target_" not in node:
            continue
        logger = instantiate(node)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if hasattr(logger, "log_table"):
            columns = ["method", "scale", "dataset", "psnr", "ssim", "n_images"]
            logger.log_table(key="results", columns=columns, data=[[r[c] for c in columns] for r in rows])
        if figures and hasattr(logger, "log_image"):
            logger.log_image(key="figures", images=[str(p) for p in figures], caption=[p.stem for p in figures])
        logger.log_metrics({f"test/{r['dataset']}/{r['method']}/psnr_y": r["psnr"] for r in rows})
        logger.finalize("success")
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "finish"):
            experiment.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))
    except MedsrError as err:
        log.error("%s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
