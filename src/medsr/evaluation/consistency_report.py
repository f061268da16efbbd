"""The trust checks as settings and files: ``consistency=``, ``consistency.csv`` and the maps.

``consistency=false|true|project`` (``medsr.evaluate`` and ``medsr.predict``), with
``projection.tolerance`` / ``projection.max_iterations``; ``medsr.predict`` writes one line per
output into ``<output>/consistency.csv`` and, on request, heat maps beside each output:
``<stem>_lr_residual.png`` (``consistency_maps=true``) and ``<stem>_uncertainty.png``
(``tta=x8 uncertainty_maps=true``; ``uncertainty_maps=overlay`` draws it over the output).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from medsr.data.convert import drop_alpha, to_float_tensor
from medsr.errors import ConfigError
from medsr.evaluation.consistency import (
    BackProjection,
    downscale_rows,
    full_scale,
    lr_psnr_of,
    lr_residual_of,
    residual_summary,
)
from medsr.evaluation.heatmaps import heat_map, overlay
from medsr.files import atomic_write, atomic_write_text

MODES = ("false", "true", "project")  # the ``consistency=`` setting
UNCERTAINTY_MAPS = ("false", "true", "overlay")
MAP_SUFFIX = {"residual": "_lr_residual", "uncertainty": "_uncertainty"}
CSV_FIELDS = (
    "file", "output", "scale", "bits", "consistency",
    "lr_psnr", "lr_residual_mean", "lr_residual_p99", "tta_std",
)  # fmt: skip


def _choice(key: str, value: object, allowed: tuple[str, ...], what: str) -> str:
    choice = "false" if value is None else str(value).lower()  # YAML gives booleans for true/false
    if choice not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid; use {what}")
    return choice


def parse_mode(value: object) -> str:
    """``consistency=`` -> ``"false"`` (off), ``"true"`` (report) or ``"project"`` (project, report)."""
    what = "false, true (report LR-PSNR) or project (back-project every output onto its input, then report)"
    return _choice("consistency", value, MODES, what)


def parse_uncertainty_maps(value: object, tta: bool) -> str:
    """``uncertainty_maps=`` -> ``"false"``, ``"true"`` (heat map) or ``"overlay"`` (over the output)."""
    choice = _choice("uncertainty_maps", value, UNCERTAINTY_MAPS, "false, true or overlay")
    if choice != "false" and not tta:
        raise ConfigError(
            f"uncertainty_maps={value} needs tta=x8: the map is the spread of the eight self-ensemble outputs"
        )
    return choice


def projection_settings(mode: str, node: Mapping | None) -> BackProjection | None:
    """The back-projection for ``consistency=project`` (None otherwise), from ``projection.*``."""
    if mode != "project":
        return None
    node = node or {}
    return BackProjection(
        tolerance=float(node.get("tolerance", BackProjection.tolerance)),
        max_iterations=node.get("max_iterations", BackProjection.max_iterations),
    )


def map_path(output: Path, kind: str) -> Path:
    """Where the ``kind`` (residual / uncertainty) map of ``output`` goes: beside it, PNG."""
    return output.with_name(f"{output.stem}{MAP_SUFFIX[kind]}.png")


def check_arrays(
    image: np.ndarray, result: np.ndarray, scale: int
) -> tuple[dict[str, float], Tensor]:
    """LR-PSNR and LR residual of one written output against its input, block by block.

    Args:
        image: the input, (H, W, C) uint8/uint16 (alpha, if any, is not checked).
        result: the output as written, (sH, sW, C) of the same dtype.
        scale: the upscaling factor.

    Returns:
        (``{"lr_psnr", "lr_residual_mean", "lr_residual_p99"}`` in dB, levels, levels;
        the (H, W) residual map in levels).
    """
    bits = 8 if image.dtype == np.uint8 else 16
    colour = drop_alpha(image)
    sr = torch.from_numpy(result[..., : colour.shape[-1]]).permute(2, 0, 1)[None]  # a view
    down = downscale_rows(sr, scale, full_scale(bits))
    lr = to_float_tensor(colour)[None]
    residual = lr_residual_of(down, lr, bits)
    mean, p99 = residual_summary(residual)
    scores = {
        "lr_psnr": float(lr_psnr_of(down, lr, bits)[0]),
        "lr_residual_mean": mean,
        "lr_residual_p99": p99,
    }
    return scores, residual[0, 0]


class PredictChecks:
    """Checks every output of ``medsr.predict`` and writes the maps and ``consistency.csv``.

    Args:
        mode: ``consistency=`` (``false`` writes no csv).
        residual_maps: write ``<stem>_lr_residual.png`` beside each output.
        uncertainty_maps: ``false``, ``true`` or ``overlay`` (needs the spread of each output).
    """

    def __init__(self, mode: str, residual_maps: bool, uncertainty_maps: str) -> None:
        self.mode = "true" if residual_maps and mode == "false" else mode  # maps need the check
        self.residual_maps = residual_maps
        self.uncertainty_maps = uncertainty_maps
        self.rows: list[dict] = []

    def outputs(self, target: Path) -> list[Path]:
        """Every file written for ``target`` besides itself (for collision checks)."""
        kinds = (["residual"] if self.residual_maps else []) + (
            ["uncertainty"] if self.uncertainty_maps != "false" else []
        )
        return [map_path(target, k) for k in kinds]

    def add(
        self,
        name: str,
        output: Path,
        image: np.ndarray,
        result: np.ndarray,
        scale: int,
        spread: np.ndarray | None,
    ) -> None:
        """Check one output (and write its maps); ``spread``: its (sH, sW) self-ensemble spread."""
        row: dict = {"file": name, "output": output.name, "scale": scale}
        if self.mode != "false":
            scores, residual = check_arrays(image, result, scale)
            row.update(bits=8 if image.dtype == np.uint8 else 16, consistency=self.mode, **scores)
            if self.residual_maps:
                _save_png(heat_map(residual, size=result.shape[:2]), map_path(output, "residual"))
        if spread is not None:
            row["tta_std"] = float(spread.mean(dtype=np.float64))
            if self.uncertainty_maps == "true":
                _save_png(heat_map(spread), map_path(output, "uncertainty"))
            elif self.uncertainty_maps == "overlay":
                shown = torch.from_numpy(drop_alpha(result).astype(np.float32)).permute(2, 0, 1)
                shown /= float(np.iinfo(result.dtype).max)
                _save_png(overlay(shown, spread), map_path(output, "uncertainty"))
        self.rows.append(row)

    def write(self, folder: Path) -> Path | None:
        """``<folder>/consistency.csv`` (with ``consistency`` on); returns its path."""
        if self.mode == "false" or not self.rows:
            return None
        path = folder / "consistency.csv"
        fields = [f for f in CSV_FIELDS if any(f in r for r in self.rows)]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return atomic_write_text(path, text.getvalue())


def _save_png(picture, path: Path) -> None:
    """A map written whole or not at all (temporary name in the same folder, then renamed)."""
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))
