"""Upscale images: ``python -m medsr.predict ckpt=<file> input=<file|folder> output=<folder>``.

Any size (tiles of ``tile`` LR pixels go to the device one at a time, the image stays in host
memory), 8/16-bit PNG/TIFF/JPEG, grayscale, RGBA. Writes ``<output>/<stem>.png`` (``format=``
chooses another; 16-bit inputs give 16-bit outputs). A file that cannot be read or written is
reported and skipped, the others still run; the exit code is then 1 (2 for a configuration
error, before any image is processed).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medsr.data.io import IMAGE_EXTENSIONS, list_images, read_image, write_image
from medsr.errors import ConfigError, DataError, MedsrError
from medsr.inference import Upscaler, load_network, resolve_device

log = logging.getLogger("medsr.predict")

MIN_SIDE = 2  # reflection padding (RRDBNet x2) needs two pixels per side
FORMATS = {"png": ".png", "tif": ".tif", "tiff": ".tiff", "jpg": ".jpg", "jpeg": ".jpg", "same": None}


def parse_tta(value: object) -> bool:
    """``tta=x8`` -> True; null / none / false -> False."""
    if value in (None, False, "none", "null", ""):
        return False
    if str(value).lower() == "x8":
        return True
    raise ConfigError(f"tta={value!r} is not valid; use tta=x8 (geometric self-ensemble) or leave it unset")


def upscale_array(
    upscaler: Upscaler,
    image: np.ndarray,
    on_tile: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, C) uint8/uint16 array -> (sH, sW, C) array of the same dtype.

    The input is read tile by tile from the array itself (no float copy of the image) and the
    output is written into its final integer array row block by row block.

    Args:
        upscaler: the network and its tiling settings.
        image: the input image.
        on_tile: progress callback ``on_tile(done, total)``.
        out: optional preallocated (sH, sW, C) array of the image's dtype to write into.
    """
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3:
        raise DataError(f"expected an (H, W, C) uint8/uint16 image, got {image.dtype} {image.shape}")
    h, w, c = image.shape
    s = upscaler.scale
    max_value = float(np.iinfo(image.dtype).max)
    if out is None:
        out = np.empty((h * s, w * s, c), dtype=image.dtype)
    elif out.shape != (h * s, w * s, c) or out.dtype != image.dtype:
        raise ValueError(f"out must be a {(h * s, w * s, c)} {image.dtype} array, got {out.shape} {out.dtype}")
    target = torch.uint8 if image.dtype == np.uint8 else torch.uint16

    def sink(first: int, block: torch.Tensor) -> None:
        # Round half up to the input's levels (as medsr.ops.quantize does for 8 bits).
        levels = block.clamp_(0, 1).mul_(max_value).add_(0.5).floor_().to(target)
        out[first : first + block.shape[1]] = levels.permute(1, 2, 0).numpy()

    with warnings.catch_warnings():  # decoded arrays may be read-only; the view is only read
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(image).permute(2, 0, 1)[None]  # a view: no copy of the image
    upscaler(x, max_value=max_value, sink=sink, on_tile=on_tile)
    return out


def _inputs(path: str, recursive: bool) -> tuple[Path, list[Path]]:
    """(folder the outputs mirror, image files)."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise DataError(f"input={p} is not an image file ({exts})")
        return p.parent, [p]
    if not p.exists():
        raise DataError(f"input={p} does not exist; give an image file or a folder of images")
    return p, list_images(p, recursive=recursive, key="input")


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".medsr-write-test-"):
            pass
    except OSError as err:
        raise DataError(
            f"cannot write to output={folder}: {err.strerror or err}; choose a folder you can write to"
        ) from None


def _targets(root: Path, files: list[Path], out_dir: Path, fmt: str) -> list[Path]:
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not valid; use one of {', '.join(FORMATS)}")
    targets = []
    for f in files:
        suffix = FORMATS[fmt] or f.suffix.lower()
        targets.append(out_dir / f.relative_to(root).with_suffix(suffix))
    seen: dict[Path, Path] = {}
    for f, t in zip(files, targets, strict=True):
        if t in seen:
            raise ConfigError(f"{seen[t].name} and {f.name} would both be written to {t}; use format=same or separate folders")
        if t.resolve() == f.resolve():
            raise ConfigError(f"output={out_dir} would overwrite the input {f}; choose another output folder")
        seen[t] = f
    return targets


def predict(cfg: DictConfig) -> list[tuple[Path, str]]:
    """Upscale every input image; returns the (file, reason) of those that failed."""
    if not cfg.get("input") or not cfg.get("output"):
        raise ConfigError("give the images and where to write them: input=<file or folder> output=<folder>")
    root, files = _inputs(str(cfg.input), bool(cfg.get("recursive", False)))
    out_dir = Path(str(cfg.output)).expanduser()
    targets = _targets(root, files, out_dir, str(cfg.get("format", "png")).lower())
    _check_writable(out_dir)
    net, scale, tag = load_network(cfg.get("ckpt"), cfg.get("scale"), cfg.get("model"))
    device = resolve_device(cfg.get("device"))
    upscaler = Upscaler(
        net, scale, device=device, precision=str(cfg.get("precision", "auto")), tta=parse_tta(cfg.get("tta")),
        tile=int(cfg.tile), tile_overlap=int(cfg.tile_overlap),
    )  # fmt: skip
    log.info(
        "%s x%d on %s (%s), tile=%s overlap=%d, receptive radius %s LR px: %s",
        tag, scale, device, upscaler.amp or "float32", cfg.tile or "whole image", cfg.tile_overlap,
        upscaler.radius, "tiles equal the untiled result" if 2 * upscaler.radius <= cfg.tile_overlap
        else "tile overlaps are cross-faded",
    )  # fmt: skip
    failed: list[tuple[Path, str]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not cfg.get("progress", True), transient=False) as bar:
        images = bar.add_task("images", total=len(files))
        tiles = bar.add_task("tiles", total=None)
        for src, dst in zip(files, targets, strict=True):
            bar.update(tiles, description=f"tiles of {src.name}", completed=0, total=None)
            try:
                image = read_image(src)
                if min(image.shape[:2]) < MIN_SIDE:
                    raise DataError(f"{src} is {image.shape[1]}x{image.shape[0]}: too small to upscale (needs {MIN_SIDE} px per side)")
                if dst.suffix in (".jpg", ".jpeg") and (image.dtype == np.uint16 or image.shape[-1] == 4):
                    raise DataError(f"{src}: JPEG cannot hold a 16-bit or RGBA result; use format=png or format=tif")
                result = upscale_array(upscaler, image, on_tile=lambda d, t: bar.update(tiles, completed=d, total=t))
                write_image(dst, result)
            except (MedsrError, OSError) as err:
                failed.append((src, str(err)))
                log.error("skipped %s: %s", src, err)
            bar.advance(images)
    done = len(files) - len(failed)
    log.info("wrote %d of %d images to %s", done, len(files), out_dir)
    if failed:
        log.error("%d of %d images failed: %s", len(failed), len(files), ", ".join(str(f) for f, _ in failed))
    return failed


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        failed = predict(cfg)
    except MedsrError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
