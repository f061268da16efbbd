"""The one scoring path: every method on every image of a DataModule's evaluation sets.

``medsr.evaluate`` and ``medsr.train`` (after fit) both call :func:`score_sets`, so their rows,
tables and W&B tables are the same by construction. Per image: SR is clamped and rounded to the
HR bit depth (8 bits for the benchmarks, as published tables), then PSNR/SSIM on Y with
``crop_border`` (and inside the field of view for fundus sets); with ``consistency`` on, the
LR-PSNR of the same SR, and with self-ensemble, the spread of its eight outputs (``tta_std``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from medsr.data.decode import record_size
from medsr.data.degrade import batch_bits
from medsr.data.sources import IMRESIZE_PROTOCOL, imresize_protocol
from medsr.errors import DataError
from medsr.evaluation.consistency import BackProjection, lr_psnr
from medsr.evaluation.inference import Upscaler
from medsr.evaluation.results import ImageScore, ResultRow, protocol_words
from medsr.metrics import SSIM_WINDOW, psnr_y, ssim_y
from medsr.ops import quantize

# (dataset, index in the set, image name, batch on the device (float lr/hr, mask, bits),
#  {method: SR}, {method: scores})
ImageHook = Callable[[str, int, str, dict, dict[str, Tensor], dict[str, ImageScore]], None]


@dataclass
class Method:
    """One row group of a table: a name and the Upscaler that produces its SR images."""

    name: str
    upscaler: Upscaler


@dataclass
class Scores:
    """What :func:`score_sets` returns: the table rows and the per-image scores behind them."""

    rows: list[ResultRow]
    per_image: list[ImageScore]
    bits: dict[str, list[int]] = field(default_factory=dict)  # bit depths seen per dataset


@dataclass
class Protocol:
    """The settings a row's protocol words describe (see ``results.protocol_words``)."""

    precision: str = "32"
    tile: int = 0
    tile_overlap: int = 0
    tta: bool = False
    consistency: str = "false"  # false | true | project (see evaluation.consistency_report)
    projection: BackProjection | None = None


def image_scores(sr: Tensor, hr: Tensor, crop: int, mask: Tensor | None) -> dict[str, float]:
    """Y-PSNR/SSIM of one image, and inside the field of view when a mask is given."""
    scores = {"psnr": float(psnr_y(sr, hr, crop)[0]), "ssim": float(ssim_y(sr, hr, crop)[0])}
    if mask is not None:
        scores["psnr_fov"] = float(psnr_y(sr, hr, crop, mask=mask)[0])
        scores["ssim_fov"] = float(ssim_y(sr, hr, crop, mask=mask)[0])
    return scores


def check_image_sizes(datamodule, stages: Sequence[str], crop: int, key: str) -> None:
    """Every evaluation image is large enough for SSIM's window once mod-cropped to the scale and
    stripped of ``crop`` pixels per side (headers only, before any network runs).

    Raises:
        DataError: naming the first such file, its size and the settings that matter (``key``:
            the crop setting of the calling command).
    """
    scale, need = datamodule.scale, SSIM_WINDOW + 2 * crop
    for stage in stages:
        for eval_set in datamodule.eval_sets(stage):
            for record in eval_set.records:
                h, w = record_size(record)
                if min(h - h % scale, w - w % scale) < need:
                    raise DataError(
                        f"evaluation image {record.path} is {w}x{h}: too small to score at x{scale} "
                        f"with {key}={crop} (SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window needs "
                        f"{need}x{need} before cropping); remove it from the set or lower {key}"
                    )


@torch.no_grad()
def score_sets(
    methods: Sequence[Method],
    datamodule,
    scale: int,
    crop: int,
    device: torch.device,
    protocol: Protocol | None = None,
    on_image: ImageHook | None = None,
    on_progress: Callable[[], None] | None = None,
) -> Scores:
    """Score every method on every test image of ``datamodule`` (set up for ``"test"``).

    Args:
        methods: the networks and baselines (their Upscalers do tiling, TTA, precision).
        datamodule: an ``SRDataModule``; its ``on_after_batch_transfer`` makes float LR/HR.
        scale: the upscaling factor.
        crop: pixels removed on each side before PSNR/SSIM.
        device: where batches go (each Upscaler keeps the image on the host itself).
        protocol: what the protocol words say about precision, tiles and TTA.
        on_image: called once per image with every method's SR (figures).
        on_progress: called after every image (progress bars).
    """
    protocol = protocol or Protocol()
    check_channels = getattr(datamodule, "check_channels", None)  # medical sets: RGB into grey
    for method in methods:
        if check_channels is not None and method.upscaler.in_channels is not None:
            check_channels(method.upscaler.in_channels)
    names = list(datamodule.eval_set_names)
    loaders = datamodule.test_dataloader()
    loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
    per_image: list[ImageScore] = []
    depths: dict[str, set[int]] = defaultdict(set)
    for dataset, loader in zip(names, loaders, strict=True):
        for index, batch in enumerate(loader):
            bits = batch_bits(batch["hr"], getattr(datamodule, "stored", None))
            depths[dataset].add(bits)
            batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            batch = datamodule.on_after_batch_transfer(batch, 0)
            batch["bits"] = bits
            name = str(batch["name"][0])
            srs, scores = {}, {}
            for method in methods:
                sr = quantize(method.upscaler(batch["lr"], bits=bits).to(device), bits)
                values = image_scores(sr, batch["hr"], crop, batch.get("mask"))
                if protocol.consistency != "false":
                    values["lr_psnr"] = float(lr_psnr(sr, batch["lr"], scale, bits)[0])
                if method.upscaler.spread:
                    values["tta_std"] = float(method.upscaler.last_spread.mean())
                scores[method.name] = ImageScore(method.name, scale, dataset, name, **values)
                srs[method.name] = sr
            per_image.extend(scores.values())
            if on_image is not None:
                on_image(dataset, index, name, batch, srs, scores)
            if on_progress is not None:
                on_progress()
    set_protocols = getattr(datamodule, "set_protocols", {}) or {}

    spread = any(m.upscaler.spread for m in methods)

    def words(dataset: str, fov: bool) -> str:
        bits = "/".join(str(b) for b in sorted(depths[dataset])) or "8"
        lr = set_protocols.get(dataset, datamodule.protocol)
        return protocol_words(
            scale,
            crop,
            imresize_protocol(bits=bits)
            if lr == IMRESIZE_PROTOCOL
            else lr,  # 16-bit sets: 16-bit LR
            protocol.precision,
            bits=bits,
            tile=protocol.tile,
            tile_overlap=protocol.tile_overlap,
            tta=protocol.tta,
            fov=fov,
            consistency=protocol.consistency,
            projection=protocol.projection,
            spread=spread,
        )

    rows = aggregate(per_image, [m.name for m in methods], names, words)
    return Scores(rows, per_image, {d: sorted(b) for d, b in depths.items()})


def aggregate(
    per_image: Sequence[ImageScore],
    methods: Sequence[str],
    datasets: Sequence[str],
    words: Callable[[str, bool], str],
) -> list[ResultRow]:
    """Mean scores per (method, dataset), methods in the given order."""
    groups: dict[tuple[str, str], list[ImageScore]] = defaultdict(list)
    for score in per_image:
        groups[(score.method, score.dataset)].append(score)
    rows = []
    for method in methods:
        for dataset in datasets:
            items = groups.get((method, dataset))
            if not items:
                continue
            optional = {
                key: _mean(items, key)
                for key in ("psnr_fov", "ssim_fov", "lr_psnr", "tta_std")
                if getattr(items[0], key) is not None
            }
            rows.append(
                ResultRow(
                    method=method,
                    scale=items[0].scale,
                    dataset=dataset,
                    psnr=_mean(items, "psnr"),
                    ssim=_mean(items, "ssim"),
                    n_images=len(items),
                    protocol=words(dataset, "psnr_fov" in optional),
                    **optional,
                )
            )
    return rows


def _mean(items: Sequence[ImageScore], key: str) -> float:
    return math.fsum(getattr(r, key) for r in items) / len(items)


def weighted_mean(rows: Sequence[ResultRow], method: str, key: str = "psnr") -> float:
    """Image-weighted mean of ``key`` over the datasets of ``method`` (the summary line's number)."""
    chosen = [r for r in rows if r.method == method]
    total = sum(r.n_images for r in chosen)
    return math.fsum(getattr(r, key) * r.n_images for r in chosen) / total if total else math.nan
