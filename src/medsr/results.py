"""Evaluation results: rows -> ``results.json`` / ``results.csv`` / ``results.md`` (thesis layout).

A row is one method at one scale on one dataset::

    {"method": "EDSR", "scale": 4, "dataset": "Set5", "psnr": 32.46, "ssim": 0.8968,
     "n_images": 5, "protocol": "...", "psnr_fov": ..., "ssim_fov": ...}  # *_fov: fundus only

The Markdown table has one line per (method, scale) and one ``PSNR / SSIM`` column per dataset
(plus ``<dataset> (FOV)`` where field-of-view numbers exist), as in the EDSR/RCAN papers.

Merge the results of several runs (for example one per scale) into one table with
``python -m medsr.results <run>/results.json ... [--out merged.md]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

ROW_FIELDS = ("method", "scale", "dataset", "psnr", "ssim", "n_images", "protocol")
FOV_FIELDS = ("psnr_fov", "ssim_fov")
IMAGE_FIELDS = ("method", "scale", "dataset", "image", "psnr", "ssim", *FOV_FIELDS)


def protocol_words(
    scale: int,
    crop: int,
    lr_protocol: str,
    precision: str,
    *,
    bits: str = "8",
    tile: int = 0,
    tile_overlap: int = 0,
    tta: bool = False,
    fov: bool = False,
) -> str:
    """How every number of a row was computed, in words (training and evaluation share it)."""
    parts = [
        "Y channel (ITU-R BT.601 as MATLAB rgb2ycbcr, 16-235) of RGB images, the image's own channel for grayscale",
        f"{crop} px border removed on each side",
        f"x{scale}",
        lr_protocol,
        f"SR clamped and rounded to the HR bit depth ({bits} bits) before scoring",
        "whole images" if not tile else f"tiles of {tile} LR px with {tile_overlap} px overlap",
        f"precision {precision}",
    ]
    if tta:
        parts.append("networks (marked +) with x8 self-ensemble")
    if fov:
        parts.append("*_fov: inside the field-of-view mask (PSNR over its pixels, SSIM over windows centred in it)")
    return "; ".join(parts)


def _fields(rows: Sequence[dict], base: Sequence[str]) -> list[str]:
    """``base`` plus the FOV columns when any row has them."""
    extra = [f for f in FOV_FIELDS if f not in base and any(r.get(f) is not None for r in rows)]
    return [*base, *extra]


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(rows: Sequence[dict]) -> str:
    """Method x scale rows, one ``PSNR / SSIM`` column per dataset (first-seen order).

    Lines are ordered by scale, then by the first appearance of the method.
    """
    datasets: list[str] = []
    keys: list[tuple[str, int]] = []
    cells: dict[tuple[str, int, str], str] = {}
    for r in rows:
        key = (r["method"], int(r["scale"]))
        if key not in keys:
            keys.append(key)
        columns = [(r["dataset"], "psnr", "ssim")]
        if r.get("psnr_fov") is not None:
            columns.append((f"{r['dataset']} (FOV)", "psnr_fov", "ssim_fov"))
        for name, p, s in columns:
            if name not in datasets:
                datasets.append(name)
            cells[(*key, name)] = f"{_fmt(r.get(p), 2)} / {_fmt(r.get(s), 4)}"
    order = {k: i for i, k in enumerate(keys)}
    keys = sorted(keys, key=lambda k: (k[1], order[k]))
    header = ["Method", "Scale", *datasets]
    lines = [
        "| " + " | ".join(header) + " |",
        "| --- | ---: |" + " ---: |" * len(datasets),
    ]
    for method, scale in keys:
        row = [method, f"x{scale}", *(cells.get((method, scale, d), "-") for d in datasets)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def protocols(rows: Iterable[dict]) -> list[str]:
    """The distinct protocol descriptions, in first-seen order."""
    seen: list[str] = []
    for r in rows:
        if r.get("protocol") and r["protocol"] not in seen:
            seen.append(r["protocol"])
    return seen


def markdown_report(rows: Sequence[dict]) -> str:
    """The table with its caption (PSNR dB / SSIM) and the protocol(s) in words."""
    lines = ["PSNR (dB) / SSIM, mean over the images of each set.", "", markdown_table(rows), ""]
    lines += [f"Protocol: {p}" for p in protocols(rows)]
    return "\n".join(lines) + "\n"


def write_results(rows: Sequence[dict], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` into ``out_dir``.

    Returns:
        ``{"json": path, "csv": path, "md": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    clean = [_clean(r) for r in rows]
    paths["json"].write_text(json.dumps(clean, indent=2) + "\n")
    _write_csv(paths["csv"], clean, _fields(clean, ROW_FIELDS))
    paths["md"].write_text(markdown_report(clean))
    return paths


def write_per_image(rows: Sequence[dict], path: str | Path) -> Path:
    """One line per (method, scale, dataset, image) with its PSNR/SSIM (and FOV values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = [_clean(r) for r in rows]
    _write_csv(path, clean, _fields(clean, IMAGE_FIELDS[:-2]))
    return path


def _clean(row: dict) -> dict:
    """Plain JSON types; NaN/inf kept as strings JSON can hold (``"inf"``)."""
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


def _write_csv(path: Path, rows: Sequence[dict], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def load_results(paths: Iterable[str | Path]) -> list[dict]:
    """Concatenate the rows of several ``results.json`` files."""
    rows: list[dict] = []
    for p in paths:
        rows.extend(json.loads(Path(p).read_text()))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Merge results.json files into one thesis-style table.")
    parser.add_argument("results", nargs="+", help="results.json files written by medsr.evaluate")
    parser.add_argument("--out", help="also write the merged rows as results.{json,csv,md} into this folder")
    args = parser.parse_args(argv)
    rows = load_results(args.results)
    print(markdown_report(rows), end="")
    if args.out:
        write_results(rows, args.out)


if __name__ == "__main__":
    main()
