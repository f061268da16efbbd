"""Evaluation results: rows -> ``results.json`` / ``results.csv`` / ``results.md`` (thesis layout).

A row is one method at one scale on one dataset::

    {"method": "EDSR", "scale": 4, "dataset": "Set5", "psnr": 32.46, "ssim": 0.8968,
     "n_images": 5, "protocol": "...", "psnr_fov": ..., "ssim_fov": ...}  # *_fov: fundus only

plus ``lr_psnr`` (``consistency=true|project``) and ``tta_std`` (``tta=x8``) when computed.

The Markdown table has one line per (method, scale) and one ``PSNR / SSIM`` column per dataset
(plus ``<dataset> (FOV)``, ``(LR-PSNR)`` and ``(TTA std)`` columns where those exist), as in the EDSR/RCAN papers.

Merge the results of several runs (for example one per scale) into one table with
``python -m medsr.results <run>/results.json ... [--out <folder>]``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from medsr.files import atomic_write, atomic_write_text


@dataclass(kw_only=True)
class _OptionalScores:
    """Scores that are None when not computed: field of view, LR consistency, TTA spread."""

    psnr_fov: float | None = None
    ssim_fov: float | None = None
    lr_psnr: float | None = None
    tta_std: float | None = None

    def as_dict(self) -> dict:
        """The scores as a results.json row: the required fields first, the computed optional ones after."""
        values = asdict(self)
        optional = [f.name for f in fields(_OptionalScores)]
        order = [k for k in values if k not in optional] + optional
        return {k: values[k] for k in order if values[k] is not None}


@dataclass
class ResultRow(_OptionalScores):
    """One method at one scale on one dataset: the unit of every results table, file and W&B
    table. Files and tables show an optional score's column only when some row has it."""

    method: str
    scale: int
    dataset: str
    psnr: float
    ssim: float
    n_images: int
    protocol: str


@dataclass
class ImageScore(_OptionalScores):
    """One method's scores on one image (``per_image.csv``); averaged into a :class:`ResultRow`."""

    method: str
    scale: int
    dataset: str
    image: str
    psnr: float
    ssim: float


# Every row has ROW_FIELDS; the optional ones are columns only when some row has them.
OPTIONAL_FIELDS = tuple(f.name for f in fields(_OptionalScores))
ROW_FIELDS = tuple(f.name for f in fields(ResultRow) if f.name not in OPTIONAL_FIELDS)
IMAGE_FIELDS = (
    tuple(f.name for f in fields(ImageScore) if f.name not in OPTIONAL_FIELDS) + OPTIONAL_FIELDS
)


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
    consistency: str = "false",
    projection=None,
    spread: bool = False,
) -> str:
    """How every number of a row was computed, in words (training and evaluation share it).

    ``consistency``/``projection``/``spread``: the ``lr_psnr`` and ``tta_std`` columns and the
    back-projection of ``consistency=project`` (a ``consistency.BackProjection``).
    """
    parts = [
        "Y channel (ITU-R BT.601 as MATLAB rgb2ycbcr, 16-235) of RGB images, the image's own channel for grayscale",
        f"{crop} px border removed on each side",
        f"x{scale}",
        lr_protocol,
        f"SR clamped and rounded to the HR bit depth ({bits} bits) before scoring",
        *([] if str(bits) == "8" else [f"PSNR peak and SSIM's L: the full {bits}-bit range"]),
        "whole images" if not tile else f"tiles of {tile} LR px with {tile_overlap} px overlap",
        f"precision {precision}",
    ]
    if tta:
        parts.append("networks (marked +) with x8 self-ensemble")
    if fov:
        parts.append(
            "*_fov: inside the field-of-view mask (PSNR over its pixels, SSIM over windows centred in it)"
        )
    if projection is not None:
        parts.append(
            "SR back-projected onto the LR input before scoring (x <- x + imresize(LR - imresize(x, 1/s), s) "
            f"until a step lowers the RMS LR residual by < {projection.tolerance:g} levels, at most "
            f"{projection.max_iterations} steps; per tile when tiled)"
        )
    if consistency != "false":
        parts.append(
            "lr_psnr: PSNR on Y between imresize(SR, 1/s) rounded to the source bit depth and the LR "
            "input, no border crop"
        )
    if spread:
        parts.append(
            "tta_std: per-pixel standard deviation of the 8 self-ensemble outputs (RMS over channels), "
            "image mean, in levels of the source bit depth"
        )
    return "; ".join(parts)


def _columns(rows: Sequence[Mapping], names: Sequence[str]) -> list[str]:
    """``names`` without the optional columns that no row fills."""
    return [n for n in names if n not in OPTIONAL_FIELDS or any(r.get(n) is not None for r in rows)]


def _as_dict(row: ResultRow | ImageScore | Mapping) -> dict:
    return row.as_dict() if isinstance(row, (ResultRow, ImageScore)) else dict(row)


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


# Optional per-dataset columns of the Markdown table: (row field, header suffix, second field).
_EXTRA_COLUMNS = (
    ("psnr_fov", "FOV", "ssim_fov"),
    ("lr_psnr", "LR-PSNR", None),
    ("tta_std", "TTA std", None),
)


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
        for field, suffix, pair in _EXTRA_COLUMNS:
            if r.get(field) is not None:
                columns.append((f"{r['dataset']} ({suffix})", field, pair))
        for name, p, s in columns:
            if name not in datasets:
                datasets.append(name)
            cells[(*key, name)] = _fmt(r.get(p), 2) + (f" / {_fmt(r.get(s), 4)}" if s else "")
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
    if any(r.get("lr_psnr") is not None for r in rows):
        lines[0] += " LR-PSNR (dB): the SR, downscaled, against the LR input (no ground truth)."
    if any(r.get("tta_std") is not None for r in rows):
        lines[0] += " TTA std (levels): spread of the 8 self-ensemble outputs."
    lines += [f"Protocol: {p}" for p in protocols(rows)]
    return "\n".join(lines) + "\n"


def write_results(rows: Sequence[ResultRow | Mapping], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` into ``out_dir`` (atomically).

    Returns:
        ``{"json": path, "csv": path, "md": path}``.
    """
    out = Path(out_dir)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    clean = [_clean(_as_dict(r)) for r in rows]
    atomic_write_text(paths["json"], json.dumps(clean, indent=2) + "\n")
    _write_csv(paths["csv"], clean, _columns(clean, ROW_FIELDS + OPTIONAL_FIELDS))
    atomic_write_text(paths["md"], markdown_report(clean))
    return paths


def write_per_image(rows: Sequence[ImageScore | Mapping], path: str | Path) -> Path:
    """One line per (method, scale, dataset, image) with its scores."""
    clean = [_clean(_as_dict(r)) for r in rows]
    return _write_csv(Path(path), clean, _columns(clean, IMAGE_FIELDS))


def log_results(
    loggers: Iterable, rows: Sequence[ResultRow | Mapping], key: str = "test/results"
) -> None:
    """The rows as a table in every logger that keeps tables (W&B's ``log_table``), with the same
    columns as ``results.csv``, and as ``test/<dataset>/<method>/{psnr_y,ssim_y}`` values in all."""
    clean = [_clean(_as_dict(r)) for r in rows]
    columns = _columns(clean, ROW_FIELDS + OPTIONAL_FIELDS)
    values = {
        f"test/{r['dataset']}/{r['method']}/{m}_y": r[m] for r in clean for m in ("psnr", "ssim")
    }
    for logger in loggers:
        if callable(getattr(logger, "log_table", None)):
            logger.log_table(
                key=key, columns=columns, data=[[r.get(c) for c in columns] for r in clean]
            )
        logger.log_metrics(values)
        logger.save()  # after fit, nothing else flushes file-based loggers (CSV)


def _clean(row: Mapping) -> dict:
    """Plain JSON types; NaN/inf kept as strings JSON can hold (``"inf"``)."""
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write, fsync=False)


def load_results(paths: Iterable[str | Path]) -> list[dict]:
    """Concatenate the rows of several ``results.json`` files."""
    rows: list[dict] = []
    for p in paths:
        rows.extend(json.loads(Path(p).read_text()))
    return rows
