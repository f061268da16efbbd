"""Upscale images: ``python -m medsr.predict ckpt=<file> input=<file|folder> output=<folder>``.

``backend=onnxruntime ckpt=<file.onnx>`` runs an exported network (``python -m medsr.export``)
with onnxruntime instead of PyTorch, through the same tiling and 8/16-bit handling.

Any size (tiles of ``tile`` LR pixels go to the device one at a time, the image stays in host
memory), 8/16-bit PNG/TIFF/JPEG, grayscale, RGBA. Writes ``<output>/<stem>.png`` (``format=``
chooses another; 16-bit inputs give 16-bit outputs). DICOM and NIfTI files keep their format
by default: ``<stem>.dcm`` (a derived DICOM of the same stored representation) and
``<stem>.nii(.gz)`` (the affine's in-plane voxel size divided by the scale). A file that cannot be read or written is
reported and skipped, the others still run; the exit code is then 1 (2 for a configuration
error, before any image is processed).

Trust checks (``medsr.evaluation.consistency``): ``consistency=true`` writes
``<output>/consistency.csv`` (LR-PSNR and LR residual of every output), ``project`` first
back-projects every output (tile by tile) onto its input; ``consistency_maps=true`` and
``tta=x8 uncertainty_maps=true|overlay`` write heat maps beside each output.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medsr._cli import run_cli
from medsr.data.image_io import IMAGE_EXTENSIONS, list_images, read_image, write_image
from medsr.data.medical import list_medical, medical_kind
from medsr.errors import ConfigError, DataError, MedsrError, whole_number
from medsr.evaluation.backends import load_for_backend
from medsr.evaluation.consistency_report import (
    PredictChecks,
    parse_mode,
    parse_uncertainty_maps,
    projection_settings,
)
from medsr.evaluation.inference import Upscaler, parse_tta, upscale_array
from medsr.evaluation.volumes import medical_target, upscale_medical
from medsr.files import atomic_write_text
from medsr.host import tune_host
from medsr.ops import check_scale

log = logging.getLogger("medsr.predict")  # not __name__, which is "__main__" under python -m

MIN_SIDE = 2  # reflection padding (RRDBNet x2) needs two pixels per side
FORMATS = {
    "auto": None,  # PNG for images, the input's format for DICOM/NIfTI
    "png": ".png",
    "tif": ".tif",
    "tiff": ".tiff",
    "jpg": ".jpg",
    "jpeg": ".jpg",
    "same": None,
}


OUTPUT_MARK = ".medsr-predict-output"  # marks a folder of results: never read back as input


def _inputs(path: str, recursive: bool, out_dir: Path) -> tuple[Path, list[Path]]:
    """(folder the outputs mirror, image / DICOM / NIfTI files). Results of this and earlier
    runs (the output folder, and any folder marked as predict's output) are not inputs."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS and medical_kind(p) is None:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS | {".dcm", ".nii", ".nii.gz"}))
            raise DataError(f"input={p} is not an image file ({exts})")
        return p.parent, [p]
    if not p.exists():
        raise DataError(f"input={p} does not exist; give an image file or a folder of images")
    if out_dir.resolve() == p.resolve():
        raise ConfigError(
            f"output={out_dir} is the input folder: the results would overwrite the inputs or be "
            "read as inputs by the next run; choose another output folder"
        )
    medical = list_medical(p, recursive=recursive)
    try:
        images = list_images(p, recursive=recursive, key="input")
    except DataError:
        if not medical:
            raise
        images = []
    files = sorted(images + medical, key=lambda f: f.relative_to(p).as_posix())
    if not recursive:
        return p, files
    outputs = {out_dir.resolve()} | {m.parent.resolve() for m in p.rglob(OUTPUT_MARK)}
    kept = [f for f in files if not any(f.resolve().is_relative_to(o) for o in outputs)]
    if len(kept) < len(files):
        log.info(
            "input: left out %d earlier result(s) in output folders inside %s",
            len(files) - len(kept),
            p,
        )
    if not kept:
        raise DataError(f"input={p} holds no image besides earlier results of medsr.predict")
    return p, kept


def _check_writable(folder: Path) -> None:
    """Create the output folder and mark it as results (the mark is the write test)."""
    try:
        atomic_write_text(folder / OUTPUT_MARK, "Results of medsr.predict: never read as input.\n")
    except OSError as err:
        raise DataError(
            f"cannot write to output={folder}: {err.strerror or err}; choose a folder you can write to"
        ) from None


def _targets(
    root: Path, files: list[Path], out_dir: Path, fmt: str, checks: PredictChecks
) -> list[Path]:
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not valid; use one of {', '.join(FORMATS)}")
    targets = []
    for f in files:
        if medical_kind(f):
            targets.append(medical_target(f, f.parent.relative_to(root), out_dir, fmt))
            continue
        suffix = FORMATS[fmt] or (".png" if fmt == "auto" else f.suffix.lower())
        targets.append(out_dir / f.relative_to(root).with_suffix(suffix))
    seen: dict[Path, Path] = {}
    inputs = {f.resolve() for f in files}
    for f, t in zip(files, targets, strict=True):
        for path in (t, *checks.outputs(t)):  # the output and the maps beside it
            if path in seen:
                raise ConfigError(
                    f"{seen[path].name} and {f.name} would both be written to {path}; use format=same or separate folders"
                )
            if path.resolve() in inputs:
                raise ConfigError(
                    f"output={out_dir} would overwrite the input {path}; choose another output folder"
                )
            seen[path] = f
    return targets


def predict(cfg: DictConfig) -> list[tuple[Path, str]]:
    """Upscale every input image; returns the (file, reason) of those that failed."""
    if not cfg.get("input") or not cfg.get("output"):
        raise ConfigError(
            "give the images and where to write them: input=<file or folder> output=<folder>"
        )
    tile = whole_number("tile", cfg.tile)
    overlap = whole_number("tile_overlap", cfg.tile_overlap)
    if cfg.get("scale") is not None:
        check_scale(cfg.scale)
    out_dir = Path(str(cfg.output)).expanduser()
    root, files = _inputs(str(cfg.input), bool(cfg.get("recursive", False)), out_dir)
    tta, mode = parse_tta(cfg.get("tta")), parse_mode(cfg.get("consistency"))
    maps = parse_uncertainty_maps(cfg.get("uncertainty_maps"), tta)
    checks = PredictChecks(mode, bool(cfg.get("consistency_maps")), maps)
    targets = _targets(root, files, out_dir, str(cfg.get("format", "auto")).lower(), checks)
    _check_writable(out_dir)
    host = tune_host()
    net, scale, tag, device = load_for_backend(
        cfg.get("backend", "torch"),
        cfg.get("ckpt"),
        cfg.get("scale"),
        cfg.get("model"),
        cfg.get("device"),
        str(cfg.get("precision", "auto")),
        threads=host.threads if host else 0,
    )
    upscaler = Upscaler(
        net,
        scale,
        device=device,
        precision=str(cfg.get("precision", "auto")),
        tta=tta,
        tile=tile,
        tile_overlap=overlap,
        projection=projection_settings(checks.mode, cfg.get("projection")),
        spread=checks.mode != "false" or maps != "false",  # tta_std, uncertainty maps
    )
    log.info(
        "%s x%d on %s (%s), tile=%s overlap=%d, receptive radius %s LR px: %s",
        tag,
        scale,
        device,
        upscaler.amp or "float32",
        tile or "whole image",
        overlap,
        upscaler.radius,
        "tiles equal the untiled result"
        if 2 * upscaler.stitch_radius <= overlap
        else "tile overlaps are cross-faded",
    )
    method = tag + (f", weights {Path(str(cfg.ckpt)).name}" if cfg.get("ckpt") else "")
    series_uids: dict[str, str] = {}  # one derived series per source series
    failed: list[tuple[Path, str]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not cfg.get("progress", True), transient=False) as bar:
        images = bar.add_task("images", total=len(files))
        tiles = bar.add_task("tiles", total=None)
        for src, dst in zip(files, targets, strict=True):
            bar.update(tiles, description=f"tiles of {src.name}", completed=0, total=None)
            on_tile = lambda d, t: bar.update(tiles, completed=d, total=t)  # noqa: E731
            try:
                if medical_kind(src):  # DICOM/NIfTI out; not part of consistency.csv
                    axis = int(cfg.get("slice_axis", 2))
                    upscale_medical(upscaler, src, dst, method, series_uids, axis, on_tile)
                else:
                    image = read_image(src)
                    if min(image.shape[:2]) < MIN_SIDE:
                        raise DataError(
                            f"{src} is {image.shape[1]}x{image.shape[0]}: too small to upscale (needs {MIN_SIDE} px per side)"
                        )
                    if dst.suffix in (".jpg", ".jpeg") and (
                        image.dtype == np.uint16 or image.shape[-1] == 4
                    ):
                        raise DataError(
                            f"{src}: JPEG cannot hold a 16-bit or RGBA result; use format=png or format=tif"
                        )
                    h, w = image.shape[:2]
                    spread = (
                        np.empty((h * scale, w * scale), np.float32) if upscaler.spread else None
                    )
                    result = upscale_array(
                        upscaler,
                        image,
                        on_tile=on_tile,
                        spread=spread,
                    )
                    write_image(dst, result)
                    checks.add(src.relative_to(root).as_posix(), dst, image, result, scale, spread)
            except (MedsrError, OSError) as err:
                failed.append((src, str(err)))
                log.error("skipped %s: %s", src, err)
            bar.advance(images)
    done = len(files) - len(failed)
    log.info("wrote %d of %d images to %s", done, len(files), out_dir)
    report = checks.write(out_dir)
    if report is not None:
        log.info("LR consistency of every output (LR-PSNR dB, residual levels): %s", report)
    if failed:
        log.error(
            "%d of %d images failed: %s",
            len(failed),
            len(files),
            ", ".join(str(f) for f, _ in failed),
        )
    return failed


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    if run_cli(lambda: predict(cfg), log):
        sys.exit(1)


if __name__ == "__main__":
    main()
